"""Parity with Kaldi's binaries: the command lines of ../shared/reference/kaldi/README.md
(back-end part), with only the binary names changed, reproduce Kaldi's files."""

import shutil
import subprocess

import numpy as np
import pytest

from sid import kaldi_io
from sid.backend.plda import Plda

B = "python -m sid.bin"
XF = (f"ark:{B}.ivector_subtract_global_mean mean.vec ark,t:test.txt ark:- | "
      f"{B}.ivector_transform lda.mat ark:- ark:- | {B}.ivector_normalize_length ark:- ark:- |")
INPUTS = ["train.txt", "utt2spk", "spk2utt", "test.txt", "trials_utt", "enroll_spk2utt", "trials_model"]


def run(cmd: str, cwd, env) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}\n{proc.stderr}"
    return proc


def read_scores(path):
    rows = [line.split() for line in open(path)]
    return [r[:2] for r in rows], np.array([float(r[2]) for r in rows])


@pytest.fixture(scope="module")
def ref(kaldi_ref):
    return kaldi_ref / "backend"


@pytest.fixture(scope="module")
def work(ref, tmp_path_factory, repo):
    """Run the whole README pipeline once (our binaries, Kaldi's inputs)."""
    import os
    d = tmp_path_factory.mktemp("kaldi_backend")
    for f in INPUTS:
        shutil.copy(ref / f, d / f)
    env = dict(os.environ, PYTHONPATH=str(repo), LC_ALL="C")
    env["PATH"] = f"{repo / '.venv' / 'bin'}:{env['PATH']}"
    run(f"{B}.ivector_mean ark,t:train.txt mean.vec", d, env)
    run(f'{B}.ivector_compute_lda --total-covariance-factor=0.0 --dim=50 '
        f'"ark:{B}.ivector_subtract_global_mean ark,t:train.txt ark:- |" ark:utt2spk lda.mat', d, env)
    train = (f'"ark:{B}.ivector_subtract_global_mean ark,t:train.txt ark:- | '
             f'{B}.ivector_transform LDA ark:- ark:- | {B}.ivector_normalize_length ark:- ark:- |"')
    run(f"{B}.ivector_compute_plda ark:spk2utt {train.replace('LDA', 'lda.mat')} plda", d, env)
    run(f"{B}.ivector_copy_plda --binary=false plda plda.txt", d, env)
    # Our LDA rows may differ from Kaldi's in sign (scores do not), so the PLDA
    # file is compared on a model trained from Kaldi's lda.mat.
    shutil.copy(ref / "lda.mat", d / "kaldi_lda.mat")
    run(f"{B}.ivector_compute_plda --binary=false ark:spk2utt {train.replace('LDA', 'kaldi_lda.mat')} "
        "plda_kaldi_lda.txt", d, env)
    run(f'{B}.ivector_plda_scoring --normalize-length=true "{B}.ivector_copy_plda --smoothing=0.0 plda - |" '
        f'"{XF}" "{XF}" "cut -d\' \' -f1,2 trials_utt |" scores_plda.txt', d, env)
    run(f'{B}.ivector_mean ark:enroll_spk2utt "{XF}" ark:models.ark ark,t:enroll_num_utts.txt', d, env)
    run(f'{B}.ivector_plda_scoring --normalize-length=true --num-utts=ark,t:enroll_num_utts.txt '
        f'"{B}.ivector_copy_plda --smoothing=0.0 plda - |" ark:models.ark "{XF}" '
        f'"cut -d\' \' -f1,2 trials_model |" scores_plda_multi.txt', d, env)
    return d, env


def test_mean(work, ref):
    d, _ = work
    np.testing.assert_allclose(kaldi_io.read_vector(str(d / "mean.vec")),
                               kaldi_io.read_vector(str(ref / "mean.vec")), rtol=1e-6, atol=1e-6)
    # Text, double, printed like Kaldi.
    assert (d / "mean.vec").read_text().startswith(" [ 0.6917403 2.242702 ")


def test_lda(work, ref):
    d, _ = work
    ours = kaldi_io.read_matrix(str(d / "lda.mat"))
    theirs = kaldi_io.read_matrix(str(ref / "lda.mat"))
    assert ours.shape == theirs.shape == (50, 101)
    assert (d / "lda.mat").read_bytes()[:5] == b"\0BFM "
    # Eigenvectors are unique up to sign; each row must match Kaldi's or its negation.
    sign = np.sign(np.sum(ours * theirs, axis=1))
    np.testing.assert_allclose(ours * sign[:, None], theirs, atol=2e-5)


def test_plda(work, ref):
    d, _ = work
    ours, theirs = Plda.read(str(d / "plda_kaldi_lda.txt")), Plda.read(str(ref / "plda.txt"))
    np.testing.assert_allclose(Plda.read(str(d / "plda")).psi, Plda.read(str(d / "plda.txt")).psi, rtol=1e-6)
    np.testing.assert_allclose(ours.mean, theirs.mean, atol=1e-5)
    np.testing.assert_allclose(ours.psi, theirs.psi, rtol=1e-5)
    sign = np.sign(np.sum(ours.transform * theirs.transform, axis=1))
    np.testing.assert_allclose(ours.transform * sign[:, None], theirs.transform, atol=5e-5)
    text = (d / "plda.txt").read_text()
    assert text.startswith("<Plda>  [ ") and text.endswith("]\n</Plda> ")


@pytest.mark.parametrize("name", ["scores_plda.txt", "scores_plda_multi.txt"])
def test_scores(work, ref, name):
    d, _ = work
    keys, ours = read_scores(d / name)
    ref_keys, theirs = read_scores(ref / name)
    assert keys == ref_keys
    assert np.max(np.abs(ours - theirs)) < 1e-3


def test_num_utts(work, ref):
    d, _ = work
    assert (d / "enroll_num_utts.txt").read_text() == (ref / "enroll_num_utts.txt").read_text()


def test_eer(work, ref):
    d, env = work
    out = run("paste -d' ' <(cut -d' ' -f3 scores_plda.txt) <(cut -d' ' -f3 trials_utt) "
              f"| {B}.compute_eer -", d, env)
    # eer.txt is compute-eer's stdout as it was: 4 significant digits, no newline.
    assert out.stdout == (ref / "eer.txt").read_bytes().decode()
    # On Kaldi's own input (our scores differ in the 6th digit) the log line is Kaldi's too.
    out = run(f"{B}.compute_eer {ref / 'score_key.txt'}", d, env)
    assert out.stdout == (ref / "eer.txt").read_bytes().decode()
    kaldi_line = next(line for line in (ref / "kaldi.log").read_text().splitlines()
                      if line.startswith("LOG (compute-eer"))
    assert out.stderr.splitlines()[0].split(") ", 1)[1] == kaldi_line.split(") ", 1)[1]


def test_min_dcf(work, ref):
    d, env = work
    expected = dict(line.split() for line in (ref / "mindcf.txt").read_text().splitlines())
    log = (ref / "kaldi.log").read_text()
    for p, value in expected.items():
        out = run(f"{B}.compute_min_dcf --p-target {p} scores_plda.txt trials_utt", d, env)
        assert out.stdout == f"{value}\n"
        line = [x for x in out.stderr.splitlines() if x.startswith("minDCF")][0]
        assert line in log
