"""The features 'done when' test: steps/make_fbank.sh --nj 4 (killed midway, then rerun:
finished jobs are not redone), steps/compute_vad_decision.sh and
steps/prepare_feats_for_egs.sh on a data dir of the whole shared corpus (2,500
utterances, ~3 h of Opus) through utils/run.pl; validate_data_dir.sh on every output."""

import os
import signal
import subprocess
import time

import kaldiio
import numpy as np
import pytest

from sid.features.cmvn import apply_cmvn_sliding
from sid.features.vad import select_voiced_frames

pytestmark = pytest.mark.slow


def _run(args, cwd, env):
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


def test_feature_steps_on_whole_corpus_resume_after_kill(corpus, tmp_path, sid_env, repo):
    data = tmp_path / "data" / "so762"
    data.mkdir(parents=True)
    with open(corpus / "train" / "wav.scp") as f, open(data / "wav.scp", "w") as out:
        for line in f:
            utt, path = line.split()
            out.write(f"{utt} {corpus / path}\n")
    for name in ["utt2spk", "spk2utt"]:
        (data / name).write_text((corpus / "train" / name).read_text())
    num_utts = len((data / "utt2spk").read_text().splitlines())
    conf = repo / "conf" / "fbank.conf"  # 80 mel bins plus raw log-energy in column 0, which the VAD reads
    fbank_dir, log_dir = tmp_path / "fbank", tmp_path / "exp" / "make_fbank"
    step = ["steps/make_fbank.sh", "--nj", "4", "--cmd", "run.pl", "--fbank-config", str(conf),
            str(data), str(log_dir), str(fbank_dir)]

    # Kill the step as soon as the first job has finished (run.pl runs 2 at a time here).
    proc = subprocess.Popen(step, cwd=repo, env=sid_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while not list(fbank_dir.glob("raw_fbank_so762.*.scp")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    time.sleep(0.5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything the runner left behind
    except ProcessLookupError:
        pass
    finished = {p.name: p.stat().st_mtime_ns for p in fbank_dir.glob("raw_fbank_so762.*.ark")
                if p.with_suffix(".scp").exists()}
    assert 1 <= len(finished) < 4, finished
    assert not (data / "feats.scp").exists()  # the data dir never points at unfinished arks

    out = _run(step, repo, sid_env)
    assert f"running {4 - len(finished)} of 4 jobs ({len(finished)} finished in an earlier run)" in out
    for name, mtime in finished.items():
        assert (fbank_dir / name).stat().st_mtime_ns == mtime, f"{name} was redone"
    assert not list(fbank_dir.glob(".*.tmp"))
    feats = kaldiio.load_scp(str(data / "feats.scp"))
    assert len(feats) == num_utts and feats[next(iter(feats))].shape[1] == 81
    _run(["utils/validate_data_dir.sh", str(data)], repo, sid_env)

    vad_step = ["steps/compute_vad_decision.sh", "--nj", "4", "--cmd", "run.pl", str(data),
                str(tmp_path / "exp" / "make_vad"), str(fbank_dir)]
    _run(vad_step, repo, sid_env)
    assert "all 4 jobs finished before" in _run(vad_step, repo, sid_env)
    _run(["utils/validate_data_dir.sh", str(data)], repo, sid_env)

    out_dir = tmp_path / "data" / "so762_no_sil"
    _run(["steps/prepare_feats_for_egs.sh", "--nj", "4", "--cmd", "run.pl", "--compress", "false", str(data),
          str(out_dir), str(tmp_path / "exp" / "so762_no_sil")], repo, sid_env)
    _run(["utils/validate_data_dir.sh", str(out_dir)], repo, sid_env)
    assert not (out_dir / "vad.scp").exists()

    vads = kaldiio.load_scp(str(data / "vad.scp"))
    prepared = kaldiio.load_scp(str(out_dir / "feats.scp"))
    num_frames = dict(line.split() for line in (out_dir / "utt2num_frames").read_text().splitlines())
    assert len(prepared) == num_utts
    voiced = sum(v.sum() for v in vads.values()) / sum(len(v) for v in vads.values())
    assert 0.5 < voiced < 0.99  # energy VAD on read speech with leading/trailing silence
    for utt in list(prepared)[::500]:
        want = select_voiced_frames(apply_cmvn_sliding(feats[utt], 300, 100, center=True), vads[utt])
        np.testing.assert_allclose(prepared[utt], want, atol=1e-4)
        assert int(num_frames[utt]) == len(want)


def test_make_mfcc_skips_bad_utterances_and_enforces_max_fail_fraction(tmp_path, sid_env, repo):
    import soundfile as sf

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(3):
        sf.write(tmp_path / f"u{i}.wav", (rng.standard_normal(16000) * 1000).astype(np.int16), 16000)
        lines.append(f"u{i} {tmp_path}/u{i}.wav")
    lines.append(f"u3 {tmp_path}/missing.wav")
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    (data / "utt2spk").write_text("".join(f"u{i} s\n" for i in range(4)))
    (data / "spk2utt").write_text("s u0 u1 u2 u3\n")
    step = ["steps/make_mfcc.sh", "--nj", "1", "--mfcc-config", str(repo / "conf" / "mfcc.conf"), str(data),
            str(tmp_path / "log"), str(tmp_path / "mfcc")]
    r = subprocess.run(step, cwd=repo, env=sid_env, capture_output=True, text=True)
    assert r.returncode == 1 and "utils/fix_data_dir.sh" in r.stderr and "max-fail-fraction" in r.stderr
    assert "u3" in (tmp_path / "log" / "make_mfcc_data.1.log").read_text()  # the reason is in the job log
    assert [line.split()[0] for line in (data / "feats.scp").read_text().splitlines()] == ["u0", "u1", "u2"]
    out = _run(step[:1] + ["--max-fail-fraction", "0.5"] + step[1:], repo, sid_env)
    assert "1 of 4 utterances got no features" in out and "all 1 jobs finished before" in out
