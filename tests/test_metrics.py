"""sid.metrics against direct transcriptions of Kaldi's compute-eer and sid/compute_min_dcf.py,
the command-line tools' output, and the speed target (Vox1-E size)."""

import subprocess
import sys
import time

import numpy as np
import pytest

from sid.errors import SidError
from sid.metrics import compute_eer, det_points, error_rates, evaluate, min_dcf


def kaldi_eer_loop(tgt, non):
    """compute-eer's ComputeEer, loop by loop (float32 scores)."""
    tgt, non = sorted(np.float32(tgt)), sorted(np.float32(non))
    p = 0
    while p + 1 < len(tgt):
        non_n = int(len(non) * p * 1.0 / len(tgt))
        pos = max(len(non) - 1 - non_n, 0)
        if non[pos] < tgt[p]:
            break
        p += 1
    return float(np.float32(p * 1.0 / len(tgt))), float(tgt[p])


def script_min_dcf_loop(scores, labels, p_target, c_miss=1, c_fa=1):
    """compute_min_dcf.py's ComputeErrorRates + ComputeMinDcf, loop by loop."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    lab = [labels[i] for i in order]
    fn, fp, fnrs, fprs = 0, 0, [], []
    for v in lab:
        fn += v
        fp += 1 - v
        fnrs.append(fn)
        fprs.append(fp)
    fnrs = [x / float(sum(lab)) for x in fnrs]
    fprs = [1 - x / float(len(lab) - sum(lab)) for x in fprs]
    best, thr = float("inf"), scores[order[0]]
    for i in range(len(lab)):
        c = c_miss * fnrs[i] * p_target + c_fa * fprs[i] * (1 - p_target)
        if c < best:
            best, thr = c, scores[order[i]]
    return best / min(c_miss * p_target, c_fa * (1 - p_target)), thr


@pytest.mark.parametrize("seed,num_tgt,num_non,ties", [(0, 1, 5, False), (1, 50, 400, False), (2, 37, 1000, True),
                                                       (3, 300, 300, True), (4, 7, 2, False)])
def test_exact_against_reference_loops(seed, num_tgt, num_non, ties):
    rng = np.random.default_rng(seed)
    tgt, non = rng.normal(1.5, 1, num_tgt), rng.normal(0, 1, num_non)
    if ties:
        tgt, non = np.round(tgt, 1), np.round(non, 1)
    assert compute_eer(tgt, non) == kaldi_eer_loop(tgt, non)
    scores = np.concatenate([tgt, non]).tolist()
    labels = [1] * num_tgt + [0] * num_non
    perm = rng.permutation(len(scores))
    scores, labels = [scores[i] for i in perm], [labels[i] for i in perm]
    rates = error_rates(np.array(scores), np.array(labels, dtype=bool))
    for p in (0.01, 0.001, 0.05, 0.5):
        assert min_dcf(rates, p) == script_min_dcf_loop(scores, labels, p)
    all_ = evaluate(np.array(scores), np.array(labels, dtype=bool))
    assert all_["eer"] == compute_eer(tgt, non)[0] * 100.0
    assert all_["mindcf_0.001"] == min_dcf(rates, 0.001)[0]
    assert all_["num_trials"] == num_tgt + num_non


def test_det_points_follow_the_curve():
    rng = np.random.default_rng(5)
    scores = np.concatenate([rng.normal(2, 1, 5000), rng.normal(0, 1, 50000)])
    labels = np.arange(len(scores)) < 5000
    rates = error_rates(scores, labels)
    fpr, fnr = det_points(rates, max_points=500)
    assert len(fpr) <= 500 and np.all(np.diff(fpr) <= 0) and np.all(np.diff(fnr) >= 0)
    assert fnr[0] == rates.fnrs[0] and fpr[-1] == rates.fprs[-1]


def test_needs_both_classes():
    with pytest.raises(SidError, match="both target and nontarget"):
        evaluate(np.ones(3), np.ones(3, dtype=bool))


def test_vox1e_size_is_fast():
    """EER and three minDCFs on 581,480 trials: the issue asks for at most 0.5 s (CPU time, loose bound here)."""
    rng = np.random.default_rng(0)
    n = 581_480
    labels = rng.random(n) < 0.5
    scores = np.where(labels, rng.normal(2, 1, n), rng.normal(0, 1, n)).astype(np.float32).astype(np.float64)
    start = time.process_time()
    out = evaluate(scores, labels)
    assert time.process_time() - start < 1.0
    assert 10 < out["eer"] < 20


def test_compute_eer_tool(tmp_path, sid_env):
    (tmp_path / "key").write_text("0.5 target\n-1 nontarget\n2 target\n0.7 nontarget\n")
    proc = subprocess.run([sys.executable, "-m", "sid.bin.compute_eer", "-"], input=(tmp_path / "key").read_text(),
                          env=sid_env, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "50"
    assert "Equal error rate is 50%, at threshold 2" in proc.stderr
    (tmp_path / "bad").write_text("0.5 target\n0.1 maybe\n")
    proc = subprocess.run([sys.executable, "-m", "sid.bin.compute_eer", str(tmp_path / "bad")],
                          env=sid_env, capture_output=True, text=True)
    assert proc.returncode == 1 and (f"{tmp_path / 'bad'}:2: Invalid input line (second field must be 'target' "
                                     "or 'nontarget')") in proc.stderr


def test_compute_min_dcf_tool_names_missing_trial(tmp_path, sid_env):
    (tmp_path / "trials").write_text("a b target\na c nontarget\n")
    (tmp_path / "scores").write_text("a b 1.5\na d 0.2\n")
    proc = subprocess.run([sys.executable, "-m", "sid.bin.compute_min_dcf", "--p-target=0.05",
                           str(tmp_path / "scores"), str(tmp_path / "trials")], env=sid_env, capture_output=True, text=True)
    assert proc.returncode == 1 and f"{tmp_path / 'scores'}:2: scored pair 'a d' is not a trial" in proc.stderr
