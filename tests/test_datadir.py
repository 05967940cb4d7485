"""Data-dir tools (sid.data.datadir and their utils/ entry points) on good and broken inputs."""

import os
import subprocess
import stat
import time

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from sid.data import datadir as dd
from sid.errors import DataDirError


def make_dir(root, name="data", spk_sizes=(3, 2, 4), audio=True, extra=True, first_spk=0):
    """A valid data dir: speakers spkA, spkB, ... with utterances '<spk>-u<i>' of 0.1*(i+1) s of audio."""
    d = root / name
    d.mkdir(parents=True)
    wavdir = root / f"{name}_wav"
    wavdir.mkdir()
    utts, spks = [], []
    for s, n in enumerate(spk_sizes):
        spk = f"spk{chr(65 + first_spk + s)}"
        for i in range(n):
            utts.append(f"{spk}-u{i}")
            spks.append(spk)
    wav, dur = [], []
    for k, u in enumerate(utts):
        path = wavdir / f"{u}.wav"
        if audio:
            sf.write(path, np.full(1600 * (k % 3 + 1), 100, np.int16), 16000, subtype="PCM_16")
        wav.append(f"{u} {path}")
        dur.append(f"{u} {0.1 * (k % 3 + 1):.1f}")
    (d / "wav.scp").write_text("\n".join(wav) + "\n")
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in zip(utts, spks)))
    (d / "spk2utt").write_text("".join(line + "\n" for line in dd.spk2utt_lines(utts, spks)))
    if extra:
        (d / "utt2dur").write_text("\n".join(dur) + "\n")
        (d / "text").write_text("".join(f"{u}\tHELLO WORLD\n" for u in utts))
        (d / "utt2aug").write_text("".join(f'{u} {{"rir": "r{k}.wav", "seed": {k}}}\n' for k, u in enumerate(utts)))
        (d / "spk2gender").write_text("".join(f"{s} {'mf'[i % 2]}\n" for i, s in enumerate(dict.fromkeys(spks))))
    return d, utts, spks


def run(sid_env, repo, *args, check=True):
    proc = subprocess.run(list(args), cwd=repo, env=sid_env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def errors_of(d, **kw):
    errors, _ = dd.validate(d, no_feats=True, **kw)
    return errors


# --------------------------------------------------------------------------- validate

def test_validate_good_dir(tmp_path):
    d, _, _ = make_dir(tmp_path)
    assert errors_of(d, check_audio=True) == []
    # feats.scp is required unless --no-feats, as in Kaldi.
    errors, _ = dd.validate(d)
    assert len(errors) == 1 and "feats.scp: no such file" in errors[0] and "--no-feats" in errors[0]


def test_validate_reports_every_problem_with_file_and_line(tmp_path):
    d, utts, spks = make_dir(tmp_path)
    lines = (d / "utt2spk").read_text().splitlines()
    # line 2 duplicated (-> line 3), lines 6 and 7 swapped, one utterance gone from utt2dur.
    lines.insert(2, lines[1])
    lines[5], lines[6] = lines[6], lines[5]
    (d / "utt2spk").write_text("\n".join(lines) + "\n")
    dur = (d / "utt2dur").read_text().splitlines()
    (d / "utt2dur").write_text("\n".join(dur[:4] + dur[5:] + ["zzz-extra 1.0"]) + "\n")
    (d / "text").write_text("")
    errors = errors_of(d)
    text = "\n".join(errors)
    assert f"utt2spk:3: duplicate key '{utts[1]}' (first at line 2)" in text
    assert "utt2spk:7: not sorted" in text
    assert f"utt2dur: no line for utterance '{utts[4]}' (utt2spk:" in text
    assert "utt2dur:9: utterance 'zzz-extra' is not in utt2spk" in text
    assert "text: file is empty" in text
    # spk2utt no longer matches the swapped/duplicated utt2spk only in order, which is fine;
    # but every problem above is reported, not just the first.
    assert len(errors) >= 5


def test_validate_unreadable_and_empty_files(tmp_path):
    d, utts, _ = make_dir(tmp_path)
    # Text that is not UTF-8 is read (as Kaldi reads bytes) but, as in Kaldi, not valid unless --non-print.
    (d / "text").write_bytes(b"".join(u.encode() + (b" caf\xe9\n" if i == 1 else b" ok\n") for i, u in enumerate(utts)))
    (d / "utt2dur").write_text("")
    errors = errors_of(d)
    assert errors == [f"{d / 'text'}:2: 1 lines with non-printable characters or bytes that are not UTF-8 "
                      "(e.g. this one; --non-print allows them)", f"{d / 'utt2dur'}: file is empty"]
    assert errors_of(d, non_print=True) == [f"{d / 'utt2dur'}: file is empty"]
    (d / "utt2spk").write_text("")
    assert errors_of(d) == [f"{d / 'utt2spk'}: file is empty"]


def test_tools_refuse_broken_input(tmp_path):
    d, utts, _ = make_dir(tmp_path)
    (d / "utt2spk").write_text(f"{utts[0]} spkA extra\n")
    for call in (lambda: dd.split(d, 2), lambda: dd.subset(d, tmp_path / "s", first=1),
                 lambda: dd.copy(d, tmp_path / "c", utt_prefix="x")):
        with pytest.raises(DataDirError, match=r"utt2spk:1: expected '<utterance> <speaker>'"):
            call()
    (d / "utt2spk").write_text("")
    with pytest.raises(DataDirError, match="no utterances remained"):
        dd.fix(d)
    (d / "utt2spk").unlink()
    with pytest.raises(DataDirError, match="no utt2spk"):
        dd.split(d, 2)


def test_split_keeps_speakers_whole_when_interleaved(tmp_path):
    d, utts, spks = make_dir(tmp_path, spk_sizes=(2, 2, 2, 2), extra=False)
    # speakers that do not sort with utterance ids: spkA, spkB, spkA, ...
    mixed = [("spkA", "spkB")[i % 2] for i in range(len(utts))]
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in zip(utts, mixed)))
    (d / "spk2utt").write_text("".join(line + "\n" for line in dd.spk2utt_lines(utts, mixed)))
    out = dd.split(d, 2)
    for n, spk in ((1, "spkA"), (2, "spkB")):
        assert set((out / str(n) / "utt2spk").read_text().split()[1::2]) == {spk}
        assert (out / str(n) / "wav.scp").read_text().split()[::2] == utts[n - 1::2]


def test_validate_spk2utt_mismatch_and_speaker_order(tmp_path):
    d, utts, spks = make_dir(tmp_path)
    s2u = (d / "spk2utt").read_text().splitlines()
    s2u[0] = s2u[0].replace(f" {utts[2]}", "")  # spkA loses its third utterance
    s2u[1] += f" {utts[0]}"  # and spkB claims spkA's first
    (d / "spk2utt").write_text("\n".join(s2u) + "\n")
    errors = "\n".join(errors_of(d))
    assert f"spk2utt: utterance '{utts[2]}' (utt2spk:3, speaker 'spkA') is not listed" in errors
    assert f"spk2utt:2: utterance '{utts[0]}' already listed (line 1)" in errors
    # Speaker ids that do not sort with the utterance ids break utt2spk's speaker order.
    (d / "utt2spk").write_text("".join(f"{u} {'zz' if u == utts[0] else s}\n" for u, s in zip(utts, spks)))
    errors = "\n".join(errors_of(d))
    assert "utt2spk:2: speaker 'spkA' comes after 'zz'" in errors
    assert not any("comes after" in e for e in errors_of(d, no_spk_sort=True))


def test_validate_missing_audio_segments_numbers(tmp_path):
    d, utts, _ = make_dir(tmp_path)
    os.unlink(tmp_path / "data_wav" / f"{utts[3]}.wav")
    (d / "utt2dur").write_text((d / "utt2dur").read_text().replace(f"{utts[1]} 0.2", f"{utts[1]} abc"))
    (d / "spk2gender").write_text("spkA m\nspkB x\nspkC f\n")
    assert sorted(errors_of(d)) == ["{}:2: expected '<speaker> m|f', got 'spkB x'".format(d / "spk2gender"),
                                    "{}:2: 'abc' is not a number".format(d / "utt2dur")]
    missing = [e for e in errors_of(d, check_audio=True) if "does not exist" in e]
    assert missing == [f"{d / 'wav.scp'}:4: '{utts[3]}': audio file '{tmp_path / 'data_wav' / utts[3]}.wav' does not exist"]
    # segments: utterances are segments of recordings.
    (d / "segments").write_text("".join(f"{u} {u} 0.0 {'0.05' if i != 2 else '-3'}\n" for i, u in enumerate(utts[:-1]))
                                + f"{utts[-1]} nosuchrec 0 1\n")
    errors = "\n".join(errors_of(d))
    assert "segments:3: bad segment times 0.0 -3" in errors
    assert f"segments:{len(utts)}: recording 'nosuchrec' is not in wav.scp" in errors


def test_validate_frames_against_archives(tmp_path):
    d, utts, _ = make_dir(tmp_path, extra=False)
    frames = {u: 5 + i for i, u in enumerate(utts)}
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/feats.ark,{d}/feats.scp") as w:
        for u in utts:
            w(u, np.zeros((frames[u], 4), np.float32))
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/vad.ark,{d}/vad.scp") as w:
        for u in utts:
            w(u, np.ones(frames[u] - (u == utts[2]), np.float32))
    (d / "utt2num_frames").write_text("".join(f"{u} {frames[u]}\n" for u in utts))
    errors, _ = dd.validate(d)
    assert errors == [f"{d / 'vad.scp'}:3: '{utts[2]}' has {frames[utts[2]] - 1} frames but utt2num_frames:3 says {frames[utts[2]]}"]
    # compressed archives are read from their header too
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/cfeats.ark,{d}/feats.scp", compression_method=2) as w:
        for u in utts:
            w(u, np.random.rand(frames[u] + (u == utts[0]), 4).astype(np.float32))
    errors, _ = dd.validate(d)
    assert f"{d / 'feats.scp'}:1: '{utts[0]}' has {frames[utts[0]] + 1} frames" in errors[0]
    assert dd.validate(d, check_frames=False)[0] == []
    os.unlink(tmp_path / "cfeats.ark")
    assert dd.validate(d)[0][0] == (f"{d / 'feats.scp'}:1: cannot read archive '{tmp_path}/cfeats.ark' "
                                    f"(No such file or directory; {len(utts)} entries)")


def test_validate_shared_corpus(corpus, tmp_path, sid_env, repo):
    """Done-when: the real corpus passes; a copy with a duplicated key and an unsorted line fails naming both."""
    d = tmp_path / "so"
    d.mkdir()
    src = corpus / "train"
    (d / "wav.scp").write_text("".join(f"{k} {corpus / v}\n" for k, v in
                                       (ln.split(None, 1) for ln in (src / "wav.scp").read_text().splitlines())))
    for name in ("utt2spk", "spk2utt", "text", "spk2gender"):
        (d / name).write_bytes((src / name).read_bytes())
    ok = run(sid_env, repo, "utils/validate_data_dir.sh", "--no-feats", "--check-audio", str(d))
    assert "Successfully validated" in ok.stdout
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in d.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    lines = (bad / "utt2spk").read_text().splitlines()
    lines.insert(10, lines[9])            # line 11 duplicates line 10
    lines[20], lines[21] = lines[21], lines[20]   # line 22 now sorts before line 21
    (bad / "utt2spk").write_text("\n".join(lines) + "\n")
    proc = run(sid_env, repo, "utils/validate_data_dir.sh", "--no-feats", str(bad), check=False)
    assert proc.returncode == 1
    key10 = lines[9].split()[0]
    assert f"utt2spk:11: duplicate key '{key10}' (first at line 10)" in proc.stderr
    assert "utt2spk:22: not sorted" in proc.stderr


# --------------------------------------------------------------------------- fix

def test_fix_data_dir(tmp_path, sid_env, repo):
    d, utts, spks = make_dir(tmp_path)
    wav = (d / "wav.scp").read_text().splitlines()
    (d / "wav.scp").write_text("\n".join(wav[:2] + wav[3:] + [wav[0]]) + "\n")  # utts[2] missing, dup, unsorted
    feats = [f"{u} x.ark:{i}" for i, u in enumerate(utts) if u not in (utts[5], utts[6])]
    (d / "feats.scp").write_text("\n".join(feats) + "\n")  # spkB (utts 3,4) keeps both; spkC loses two
    (d / "utt2spk").write_text((d / "utt2spk").read_text() + "\n")  # a trailing empty line
    (d / "spk2gender").write_text("spkA m\nspkB f\nspkC m\nspkQ f\n")
    proc = run(sid_env, repo, "utils/fix_data_dir.sh", str(d))
    log = proc.stderr
    assert "dropped 1 utterances: not in wav.scp" in log
    assert "dropped 2 utterances: not in feats.scp" in log
    assert "wav.scp: dropped 1 lines with a duplicate key" in log
    assert "utt2spk: dropped 1 empty lines" in log
    assert "spk2gender: dropped 1 lines for speakers not in use" in log
    assert "kept 6 of 9 utterances" in log
    kept = [u for u in utts if u not in (utts[2], utts[5], utts[6])]
    assert (d / "utt2spk").read_text().split()[::2] == kept
    assert dd.validate(d)[0] == []
    assert (d / ".backup" / "wav.scp").read_text().splitlines()[-1] == wav[0]
    assert (d / ".backup" / "dropped").read_text().splitlines() == [
        f"{utts[2]} not-in-wav.scp", f"{utts[5]} not-in-feats.scp", f"{utts[6]} not-in-feats.scp"]


def test_fix_with_segments_and_nothing_left(tmp_path):
    d, utts, _ = make_dir(tmp_path, extra=False)
    recs = (d / "wav.scp").read_text().splitlines()
    (d / "wav.scp").write_text("\n".join(recs[:2]) + "\n")
    (d / "segments").write_text("".join(f"{u} {recs[i % 3].split()[0]} 0 0.05\n" for i, u in enumerate(utts)))
    reasons = dd.fix(d)
    assert reasons == {"its recording is not in wav.scp": 3}
    assert len((d / "utt2spk").read_text().splitlines()) == 6
    assert dd.validate(d, no_feats=True)[0] == []
    (d / "feats.scp").write_text("other x.ark:1\n")
    with pytest.raises(DataDirError, match="no utterances remained"):
        dd.fix(d)


# --------------------------------------------------------------------------- subset

def _utts(d):
    return (d / "utt2spk").read_text().split()[::2]


def test_subset_modes(tmp_path, sid_env, repo):
    d, utts, spks = make_dir(tmp_path)
    sub = tmp_path / "sub"

    def subset(*args):
        run(sid_env, repo, "utils/subset_data_dir.sh", *args)
        assert dd.validate(sub, no_feats=True)[0] == []
        return _utts(sub)

    assert subset("--first", str(d), "4", str(sub)) == utts[:4]          # Kaldi's form
    assert subset("--first", "2", str(d), str(sub)) == utts[:2]          # option-with-value form
    assert subset("--last", str(d), "3", str(sub)) == utts[-3:]
    assert subset("--per-spk", str(d), "2", str(sub)) == [utts[0], utts[1], utts[3], utts[4], utts[5], utts[7]]
    # No option: spread evenly, as Kaldi's subset_scp.pl (halving range and count).
    assert subset(str(d), "5", str(sub)) == [utts[i] for i in (1, 3, 5, 6, 8)]
    # --speakers: whole speakers in shuffle_list.pl's order (srand 0) until there are 3 utterances.
    assert subset("--speakers", str(d), "3", str(sub)) == [u for u, s in zip(utts, spks) if s == dd.shuffle_list(
        ["spkA", "spkB", "spkC"])[0]]
    (tmp_path / "list").write_text(f"{utts[8]}\n{utts[0]} extra fields\n")
    assert subset("--utt-list", str(tmp_path / "list"), str(d), str(sub)) == [utts[0], utts[8]]
    (tmp_path / "spks").write_text("spkB\n")
    assert subset("--spk-list", str(tmp_path / "spks"), str(d), str(sub)) == utts[3:5]
    for name in ("wav.scp", "utt2dur", "text", "utt2aug"):
        assert (sub / name).read_text().split("\n")[0].split()[0] == utts[3]
    assert (sub / "spk2gender").read_text() == "spkB f\n"
    assert (sub / "spk2utt").read_text() == f"spkB {utts[3]} {utts[4]}\n"
    # Without segments a recording is an utterance: reco2dur is reduced like utt2dur.
    (d / "reco2dur").write_bytes((d / "utt2dur").read_bytes())
    assert subset("--first", str(d), "4", str(sub)) == utts[:4]
    assert (sub / "reco2dur").read_text() == (sub / "utt2dur").read_text()


def test_subset_errors(tmp_path):
    d, utts, _ = make_dir(tmp_path)
    with pytest.raises(DataDirError, match="exactly one"):
        dd.subset(d, tmp_path / "s", first=2, last=2)
    with pytest.raises(DataDirError, match="only 9"):
        dd.subset(d, tmp_path / "s", num=100)
    with pytest.raises(DataDirError, match="only 9"):
        dd.subset(d, tmp_path / "s", first=10)
    with pytest.raises(DataDirError, match="is the source"):
        dd.subset(d, d, first=2)
    (tmp_path / "l").write_text("nobody\n")
    with pytest.raises(DataDirError, match="would be empty"):
        dd.subset(d, tmp_path / "s", utt_list=str(tmp_path / "l"))


# --------------------------------------------------------------------------- split

def test_split_by_speaker_and_reuse(tmp_path, sid_env, repo):
    d, utts, spks = make_dir(tmp_path, spk_sizes=(5, 1, 2, 6, 3, 3))
    (d / "vad.scp").write_text("".join(f"{u} vad.ark:{i}\n" for i, u in enumerate(utts)))
    run(sid_env, repo, "utils/split_data.sh", str(d), "3")
    out = d / "split3"
    seen_spk = {}
    sizes = []
    for n in (1, 2, 3):
        part = out / str(n)
        assert sorted(os.listdir(part)) == sorted(f for f in os.listdir(d) if (d / f).is_file()) and dd.validate(part, no_feats=True)[0] == []
        for line in (part / "utt2spk").read_text().splitlines():
            u, s = line.split()
            assert seen_spk.setdefault(s, n) == n, f"speaker {s} in two parts"
        sizes.append(len(_utts(part)))
        assert (part / "vad.scp").read_text().split()[::2] == _utts(part)
        assert (part / "utt2aug").read_text().split("\n")[0].split()[0] == _utts(part)[0]
    assert sum(sizes) == len(utts) and max(sizes) - min(sizes) <= 3  # 20 utts as 7/6/7 at best
    # Reused while the sources are unchanged; redone when one changes.
    stamp = (out / "1" / "utt2spk").stat().st_mtime_ns
    proc = run(sid_env, repo, "utils/split_data.sh", str(d), "3")
    assert "up to date" in proc.stderr and (out / "1" / "utt2spk").stat().st_mtime_ns == stamp
    time.sleep(0.01)
    (d / "vad.scp").write_text((d / "vad.scp").read_text().replace("vad.ark", "vad2.ark"))
    run(sid_env, repo, "utils/split_data.sh", str(d), "3")
    assert "vad2.ark" in (out / "2" / "vad.scp").read_text()
    assert not [p for p in os.listdir(d) if p.startswith(".split")]  # no temporary folders left
    # Outputs get umask permissions, not the private ones of temporary files.
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "1" / "utt2spk").stat().st_mode & 0o777 == 0o666 & ~umask
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask


def test_split_per_utt_segments_and_errors(tmp_path, sid_env, repo):
    d, utts, spks = make_dir(tmp_path, spk_sizes=(4, 3), extra=False)
    recs = [line.split()[0] for line in (d / "wav.scp").read_text().splitlines()][:3]
    (d / "segments").write_text("".join(f"{u} {recs[i // 3]} 0 0.05\n" for i, u in enumerate(utts)))
    run(sid_env, repo, "utils/split_data.sh", "--per-utt", str(d), "3")
    sizes = [len(_utts(d / "split3utt" / str(n))) for n in (1, 2, 3)]
    assert sizes == [3, 2, 2]
    # Each part's wav.scp has just the recordings its segments use.
    assert (d / "split3utt" / "1" / "wav.scp").read_text().split()[::2] == [recs[0]]
    assert (d / "split3utt" / "2" / "wav.scp").read_text().split()[::2] == [recs[1]]
    assert (d / "split3utt" / "3" / "wav.scp").read_text().split()[::2] == [recs[1], recs[2]]
    for n in (1, 2, 3):
        assert dd.validate(d / "split3utt" / str(n), no_feats=True)[0] == []
    proc = run(sid_env, repo, "utils/split_data.sh", str(d), "3", check=False)
    assert proc.returncode == 1 and "cannot split 2 speakers into 3 parts" in proc.stderr


def test_kaldi_speaker_split():
    # split_scp.pl: speaker i starts in part i*n//m, then edge speakers move while that evens the counts.
    assert dd._kaldi_speaker_split([10, 1, 1, 1, 10, 1, 1, 1, 10, 1, 1, 1], 3) == [0] * 4 + [1] * 4 + [2] * 4
    assert dd._kaldi_speaker_split([1, 1, 1, 1, 9, 1], 2) == [0, 0, 0, 0, 1, 1]
    assert dd._kaldi_speaker_split([100, 1, 1], 3) == [0, 1, 2]  # every part gets a speaker


# --------------------------------------------------------------------------- copy and combine

def test_copy_with_prefixes(tmp_path, sid_env, repo):
    d, utts, spks = make_dir(tmp_path)
    out = tmp_path / "rev"
    run(sid_env, repo, "utils/copy_data_dir.sh", "--utt-prefix", "rev-", "--spk-prefix", "rev-", str(d), str(out))
    assert _utts(out) == [f"rev-{u}" for u in utts]
    assert (out / "utt2spk").read_text().split()[1] == "rev-spkA"
    assert (out / "spk2gender").read_text().split()[0] == "rev-spkA"
    assert not (out / "utt2uniq").exists()  # as Kaldi's (which makes one, then moves it away)
    assert (out / "text").read_text().splitlines()[0] == f"rev-{utts[0]}\tHELLO WORLD".replace("\t", " ")
    assert dd.validate(out, no_feats=True, check_audio=True)[0] == []


def test_combine(tmp_path, sid_env, repo):
    a, ua, _ = make_dir(tmp_path, "a", spk_sizes=(2, 2))
    b, ub, _ = make_dir(tmp_path, "b", spk_sizes=(3,), extra=False, first_spk=5)
    c = tmp_path / "c"
    dd.copy(b, c, utt_prefix="x-", spk_prefix="x-")
    out = tmp_path / "all"
    proc = run(sid_env, repo, "utils/combine_data.sh", str(out), str(a), str(c))
    assert "not combining utt2dur: missing from" in proc.stderr
    assert _utts(out) == sorted(ua + [f"x-{u}" for u in ub])
    assert not (out / "utt2dur").exists()
    assert dd.validate(out, no_feats=True)[0] == []
    # A repeated utterance is kept once, as Kaldi's (its fix_data_dir.sh keeps the first), with a warning.
    proc = run(sid_env, repo, "utils/combine_data.sh", str(out), str(a), str(a))
    assert f"utterance '{ua[0]}' is in both" in proc.stderr and _utts(out) == ua
    # A source with segments and one without: the latter gets whole-recording segments.
    (b / "segments").write_text(f"{ub[0]}-s {ub[0]} 0 0.05\n")
    for name in ("utt2spk", "spk2utt"):
        (b / name).write_text((b / name).read_text().replace(ub[0], f"{ub[0]}-s"))
    dd.fix(b)
    dd.combine(out, [a, b])
    segs = (out / "segments").read_text().splitlines()
    # From a's utt2dur, as Kaldi's get_segments_for_data.sh; and without one, from the audio.
    assert f"{ua[0]} {ua[0]} 0 0.1" in segs and f"{ua[1]} {ua[1]} 0 0.2" in segs and f"{ub[0]}-s {ub[0]} 0 0.05" in segs
    (a / "utt2dur").write_text((a / "utt2dur").read_text().replace(f"{ua[1]} 0.2", f"{ua[1]} 0.9"))
    dd.combine(out, [a, b])
    assert f"{ua[1]} {ua[1]} 0 0.9" in (out / "segments").read_text()
    (a / "utt2dur").unlink()
    dd.combine(out, [a, b])
    assert (out / "segments").read_text().splitlines() == segs


# --------------------------------------------------------------------------- small tools

def test_filter_scp_and_spk2utt_tools(tmp_path, sid_env, repo):
    scp = tmp_path / "in.scp"
    scp.write_text("c 3\na 1\nb 2\n")
    ids = tmp_path / "ids"
    ids.write_text("a x\nc\n")
    assert run(sid_env, repo, "utils/filter_scp.pl", str(ids), str(scp)).stdout == "c 3\na 1\n"
    assert run(sid_env, repo, "utils/filter_scp.pl", "--exclude", str(ids), str(scp)).stdout == "b 2\n"
    trials = tmp_path / "trials"
    trials.write_text("x a target\ny b nontarget\n")
    assert run(sid_env, repo, "utils/filter_scp.pl", "-f", "2", str(ids), str(trials)).stdout == "x a target\n"
    u2s = tmp_path / "utt2spk"
    u2s.write_text("s1-a s1\ns1-b s1\ns2-a s2\n")
    s2u = run(sid_env, repo, "utils/utt2spk_to_spk2utt.pl", str(u2s)).stdout
    assert s2u == "s1 s1-a s1-b\ns2 s2-a\n"
    back = subprocess.run(["utils/spk2utt_to_utt2spk.pl"], input=s2u, cwd=repo, env=sid_env,
                          capture_output=True, text=True, check=True).stdout
    assert back == u2s.read_text()
    u2s.write_text("s1-a\n")
    proc = run(sid_env, repo, "utils/utt2spk_to_spk2utt.pl", str(u2s), check=False)
    assert proc.returncode == 1 and "utt2spk:1: expected '<utterance> <speaker>'" in proc.stderr


@pytest.mark.parametrize("script", ["validate_data_dir.sh", "fix_data_dir.sh", "subset_data_dir.sh", "copy_data_dir.sh",
                                    "combine_data.sh", "split_data.sh", "filter_scp.pl", "utt2spk_to_spk2utt.pl",
                                    "spk2utt_to_utt2spk.pl", "data/get_utt2dur.sh"])
def test_help_prints_usage(script, sid_env, repo):
    out = run(sid_env, repo, f"utils/{script}", "--help").stdout
    assert out.startswith(f"Usage: utils/{script}")


def test_get_utt2dur(tmp_path, sid_env, repo):
    d, utts, _ = make_dir(tmp_path, extra=False)
    # one entry through a pipe
    wav = (d / "wav.scp").read_text().splitlines()
    k, p = wav[0].split()
    wav[0] = f"{k} cat {p} |"
    (d / "wav.scp").write_text("\n".join(wav) + "\n")
    run(sid_env, repo, "utils/data/get_utt2dur.sh", "--nj", "2", str(d))
    got = dict(line.split() for line in (d / "utt2dur").read_text().splitlines())
    assert list(got) == utts and [got[u] for u in utts] == [f"0.{i % 3 + 1}" for i in range(len(utts))]
    proc = run(sid_env, repo, "utils/data/get_utt2dur.sh", str(d))
    assert "up to date" in proc.stdout
    # The same through a job runner, one job per split.
    expected = (d / "utt2dur").read_text()
    (d / "utt2dur").unlink()
    run(sid_env, repo, "utils/data/get_utt2dur.sh", "--nj", "2", "--cmd", "run.pl", str(d))
    assert (d / "utt2dur").read_text() == expected and (d / "log" / "get_utt2dur.2.log").is_file()
    # With segments, durations come from segments (end -1: to the recording's end).
    (d / "segments").write_text(f"{utts[0]} {utts[0]} 0.02 0.07\n{utts[1]} {utts[2]} 0.1 -1\n")
    (d / "utt2spk").write_text(f"{utts[0]} spkA\n{utts[1]} spkA\n")
    run(sid_env, repo, "utils/data/get_utt2dur.sh", str(d))
    assert (d / "utt2dur").read_text() == f"{utts[0]} 0.05\n{utts[1]} 0.2\n"


def test_get_utt2dur_reports_bad_audio(tmp_path, sid_env, repo):
    d, utts, _ = make_dir(tmp_path, extra=False)
    os.unlink(tmp_path / "data_wav" / f"{utts[1]}.wav")
    (tmp_path / "data_wav" / f"{utts[2]}.wav").write_bytes(b"junk")
    proc = run(sid_env, repo, "python", "-m", "sid.bin.get_utt2dur", "--nj=1", str(d), check=False)
    assert proc.returncode == 1
    assert f"'{utts[1]}'" in proc.stderr and "no such file" in proc.stderr
    assert f"'{utts[2]}'" in proc.stderr and "could not get the duration of 2 of 9" in proc.stderr
    assert not (d / "utt2dur").exists()


def test_tools_on_shared_corpus(corpus, tmp_path, sid_env, repo):
    """The whole chain on real data: durations, split, subset, copy, combine, fix; each result validates."""
    d = tmp_path / "so"
    d.mkdir()
    src = corpus / "train"
    (d / "wav.scp").write_text("".join(f"{k} {corpus / v}\n" for k, v in
                                       (ln.split(None, 1) for ln in (src / "wav.scp").read_text().splitlines())))
    for name in ("utt2spk", "spk2utt", "spk2gender"):
        (d / name).write_bytes((src / name).read_bytes())
    run(sid_env, repo, "utils/data/get_utt2dur.sh", "--nj", "2", str(d))
    durs = dict(line.split() for line in (d / "utt2dur").read_text().splitlines())
    first = next(iter(durs))
    info = sf.info(str(corpus / (src / "wav.scp").read_text().split("\n")[0].split()[1]))
    assert len(durs) == 2500 and float(durs[first]) == pytest.approx(info.frames / info.samplerate, abs=1e-4)
    run(sid_env, repo, "utils/split_data.sh", str(d), "4")
    sizes = [len(_utts(d / "split4" / str(n))) for n in range(1, 5)]
    assert sum(sizes) == 2500 and max(sizes) - min(sizes) <= 20  # 20 utterances per speaker
    run(sid_env, repo, "utils/subset_data_dir.sh", "--per-spk", str(d), "5", str(tmp_path / "sub"))
    assert len(_utts(tmp_path / "sub")) == 125 * 5
    run(sid_env, repo, "utils/copy_data_dir.sh", "--utt-prefix", "c-", "--spk-prefix", "c-",
        str(tmp_path / "sub"), str(tmp_path / "copy"))
    run(sid_env, repo, "utils/combine_data.sh", str(tmp_path / "both"), str(d), str(tmp_path / "copy"))
    both = tmp_path / "both"
    assert len(_utts(both)) == 2500 + 625
    (both / "feats.scp").write_text("".join(f"{u} f.ark:{i}\n" for i, u in enumerate(_utts(both)) if i % 2))
    proc = run(sid_env, repo, "utils/fix_data_dir.sh", str(both))
    assert f"dropped {(3125 + 1) // 2} utterances: not in feats.scp" in proc.stderr
    for sub in (d / "split4" / "3", tmp_path / "sub", tmp_path / "copy", both):
        ok = run(sid_env, repo, "utils/validate_data_dir.sh", "--no-feats", str(sub))
        assert "Successfully validated" in ok.stdout


def test_atomic_writes_leave_special_files_alone(tmp_path):
    from sid.data.table import write_table

    write_table(os.devnull, {"a": "1"})
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    import threading

    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_table(fifo, {"a": "1"})
    reader.join(5)
    assert got == ["a 1\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
