"""The scoring steps end to end on synthetic embeddings: score_cosine.sh, score_plda.sh,
score_norm.sh (cosine and PLDA, AS-norm), compute_metrics.sh (results.json, table, plots)."""

import json
import subprocess
from collections import defaultdict

import numpy as np
import pytest

from sid import kaldi_io

DIM = 24


def make_set(root, prefix, num_spk, per_spk, rng, between, within):
    keys, spk, rows = [], [], []
    for s in range(num_spk):
        centre = rng.normal(size=DIM) @ between + 2.0
        for u in range(per_spk):
            keys.append(f"{prefix}{s:03d}-{u:02d}")
            spk.append(f"{prefix}{s:03d}")
            rows.append(centre + rng.normal(size=DIM) @ within)
    root.mkdir(parents=True)
    kaldi_io.write_vectors(f"ark,scp:{root}/xvector.ark,{root}/xvector.scp", keys, np.array(rows, np.float32))
    return keys, spk


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    d = tmp_path_factory.mktemp("steps")
    rng = np.random.default_rng(7)
    between, within = rng.normal(size=(DIM, DIM)) * 0.6, rng.normal(size=(DIM, DIM)) * 0.5
    keys, spk = make_set(d / "emb/train", "tr", 50, 8, rng, between, within)
    (d / "data/train").mkdir(parents=True)
    (d / "data/train/utt2spk").write_text("".join(f"{k} {s}\n" for k, s in zip(keys, spk)))
    spk2utt = defaultdict(list)
    for k, s in zip(keys, spk):
        spk2utt[s].append(k)
    (d / "data/train/spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in sorted(spk2utt.items())))
    keys, spk = make_set(d / "emb/test", "te", 15, 6, rng, between, within)
    (d / "data/test").mkdir(parents=True)
    (d / "data/test/utt2spk").write_text("".join(f"{k} {s}\n" for k, s in zip(keys, spk)))
    lines = [f"{a} {b} {'target' if sa == sb else 'nontarget'}\n"
             for i, (a, sa) in enumerate(zip(keys, spk)) for b, sb in zip(keys[i + 1:], spk[i + 1:])]
    (d / "data/test/trials").write_text("".join(lines))
    (d / "data/test/trials_half").write_text("".join(lines[::2]))
    return d


def sh(cmd, cwd, env):
    proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_scoring_steps(recipe, sid_env):
    d, env = recipe, sid_env
    args = "data/train emb/train emb/test exp/scores data/test/trials"
    sh(f"score_cosine.sh {args} data/test/trials_half", d, env)
    sh(f"score_plda.sh --lda-dim 16 {args}", d, env)
    sh(f"score_norm.sh --top-n 20 {args} && score_norm.sh --backend plda --method snorm --cohort utt {args}", d, env)
    out = sh("compute_metrics.sh --tsne-emb-dir emb/test --tsne-utt2spk data/test/utt2spk "
             "exp/scores exp/results data/test/trials data/test/trials_half", d, env)

    backends = {"cosine", "plda", "cosine_asnorm", "plda_snorm_uttcohort"}
    results = json.loads((d / "exp/results/results.json").read_text())
    assert set(results) == {"trials", "trials_half"}
    assert set(results["trials"]) == backends and set(results["trials_half"]) == {"cosine"}
    entry = results["trials"]["plda"]
    assert set(entry) == {"eer", "mindcf_0.01", "mindcf_0.001", "mindcf_0.05", "cllr", "num_trials"}
    assert entry["num_trials"] == len((d / "data/test/trials").read_text().splitlines())
    # Speaker-structured synthetic data: every back-end separates the speakers well.
    for backend in backends:
        assert results["trials"][backend]["eer"] < 20, (backend, results["trials"][backend])
    assert results["trials"]["plda"]["eer"] < results["trials"]["cosine"]["eer"]

    # The EER agrees with the Kaldi-style tools on the same score file.
    eer = sh("paste -d' ' <(cut -d' ' -f3 exp/scores/trials.plda.score) <(cut -d' ' -f3 data/test/trials) "
             "| python -m sid.bin.compute_eer -", d, env)
    assert eer == f"{entry['eer']:.4g}"  # compute-eer prints 4 significant digits
    dcf = sh("python -m sid.bin.compute_min_dcf --p-target 0.01 exp/scores/trials.plda.score data/test/trials", d, env)
    assert dcf.strip() == f"{entry['mindcf_0.01']:.4f}"

    assert "# trials plda (" in out and f"EER: {entry['eer']:.4g}%" in out
    assert f"minDCF(p-target=0.01): {entry['mindcf_0.01']:.4f}" in out
    for png in ["det_trials.png", "det_trials_half.png", "hist_trials_half_cosine.png", "tsne.png"] + [f"hist_trials_{b}.png" for b in backends]:
        assert (d / "exp/results" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png

    # A finished step is a no-op on rerun.
    before = (d / "exp/scores/trials.plda.score").stat().st_mtime_ns
    assert "not rescoring" in sh(f"score_plda.sh --lda-dim 16 {args}", d, env)
    assert (d / "exp/scores/trials.plda.score").stat().st_mtime_ns == before


def test_missing_input_is_named(recipe, sid_env):
    proc = subprocess.run(["bash", "-c", "score_plda.sh data/train emb/train emb/nothing exp/x data/test/trials"],
                          cwd=recipe, env=sid_env, capture_output=True, text=True)
    assert proc.returncode == 1 and "no such file emb/nothing/xvector.scp" in proc.stderr


def test_in_process_backend_matches_kaldi_pipes(recipe, sid_env, tmp_path):
    """train_backend / score_plda (one process) give the files and scores of Kaldi's pipes of tools."""
    from sid.backend.plda import Plda

    d, env = recipe, sid_env
    b = "python -m sid.bin"
    out = tmp_path / "be"
    sh(f"{b}.train_backend --lda-dim=16 scp:emb/train/xvector.scp data/train/utt2spk {out}", d, env)
    sub = f"{b}.ivector_subtract_global_mean"
    sh(f"{b}.ivector_mean scp:emb/train/xvector.scp {tmp_path}/mean.vec && "
       f'{b}.ivector_compute_lda --total-covariance-factor=0.0 --dim=16 "ark:{sub} scp:emb/train/xvector.scp ark:- |" '
       f"ark:data/train/utt2spk {tmp_path}/lda.mat && "
       f'{b}.ivector_compute_plda ark:data/train/spk2utt "ark:{sub} scp:emb/train/xvector.scp ark:- | '
       f'{b}.ivector_transform {out}/transform.mat ark:- ark:- | {b}.ivector_normalize_length ark:- ark:- |" '
       f"{tmp_path}/plda", d, env)
    np.testing.assert_allclose(kaldi_io.read_vector(str(out / "mean.vec")), kaldi_io.read_vector(f"{tmp_path}/mean.vec"))
    ours, pipe = kaldi_io.read_matrix(str(out / "transform.mat")), kaldi_io.read_matrix(f"{tmp_path}/lda.mat")
    np.testing.assert_allclose(ours, pipe, atol=1e-5)
    ours, pipe = Plda.read(str(out / "plda")), Plda.read(f"{tmp_path}/plda")
    np.testing.assert_allclose(ours.psi, pipe.psi, rtol=1e-5)
    np.testing.assert_allclose(ours.transform, pipe.transform, atol=1e-5)

    xf = (f"ark:{sub} {out}/mean.vec scp:emb/test/xvector.scp ark:- | {b}.ivector_transform {out}/transform.mat "
          f"ark:- ark:- | {b}.ivector_normalize_length ark:- ark:- |")
    sh(f'{b}.ivector_plda_scoring --normalize-length=true "{b}.ivector_copy_plda --smoothing=0.1 {out}/plda - |" '
       f'"{xf}" "{xf}" data/test/trials {tmp_path}/pipe.score', d, env)
    sh(f"{b}.score_plda --mean={out}/mean.vec --transform={out}/transform.mat --smoothing=0.1 {out}/plda "
       f"scp:emb/test/xvector.scp scp:emb/test/xvector.scp data/test/trials {tmp_path}/one.score "
       f"data/test/trials_half {tmp_path}/half.score", d, env)
    pipe_rows = [line.split() for line in open(tmp_path / "pipe.score")]
    one_rows = [line.split() for line in open(tmp_path / "one.score")]
    assert [r[:2] for r in one_rows] == [r[:2] for r in pipe_rows]
    diff = np.abs(np.array([float(r[2]) for r in one_rows]) - np.array([float(r[2]) for r in pipe_rows]))
    assert diff.max() < 1e-3
    assert (tmp_path / "half.score").read_text().splitlines() == (tmp_path / "one.score").read_text().splitlines()[::2]


def test_changed_options_or_inputs_redo_the_outputs(recipe, sid_env, tmp_path):
    """A back-end or score file made with other options or from other embeddings is made again
    (each records its options and inputs in <output>.made_by), never silently reused."""
    import shutil

    d, env = tmp_path, sid_env
    for sub in ("data", "emb"):
        shutil.copytree(recipe / sub, d / sub)
    args = "data/train emb/train emb/test exp/scores data/test/trials"
    scores = d / "exp/scores"
    sh(f"score_cosine.sh {args} && score_plda.sh --lda-dim 16 {args} && score_norm.sh --top-n 20 {args}", d, env)
    plda_before = (scores / "trials.plda.score").read_text()
    assert kaldi_io.read_matrix(str(scores / "backend_plda/transform.mat")).shape[0] == 16

    # Another --lda-dim: the PLDA back-end and its scores are made again, the cosine ones kept.
    out = sh(f"score_plda.sh --lda-dim 8 {args}", d, env)
    assert "making it again" in out and "-options lda_dim=16" in out and "+options lda_dim=8" in out
    assert kaldi_io.read_matrix(str(scores / "backend_plda/transform.mat")).shape[0] == 8
    assert (scores / "trials.plda.score").read_text() != plda_before
    assert "not rescoring" in sh(f"score_cosine.sh {args}", d, env)

    # LDA for cosine, then none again: the transform goes with it (score_norm.sh goes by it).
    sh(f"score_cosine.sh --lda-dim 8 {args}", d, env)
    assert (scores / "backend_cosine/transform.mat").exists()
    sh(f"score_cosine.sh {args}", d, env)
    assert not (scores / "backend_cosine/transform.mat").exists()

    # New test embeddings in the same files (as a retrained model's, re-extracted): every
    # score is made again, AS-norm's from the new cosine scores.
    cosine, asnorm = (scores / "trials.cosine.score").read_text(), (scores / "trials.cosine_asnorm.score").read_text()
    keys, vecs = kaldi_io.read_vectors("scp:" + str(d / "emb/test/xvector.scp"))
    noise = np.random.default_rng(1).normal(size=vecs.shape).astype(np.float32)
    kaldi_io.write_vectors(f"ark,scp:{d}/emb/test/xvector.ark,{d}/emb/test/xvector.scp", keys, vecs + noise)
    assert "making it again" in sh(f"score_cosine.sh {args}", d, env)
    assert (scores / "trials.cosine.score").read_text() != cosine
    assert "making it again" in sh(f"score_norm.sh --top-n 20 {args}", d, env)
    assert (scores / "trials.cosine_asnorm.score").read_text() != asnorm
    # And a changed --top-n redoes AS-norm alone.
    out = sh(f"score_norm.sh --top-n 10 {args}", d, env)
    assert "+options allow_partial=false top_n=10" in out
