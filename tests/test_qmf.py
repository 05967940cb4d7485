"""QMF calibration (sid.backend.qmf, train_qmf, apply_qmf) and the metrics of calibrated scores
(Cllr, actual DCF at a threshold) on synthetic embeddings whose noise grows as utterances get shorter."""

from __future__ import annotations

import json
import subprocess
import sys

import kaldiio
import numpy as np
import pytest

from sid.backend.qmf import bayes_threshold, draw_trials
from sid.metrics import actual_dcf, cllr, error_rates, min_dcf


def test_cllr_and_actual_dcf():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(2000, bool), np.zeros(8000, bool)]
    # Calibrated Gaussian LLRs: N(+m, 2m) for targets, N(-m, 2m) for non-targets.
    m = 2.0
    s = np.where(labels, m, -m) + np.sqrt(2 * m) * rng.standard_normal(len(labels))
    assert cllr(np.zeros(10), labels[::1000]) == pytest.approx(1.0)
    assert cllr(s, labels) < 0.6
    assert cllr(5 * s, labels) > cllr(s, labels)     # over-confident: worse
    assert cllr(s - 4, labels) > cllr(s, labels)     # shifted: worse
    for p in (0.01, 0.05):
        md, th = min_dcf(error_rates(s, labels), p)
        assert actual_dcf(s, labels, th, p) == pytest.approx(md)
        # For calibrated LLRs the Bayes threshold is close to the best one.
        assert actual_dcf(s, labels, bayes_threshold(p), p) < 1.15 * md


@pytest.mark.parametrize("p_fit", [0.5, 0.05, 0.01])
def test_prior_weighted_fit_returns_llrs(p_fit):
    """Scores that are LLRs already (equal-variance Gaussians) map to themselves whatever the
    prior the regression is weighted for: the prior's log odds come off the bias."""
    from sid.backend.qmf import QMF

    rng = np.random.default_rng(1)
    m = 3.0
    labels = np.r_[np.ones(20000, bool), np.zeros(20000, bool)]
    llr = np.where(labels, m, -m) + np.sqrt(2 * m) * rng.standard_normal(len(labels))
    model = QMF.fit(llr[:, None], labels, 10, p_fit)
    assert model.weights[0] == pytest.approx(1.0, abs=0.05) and model.bias == pytest.approx(0.0, abs=0.15)
    assert model.p_fit == p_fit


def test_draw_trials():
    utt2spk = {f"s{k}-u{i}": f"s{k}" for k in range(5) for i in range(4)}
    ei, ti, lab = draw_trials(utt2spk, 1000, 3)
    utts = sorted(utt2spk)
    spk = [utt2spk[u] for u in utts]
    assert lab.sum() == 500 and len(lab) == 1000
    assert all((spk[e] == spk[t]) == bool(y) and e != t for e, t, y in zip(ei, ti, lab))
    assert np.array_equal(draw_trials(utt2spk, 1000, 3)[0], ei)


def _vectors(rng, centres, per_spk, prefix, dim):
    vecs, durs, spk = {}, {}, {}
    for k, c in enumerate(centres):
        for i in range(per_spk):
            dur = float(rng.uniform(1.0, 12.0))
            noise = rng.standard_normal(dim) * (2.5 / np.sqrt(dur))
            utt = f"{prefix}{k:03d}-{i:02d}"
            vecs[utt] = (c + noise).astype(np.float32)
            durs[utt] = dur
            spk[utt] = f"{prefix}{k:03d}"
    return vecs, durs, spk


def _write(d, vecs, durs, spk):
    d.mkdir()
    kaldiio.save_ark(str(d / "x.ark"), vecs, scp=str(d / "xvector.scp"))
    (d / "utt2dur").write_text("".join(f"{u} {durs[u]:.3f}\n" for u in sorted(vecs)))
    (d / "utt2spk").write_text("".join(f"{u} {spk[u]}\n" for u in sorted(vecs)))
    means = {}
    for u, v in vecs.items():
        means.setdefault(spk[u], []).append(v)
    kaldiio.save_ark(str(d / "s.ark"), {s: np.mean(v, 0) for s, v in means.items()}, scp=str(d / "spk_xvector.scp"))


@pytest.mark.slow
def test_qmf_lowers_cllr_and_its_threshold_is_near_min_dcf(tmp_path, sid_env, repo):
    rng = np.random.default_rng(7)
    dim = 16
    train = _vectors(rng, rng.standard_normal((60, dim)), 12, "t", dim)
    test = _vectors(rng, rng.standard_normal((30, dim)), 12, "e", dim)
    _write(tmp_path / "train", *train)
    _write(tmp_path / "test", *test)
    utts = sorted(test[0])
    trials = tmp_path / "trials"
    trials.write_text("".join(f"{a} {b} {'target' if test[2][a] == test[2][b] else 'nontarget'}\n"
                              for i, a in enumerate(utts) for b in utts[i + 1:]))
    d = tmp_path / "scores"
    b = d / "backend_cosine"
    env = sid_env
    run = lambda *cmd: subprocess.run([sys.executable, "-m", *map(str, cmd)], env=env, cwd=repo,  # noqa: E731
                                      capture_output=True, text=True)
    b.mkdir(parents=True)
    for cmd in (["sid.bin.ivector_mean", f"scp:{tmp_path}/train/xvector.scp", b / "mean.vec"],
                ["sid.bin.score_cosine", f"--mean={b}/mean.vec", f"scp:{tmp_path}/test/xvector.scp",
                 f"scp:{tmp_path}/test/xvector.scp", trials, d / "trials.cosine.score"],
                ["sid.bin.score_norm", "--method=asnorm", "--top-n=20", f"--mean={b}/mean.vec",
                 "--normalize-input=true", f"scp:{tmp_path}/train/spk_xvector.scp", f"scp:{tmp_path}/test/xvector.scp",
                 f"scp:{tmp_path}/test/xvector.scp", d / "trials.cosine.score", d / "trials.cosine_asnorm.score"],
                ["sid.bin.train_qmf", "--top-n=20", "--num-trials=6000", f"--mean={b}/mean.vec",
                 tmp_path / "train/utt2spk", tmp_path / "train/utt2dur", f"scp:{tmp_path}/train/xvector.scp",
                 f"scp:{tmp_path}/train/spk_xvector.scp", b / "qmf.json"],
                ["sid.bin.apply_qmf", f"--mean={b}/mean.vec", "--p-targets=0.05",
                 f"--threshold-out={d}/trials.cosine_asnorm_qmf.threshold", b / "qmf.json",
                 tmp_path / "test/utt2dur", f"scp:{tmp_path}/train/spk_xvector.scp",
                 f"scp:{tmp_path}/test/xvector.scp", d / "trials.cosine_asnorm.score",
                 d / "trials.cosine_asnorm_qmf.score"]):
        r = run(*cmd)
        assert r.returncode == 0, r.stderr[-2000:]
    model = json.loads((b / "qmf.json").read_text())
    assert model["top_n"] == 20 and len(model["weights"]) == 5
    assert (d / "trials.cosine_asnorm_qmf.threshold").read_text().split() == ["0.05", f"{bayes_threshold(0.05):.6f}"]
    results = tmp_path / "results.json"
    for backend in ("cosine", "cosine_asnorm_qmf"):
        extra = [f"--threshold={d}/trials.cosine_asnorm_qmf.threshold"] if backend.endswith("qmf") else []
        r = run("sid.bin.compute_metrics", "--p-targets=0.05", *extra, trials, d / f"trials.{backend}.score", results)
        assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(results.read_text())["trials"]
    assert res["cosine_asnorm_qmf"]["cllr"] < res["cosine"]["cllr"]
    assert res["cosine_asnorm_qmf"]["cllr"] < 0.7
    assert res["cosine_asnorm_qmf"]["actdcf_0.05"] <= 1.1 * res["cosine_asnorm_qmf"]["mindcf_0.05"]
    r = run("sid.bin.print_results", results)
    assert "Cllr:" in r.stdout and "actDCF:" in r.stdout
