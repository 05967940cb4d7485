"""Tools that neither train nor run a network start fast: they do not import torch, and two
representative ones (features, back-end) start in well under a second of CPU. The bound is
loose so a slow or busy machine cannot make it flaky; bench/vs_kaldi.py holds the real figures."""

import resource
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

# Every Kaldi-named tool and the other tools that only read and write tables.
LIGHT_TOOLS = [
    "compute_fbank_feats", "compute_mfcc_feats", "compute_vad", "apply_cmvn_sliding", "select_voiced_frames",
    "copy_feats", "ivector_mean", "ivector_subtract_global_mean", "ivector_transform", "ivector_normalize_length",
    "ivector_compute_lda", "ivector_compute_plda", "ivector_copy_plda", "ivector_plda_scoring", "compute_eer",
    "compute_min_dcf", "train_backend", "score_plda", "score_cosine", "score_norm", "feature_record",
]


@pytest.mark.parametrize("tool", LIGHT_TOOLS)
def test_tool_does_not_import_torch(tool, sid_env):
    code = f"import sys, sid.bin.{tool}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=sid_env).returncode == 0, \
        f"sid.bin.{tool} imports torch (about 1.5 s of start-up); import it only where a network runs"


def _child_cpu(cmd, cwd, env) -> float:
    """CPU seconds (user + system) the command's processes used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _best_cpu(cmd, cwd, env, tries=3) -> float:
    best = float("inf")
    for _ in range(tries):
        best = min(best, _child_cpu(cmd, cwd, env))
        if best < 1.0:
            break
    return best


def test_startup_of_two_tools_is_under_a_second_of_cpu(tmp_path, sid_env, repo):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "a.wav", (rng.standard_normal(16000) * 1000).astype(np.int16), 16000)
    (tmp_path / "wav.scp").write_text(f"a {tmp_path / 'a.wav'}\n")
    fbank = [sys.executable, "-m", "sid.bin.compute_fbank_feats", f"--config={repo}/conf/fbank80.conf",
             "scp:wav.scp", "ark:feats.ark"]
    (tmp_path / "x.txt").write_text("".join(f"u{i}  [ {' '.join(map(str, rng.standard_normal(8)))} ]\n"
                                            for i in range(20)))
    mean = [sys.executable, "-m", "sid.bin.ivector_mean", "ark,t:x.txt", "mean.vec"]
    for cmd in (fbank, mean):
        cpu = _best_cpu(cmd, tmp_path, sid_env)
        assert cpu < 1.0, f"{cmd[2]} took {cpu:.2f} s of CPU to start (bench/vs_kaldi.py --groups startup)"
