"""VoxCeleb preparation: ids, metadata, data dirs from the trees (on stand-ins made from
speechocean762), official trial lists -> Kaldi trials, m4a conversion."""

import gzip
import os
import subprocess
import sys

import pytest

from sid import voxceleb
from sid.data.table import read_dict
from sid.errors import DataDirError, SidError


def test_ids_round_trip():
    assert voxceleb.utt_id("id10270/x6uYqmx31kE/00001.wav") == "id10270-x6uYqmx31kE-00001"
    # video ids may hold dashes: the path comes back all the same
    assert voxceleb.utt_path("id10304-W-5dGkFnQxM-00001") == "id10304/W-5dGkFnQxM/00001.wav"
    with pytest.raises(ValueError, match="<speaker>/<video>/<file>"):
        voxceleb.utt_id("id10270/00001.wav")


def test_meta_files_both_formats(tmp_path):
    v1 = tmp_path / "vox1_meta.csv"
    v1.write_text("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\nid10001\tA.J._Buckley\tm\tIreland\tdev\n"
                  "id10270\tX\tf\tUSA\ttest\n")
    assert voxceleb.read_meta(v1) == {"id10001": ("m", "dev"), "id10270": ("f", "test")}
    v2 = tmp_path / "vox2_meta.csv"
    v2.write_bytes("\ufeffVoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \r\nid00012 ,n000012 ,m ,dev \r\n".encode())
    assert voxceleb.read_meta(v2) == {"id00012": ("m", "dev")}
    v2.write_text("VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set\nid00012 ,n000012 ,x ,dev\n")
    with pytest.raises(DataDirError, match=r"vox2_meta.csv:2: gender must be m or f"):
        voxceleb.read_meta(v2)


def test_official_meta_file_parses(shared):
    meta = voxceleb.read_meta(shared / "voxceleb" / "vox2_meta.csv")
    assert len(meta) > 6000 and {g for g, _ in meta.values()} == {"m", "f"}
    assert {s for _, s in meta.values()} == {"dev", "test"}


def synthetic_test_dir(shared, tmp_path, drop=()):
    """A VoxCeleb1 test data dir with the real ids (from the shared durations), no audio."""
    d = tmp_path / "vox1_test"
    d.mkdir()
    with gzip.open(shared / "voxceleb" / "durations" / "vox1_tst.utt2dur.gz", "rt") as f:
        utts = sorted(voxceleb.utt_id(line.split()[0] + ".wav") for line in f)
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts if u not in drop))
    return d


def run_tool(sid_env, *args):
    return subprocess.run([sys.executable, *map(str, args)], env=sid_env, capture_output=True, text=True)


def test_vox1_o_trials_from_the_official_list(shared, tmp_path, repo, sid_env):
    veri = shared / "voxceleb" / "trials" / "veri_test.txt"
    full = synthetic_test_dir(shared, tmp_path)
    out = tmp_path / "trials_vox1_O"
    r = run_tool(sid_env, repo / "local" / "make_voxceleb1_trials.py", "--data-dir", full, veri, out)
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 37720
    assert sum(line.endswith(" target") for line in lines) == 18860
    assert lines[0] == "id10270-x6uYqmx31kE-00001 id10270-8jEAjG6SegY-00008 target"
    assert all(line.split()[2] in ("target", "nontarget") for line in lines)


def test_trials_naming_a_missing_file_fail_naming_it(shared, tmp_path, repo, sid_env):
    veri = shared / "voxceleb" / "trials" / "veri_test.txt"
    d = synthetic_test_dir(shared, tmp_path, drop={"id10304-W-5dGkFnQxM-00001"})
    out = tmp_path / "trials"
    r = run_tool(sid_env, repo / "local" / "make_voxceleb1_trials.py", "--data-dir", d, veri, out)
    assert r.returncode == 1
    assert "1 files named in the trials are not in the data dir" in r.stderr
    assert "id10304/W-5dGkFnQxM/00001.wav" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_trials_gz_and_bad_lines(tmp_path):
    lst = tmp_path / "list_test_hard2.txt.gz"
    with gzip.open(lst, "wt") as f:
        f.write("1 id1/v-1/00001.wav id1/v2/00002.wav\n0 id1/v-1/00001.wav id2/v3/00001.wav\n")
    n = voxceleb.convert_trials(lst, tmp_path / "t", {"id1-v-1-00001", "id1-v2-00002", "id2-v3-00001"})
    assert n == (2, 1)
    assert (tmp_path / "t").read_text() == ("id1-v-1-00001 id1-v2-00002 target\n"
                                            "id1-v-1-00001 id2-v3-00001 nontarget\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 id1/v/00001.wav id1/v/00002.wav\ntarget id1/v/00001.wav id1/v/00002.wav\n")
    with pytest.raises(DataDirError, match=r"bad.txt:2: expected '1\|0"):
        voxceleb.convert_trials(bad, tmp_path / "t2")


@pytest.fixture(scope="module")
def standin(corpus, repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("standin") / "tree"
    env = dict(os.environ, PYTHONPATH=str(repo))
    env_run = subprocess.run([sys.executable, str(repo / "local" / "make_standin_voxceleb.py"), str(corpus), str(out)],
                             capture_output=True, text=True, env=env)
    assert env_run.returncode == 0, env_run.stderr
    return out


def test_standin_layout(standin):
    wavs = sorted((standin / "voxceleb1" / "wav").glob("id*/*/*.wav"))
    m4as = sorted((standin / "voxceleb2" / "dev" / "aac").glob("id*/*/*.m4a"))
    assert len(wavs) == 24 and len(m4as) == 12
    assert (standin / "voxceleb2" / "test" / "aac").is_dir()
    for name in ("veri_test", "veri_test2", "list_test_all", "list_test_all2", "list_test_hard", "list_test_hard2"):
        assert (standin / "lists" / f"{name}.txt").stat().st_size > 0
    assert (standin / "RIRS_NOISES" / "simulated_rirs" / "mediumroom" / "rir_list").is_file()


def test_make_voxceleb_data_dirs(standin, tmp_path, repo, sid_env):
    r = run_tool(sid_env, repo / "local" / "make_voxceleb1.py", "--meta", standin / "voxceleb1" / "vox1_meta.csv",
                 "--nj", "2", standin / "voxceleb1", "test", tmp_path / "v1test")
    assert r.returncode == 0, r.stderr
    spks = set(read_dict(tmp_path / "v1test" / "utt2spk").values())
    assert spks == set(read_dict(tmp_path / "v1test" / "spk2gender")) and all(s >= "id10270" for s in spks)
    for u, s in read_dict(tmp_path / "v1test" / "utt2spk").items():
        assert u.startswith(s + "-")
    r = run_tool(sid_env, repo / "local" / "make_voxceleb2.py", "--nj", "1", standin / "voxceleb2", "dev",
                 tmp_path / "v2dev")
    assert r.returncode == 0, r.stderr
    wav = read_dict(tmp_path / "v2dev" / "wav.scp")
    durs = read_dict(tmp_path / "v2dev" / "utt2dur")
    assert len(wav) == 12 and all(p.endswith(".m4a") for p in wav.values())
    assert all(1.0 < float(d) < 20 for d in durs.values())
    # Official trials convert against the data dir (every utterance is there).
    r = run_tool(sid_env, repo / "local" / "make_voxceleb1_trials.py", "--data-dir", tmp_path / "v1test",
                 standin / "lists" / "veri_test.txt", tmp_path / "trials")
    assert r.returncode == 0, r.stderr


def test_unreadable_audio_is_one_error_listing_files(standin, tmp_path, repo, sid_env):
    tree = tmp_path / "vox2"
    bad = tree / "dev" / "aac" / "id00001" / "vid" / "00001.m4a"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not audio")
    (bad.parent / "00002.m4a").write_bytes(b"")
    r = run_tool(sid_env, repo / "local" / "make_voxceleb2.py", "--nj", "1", tree, "dev", tmp_path / "d")
    assert r.returncode == 1
    assert "2 of 2 audio files are unreadable or empty" in r.stderr and "00001.m4a" in r.stderr
    assert not (tmp_path / "d").exists()
    with pytest.raises(SidError, match="no audio files"):
        voxceleb.scan_tree(tmp_path)


def test_convert_m4a_is_resumable(standin, tmp_path, repo, sid_env):
    d = tmp_path / "v2"
    assert run_tool(sid_env, repo / "local" / "make_voxceleb2.py", "--no-utt2dur", standin / "voxceleb2", "test",
                    d).returncode == 0
    r = run_tool(sid_env, repo / "local" / "convert_m4a.py", "--nj", "2", d, tmp_path / "flac")
    assert r.returncode == 0, r.stderr
    wav = read_dict(d / "wav.scp")
    assert all(p.endswith(".flac") for p in wav.values())
    from sid.data.audio import read_audio

    utt, path = next(iter(wav.items()))
    m4a = read_dict(d / ".backup" / "wav.scp")[utt]
    a, _ = read_audio(path)
    b, _ = read_audio(m4a)
    assert len(a) == len(b) and abs(a - b).max() <= 1.0  # only 16-bit rounding
    mtime = {p: p.stat().st_mtime_ns for p in (tmp_path / "flac").rglob("*.flac")}
    r = run_tool(sid_env, repo / "local" / "convert_m4a.py", d, tmp_path / "flac")
    assert r.returncode == 0 and "nothing to convert" in r.stderr
    assert mtime == {p: p.stat().st_mtime_ns for p in (tmp_path / "flac").rglob("*.flac")}


def test_musan_and_rir_lists_from_their_layouts(standin, tmp_path, repo, sid_env):
    r = run_tool(sid_env, repo / "local" / "make_musan.py", "--use-vocals", "false", "--nj", "1",
                 standin / "musan", tmp_path)
    assert r.returncode == 0, r.stderr
    music = read_dict(tmp_path / "musan_music" / "wav.scp")
    assert sorted(music) == ["music-fma-0001", "music-fma-0002"]  # 0000 has vocals in ANNOTATIONS
    assert len(read_dict(tmp_path / "musan_speech" / "utt2dur")) == 4
    assert read_dict(tmp_path / "musan_noise" / "utt2spk") == {u: u for u in read_dict(tmp_path / "musan_noise" / "wav.scp")}
    # RIRS_NOISES lists name files relative to the folder above RIRS_NOISES; the copy
    # names them absolutely, wherever the tree is (here renamed).
    moved = tmp_path / "rirs_renamed"
    import shutil

    shutil.copytree(standin / "RIRS_NOISES", moved)
    r = run_tool(sid_env, repo / "local" / "prepare_rirs.py", moved, tmp_path / "rirs")
    assert r.returncode == 0, r.stderr
    from sid.augment.datadir import read_rir_list

    rirs = read_rir_list(tmp_path / "rirs" / "smallroom" / "rir_list")
    assert len(rirs) == 4 and all(p.startswith(str(moved)) and os.path.isfile(p) for p in rirs)
    (moved / "simulated_rirs" / "mediumroom" / "Room002" / "Room002-00001.wav").unlink()
    r = run_tool(sid_env, repo / "local" / "prepare_rirs.py", moved, tmp_path / "rirs2")
    assert r.returncode == 1 and "1 of 4 RIR files are missing" in r.stderr and "Room002-00001.wav" in r.stderr


def test_vox1_layouts_and_test_set_from_meta(standin, tmp_path, repo, sid_env):
    # Kaldi's layout: dev/wav/... and test/wav/... unzipped apart.
    split = tmp_path / "vox1_split"
    for spk in (standin / "voxceleb1" / "wav").iterdir():
        part = "test" if spk.name >= "id10270" else "dev"
        (split / part / "wav").mkdir(parents=True, exist_ok=True)
        (split / part / "wav" / spk.name).symlink_to(spk)
    r = run_tool(sid_env, repo / "local" / "make_voxceleb1.py", "--no-utt2dur", split, "all", tmp_path / "all")
    assert r.returncode == 0, r.stderr
    assert len(read_dict(tmp_path / "all" / "utt2spk")) == 24
    # The merged layout takes the test speakers from the metadata's Set column when given.
    meta = tmp_path / "meta.csv"
    meta.write_text("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n" + "".join(
        f"{s.name}\tX\tm\tY\t{'test' if s.name == 'id10001' else 'dev'}\n"
        for s in (standin / "voxceleb1" / "wav").iterdir()))
    r = run_tool(sid_env, repo / "local" / "make_voxceleb1.py", "--no-utt2dur", "--meta", meta,
                 standin / "voxceleb1", "test", tmp_path / "test")
    assert r.returncode == 0, r.stderr
    assert set(read_dict(tmp_path / "test" / "utt2spk").values()) == {"id10001"}
    r = run_tool(sid_env, repo / "local" / "make_voxceleb1.py", tmp_path / "nowhere", "dev", tmp_path / "x")
    assert r.returncode == 1 and "expected VoxCeleb1's wav/" in r.stderr
