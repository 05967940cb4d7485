"""Data dirs record how their features were made (sid.provenance): the feature steps write
and carry the record, a rerun with an unusable config replaces nothing, and the record
is checked where it is read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sid import provenance
from sid.errors import SidError


def _run(args, cwd, env, ok=True):
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, f"{' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def mfcc_dir(tmp_path_factory, repo):
    """A data dir of four 2 s utterances with MFCCs (conf/mfcc.conf) and VAD, made by the steps
    (tests that change it put it back)."""
    import soundfile as sf

    env = dict(os.environ, PATH=os.pathsep.join([str(repo / ".venv" / "bin"), str(repo / "utils"),
                                                  str(repo / "steps"), os.environ["PATH"]]),
               PYTHONPATH=str(repo), LC_ALL="C")
    tmp_path = tmp_path_factory.mktemp("provenance")
    data = tmp_path / "data" / "d"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    lines = []
    for i in range(4):
        # a tone burst in noise: the energy VAD finds voiced and unvoiced frames
        x = rng.standard_normal(32000) * 30 + (t > 0.5) * (t < 1.5) * 8000 * np.sin(2 * np.pi * (200 + 50 * i) * t)
        sf.write(tmp_path / f"u{i}.wav", x.astype(np.int16), 16000)
        lines.append(f"u{i} {tmp_path}/u{i}.wav")
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    (data / "utt2spk").write_text("".join(f"u{i} s{i // 2}\n" for i in range(4)))
    (data / "spk2utt").write_text("s0 u0 u1\ns1 u2 u3\n")
    conf = tmp_path / "mfcc.conf"
    shutil.copyfile(repo / "conf" / "mfcc.conf", conf)
    step = ["steps/make_mfcc.sh", "--nj", "2", "--mfcc-config", conf, data, tmp_path / "log", tmp_path / "mfcc"]
    _run(step, repo, env)
    _run(["steps/compute_vad_decision.sh", "--nj", "2", data, tmp_path / "log", tmp_path / "mfcc"], repo, env)
    return data, conf, step


def test_make_features_records_config_and_checksum(mfcc_dir, repo):
    data, conf, _ = mfcc_dir
    assert (data / "conf" / "mfcc.conf").read_text() == conf.read_text()
    marker = provenance.read_marker(data)
    assert marker == {"feat_type": "mfcc", "options_md5": provenance.options_md5(conf.read_text()), "compress": "true"}
    assert "compress true" in (data / ".feats_done").read_text()
    # Comments and spacing are not options; a changed value is.
    text = conf.read_text()
    assert provenance.options_md5("# note\n\n" + text.replace("\n", "   # why\n")) == marker["options_md5"]
    assert provenance.options_md5(text.replace("--num-ceps=30", "--num-ceps=20")) != marker["options_md5"]


@pytest.mark.parametrize("bad,message", [
    ("--num-cep=20\n", "invalid option --num-cep"),
    ("--num-ceps=twenty\n", "invalid value for --num-ceps"),
    ("--num-ceps=0\n", "num-ceps"),
])
def test_rerun_with_unusable_config_replaces_nothing(mfcc_dir, repo, sid_env, bad, message):
    """Today's step set the finished features aside and removed every job's ark before
    its jobs failed on the new config."""
    data, conf, step = mfcc_dir
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in [data / "feats.scp", data / ".feats_done",
                                                                   *sorted(step[-1].glob("raw_mfcc_d.*"))]}
    good = conf.read_text()
    conf.write_text(good + bad)
    try:
        r = _run(step, repo, sid_env, ok=False)
    finally:
        conf.write_text(good)
    assert r.returncode == 1 and message in r.stderr and str(conf) in r.stderr and "Traceback" not in r.stderr
    for p, (content, mtime) in before.items():
        assert p.read_bytes() == content and p.stat().st_mtime_ns == mtime, p
    assert not (data / ".backup").exists()


def test_prepare_feats_for_egs_carries_record_and_writes_cmvn_opts(mfcc_dir, tmp_path, repo, sid_env):
    data, conf, _ = mfcc_dir
    out = tmp_path / "data" / "d_cmn"
    _run(["steps/prepare_feats_for_egs.sh", "--nj", "2", "--cmn-window", "200", data, out, tmp_path / "cmn"],
         repo, sid_env)
    assert (out / "cmvn_opts").read_text() == "--norm-vars=false --center=true --cmn-window=200\n"
    assert (out / ".feats_done").read_text() == (data / ".feats_done").read_text()
    assert (out / "conf" / "mfcc.conf").read_text() == conf.read_text()
    record = provenance.training_record(out)
    assert (record.type, record.checksum, record.config) == ("mfcc", provenance.read_marker(data)["options_md5"],
                                                              conf.read_text())
    assert provenance.parse_cmvn_opts(record.cmvn_opts, "x").cmn_window == 200
    # A data dir without the record cannot be prepared: nothing is run.
    marker = (data / ".feats_done").read_text()
    (data / ".feats_done").unlink()
    try:
        r = _run(["steps/prepare_feats_for_egs.sh", "--nj", "2", data, tmp_path / "data" / "other", tmp_path / "o"],
                 repo, sid_env, ok=False)
    finally:
        (data / ".feats_done").write_text(marker)
    assert r.returncode == 1 and f"{data}/.feats_done not found" in r.stderr
    assert not (tmp_path / "data" / "other").exists()


def test_compute_vad_decision_records_the_vad_and_training_carries_it(mfcc_dir, repo, tmp_path):
    """The VAD's record in the data dir (conf/vad.conf, conf/vad_on_mfcc.conf, .vad_done), carried by
    copy_record and into the training record (features.vad), checked by check_match."""
    import yaml

    data, conf, _ = mfcc_dir
    vad_conf = (repo / "conf" / "vad.conf").read_text()
    assert (data / "conf" / "vad.conf").read_text() == vad_conf
    assert (data / "conf" / "vad_on_mfcc.conf").read_text() == conf.read_text()
    assert provenance.read_vad_marker(data) == {"options_md5": provenance.options_md5(vad_conf), "features_type": "mfcc",
                                                "features_md5": provenance.options_md5(conf.read_text())}
    dest = tmp_path / "copy"
    provenance.copy_record([data], dest)
    (dest / "cmvn_opts").write_text("--cmn-window=300\n")
    record = provenance.training_record(dest)
    assert record.vad.config == vad_conf and record.vad.features_type == "mfcc" and record.compress
    exp = tmp_path / "exp"
    exp.mkdir()
    from dataclasses import asdict
    (exp / "config.yaml").write_text(yaml.safe_dump({"model": {"type": "xvector"}, "features": asdict(record)}))
    provenance.check_match(exp, data)
    # Test data whose VAD was decided with other options is refused, naming both files.
    other = tmp_path / "other_vad"
    shutil.copytree(dest, other)
    provenance.write_vad_record(other, _write(tmp_path / "vad2.conf", vad_conf + "--vad-energy-threshold=8.0\n"))
    with pytest.raises(SidError, match=f"{other}/.vad_done says its VAD .* but {exp}/config.yaml says"):
        provenance.check_match(exp, other)
    (other / ".vad_done").unlink()
    with pytest.raises(SidError, match="does not record how its VAD was made"):
        provenance.check_match(exp, other)
    # Sources whose VAD differs are not combined.
    with pytest.raises(SidError, match="VAD was made differently"):
        provenance.copy_record([dest, other], tmp_path / "combined")


def _write(path, text):
    path.write_text(text)
    return path


def test_copy_record_refuses_sources_made_differently(tmp_path):
    conf_a, conf_b = tmp_path / "a.conf", tmp_path / "b.conf"
    conf_a.write_text("--num-mel-bins=80\n")
    conf_b.write_text("--num-mel-bins=40\n")
    a, b, c, dest = (tmp_path / n for n in "abcd")
    provenance.write_record(a, "fbank", conf_a)
    provenance.write_record(b, "fbank", conf_b)
    provenance.write_record(c, "fbank", conf_a)
    with pytest.raises(SidError, match=f"{a}/.feats_done and {b}/.feats_done differ"):
        provenance.copy_record([a, b], dest)
    (c / "cmvn_opts").write_text("--cmn-window=300\n")
    with pytest.raises(SidError, match="cmvn_opts .*differ"):
        provenance.copy_record([a, c], dest)
    provenance.copy_record([a, a], dest)
    assert provenance.read_marker(dest) == provenance.read_marker(a)
    with pytest.raises(SidError, match=f"{tmp_path}/e/.feats_done not found"):
        provenance.copy_record([tmp_path / "e"], dest)


def test_training_record_requires_cmvn_opts_and_an_unedited_config(tmp_path):
    conf = tmp_path / "f.conf"
    conf.write_text("--num-mel-bins=80\n")
    d = tmp_path / "d"
    provenance.write_record(d, "fbank", conf)
    with pytest.raises(SidError, match=f"{d}/cmvn_opts not found.*prepare_feats_for_egs"):
        provenance.training_record(d)
    (d / "cmvn_opts").write_text("--cmn-window=300 --centre=true\n")
    with pytest.raises(SidError, match="invalid option --centre .*cmvn_opts"):
        provenance.training_record(d)
    (d / "cmvn_opts").write_text("--cmn-window=300 --center=true\n")
    assert provenance.training_record(d).cmvn_opts == "--cmn-window=300 --center=true"
    assert provenance.training_record(d).source == "features"
    # Whole utterances, nothing subtracted, no VAD (an imported front-end's, for fine-tuning):
    # extraction computes them from the audio.
    (d / "cmvn_opts").write_text("none\n")
    assert (provenance.training_record(d).cmvn_opts, provenance.training_record(d).source) == ("none", "audio")
    (d / "conf" / "fbank.conf").write_text("--num-mel-bins=40\n")
    with pytest.raises(SidError, match="does not match the options checksum"):
        provenance.training_record(d)


def test_feature_record_tool_errors_are_clean(tmp_path, repo, sid_env):
    r = _run([sys.executable, "-m", "sid.bin.feature_record", "validate", "fbnk", repo / "conf" / "fbank.conf"],
             repo, sid_env, ok=False)
    assert r.returncode == 1 and "feature type 'fbnk' unknown; allowed: fbank, mfcc" in r.stderr
    r = _run([sys.executable, "-m", "sid.bin.feature_record", "match", tmp_path, tmp_path], repo, sid_env, ok=False)
    assert r.returncode == 1 and "config.yaml" in r.stderr and "Traceback" not in r.stderr


def test_feature_record_match_reads_the_record_without_torch(tmp_path, repo, sid_env):
    """extract_embeddings.sh asks `feature_record match` first: it reads config.yaml's features
    record alone, without importing torch (the model section's check would)."""
    import yaml

    conf = tmp_path / "f.conf"
    conf.write_text("--num-mel-bins=80\n")
    data, exp = tmp_path / "data", tmp_path / "exp"
    provenance.write_record(data, "fbank", conf)
    exp.mkdir()
    record = {"type": "fbank", "config": conf.read_text(), "checksum": provenance.read_marker(data)["options_md5"],
              "cmvn_opts": "--cmn-window=300"}
    (exp / "config.yaml").write_text(yaml.safe_dump({"model": {"type": "xvector"}, "features": record}))
    check = ("import sys; from sid.provenance import check_match; check_match(sys.argv[1], sys.argv[2]); "
             "assert 'torch' not in sys.modules, 'torch imported'")
    _run([sys.executable, "-c", check, exp, data], repo, sid_env)
    conf.write_text("--num-mel-bins=40\n")
    provenance.write_record(data, "fbank", conf)
    r = _run([sys.executable, "-m", "sid.bin.feature_record", "match", exp, data], repo, sid_env, ok=False)
    assert r.returncode == 1 and "remake the features" in r.stderr


def test_step_record_fingerprints_inputs_and_the_archives_of_an_scp(tmp_path, monkeypatch, capsys):
    """<output>.made_by: unchanged options and inputs keep the output; another option, an input's
    content or an archive its scp points into (by size and time when big) make it again."""
    ark, scp, small = tmp_path / "x.ark", tmp_path / "x.scp", tmp_path / "utt2spk"
    ark.write_bytes(b"0123456789")
    scp.write_text(f"a {ark}:0\nb {ark}:5\n")
    small.write_text("a s\n")
    marker = tmp_path / "out.made_by"

    def done(options="n=1"):
        if provenance.step_done(marker, options, [scp, small], "test"):
            return True
        provenance.step_finish(marker)
        return False

    assert not done() and done()
    assert f"  archive {ark} md5 " in marker.read_text()
    assert not done("n=2") and "-options n=1" in capsys.readouterr().out and done("n=2")
    small.write_text("a t\n")
    assert not done("n=2") and done("n=2")
    monkeypatch.setattr(provenance, "CONTENT_HASH_MAX_BYTES", 4)
    assert not done("n=2") and f"archive {ark} size 10 mtime" in marker.read_text()
    os.utime(ark, ns=(1, 1))
    assert not done("n=2") and done("n=2")
    # A record whose output was not finished (killed) is not taken: the stale marker is gone.
    assert not provenance.step_done(marker, "n=3", [scp], "test") and not marker.exists()
