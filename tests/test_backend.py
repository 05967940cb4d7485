"""Unit tests of sid.backend: Kaldi I/O, LDA, PLDA (EM, smoothing, scoring), cosine and score normalisation."""

import subprocess
import sys

import kaldiio
import numpy as np
import pytest

from sid import kaldi_io
from sid.backend.lda import apply_transform, compute_lda
from sid.backend.plda import Plda, estimate_plda
from sid.backend.scoring import cohort_stats, cosine_scores, snorm
from sid.errors import SidError


def synthetic(num_spk=40, per_spk=(2, 3, 5, 8), dim=12, seed=0):
    """Speaker-structured vectors with unequal numbers of vectors per speaker."""
    rng = np.random.default_rng(seed)
    between = rng.normal(size=(dim, dim)) * 0.7
    within = rng.normal(size=(dim, dim)) * 0.4
    x, idx = [], []
    for s in range(num_spk):
        centre = rng.normal(size=dim) @ between + 1.5
        n = per_spk[s % len(per_spk)]
        x.append(centre + rng.normal(size=(n, dim)) @ within)
        idx += [s] * n
    return np.vstack(x).astype(np.float32), np.array(idx)


# ------------------------------------------------------------------ I/O

@pytest.mark.parametrize("spec", ["ark:{d}/a.ark", "ark,t:{d}/a.ark", "ark,scp:{d}/a.ark,{d}/a.scp"])
def test_vector_table_roundtrip(tmp_path, spec):
    x = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    keys = [f"utt{i}" for i in range(5)]
    kaldi_io.write_vectors(spec.format(d=tmp_path), keys, x)
    read_spec = f"scp:{tmp_path}/a.scp" if "scp" in spec else spec.format(d=tmp_path)
    got_keys, got = kaldi_io.read_vectors(read_spec)
    assert got_keys == keys
    np.testing.assert_allclose(got, x, rtol=1e-6 if "t" in spec.split(":")[0].split(",") else 0)
    # kaldiio (hence Kaldi's format) reads what we wrote.
    with kaldiio.ReadHelper(read_spec.replace(",t:", ":")) as reader:
        for (k, v), key, row in zip(reader, keys, x):
            assert k == key
            np.testing.assert_allclose(v, row, rtol=1e-6)


def test_reads_kaldiio_archives_and_pipes(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/k.ark,{tmp_path}/k.scp") as w:
        for i, row in enumerate(x):
            w[f"u{i}"] = row
    keys, got = kaldi_io.read_vectors(f"ark:cat {tmp_path}/k.ark |")
    assert keys == ["u0", "u1", "u2"]
    np.testing.assert_array_equal(got, x)
    keys, got = kaldi_io.read_vectors(f"scp:{tmp_path}/k.scp")
    np.testing.assert_array_equal(got, x)


def test_text_format_is_kaldis(tmp_path):
    kaldi_io.write_vectors(f"ark,t:{tmp_path}/t.ark", ["a"], np.array([[1.0, 2.5, 1 / 3]], dtype=np.float32))
    assert (tmp_path / "t.ark").read_text() == "a  [ 1 2.5 0.3333333 ]\n"
    assert kaldi_io.encode(np.ones((2, 2)), False) == b" [\n  1 1 \n  1 1 ]\n"


def test_int_table_roundtrip(tmp_path):
    items = [("spk1", 3), ("spk2", 12)]
    kaldi_io.write_int_table(f"ark,t:{tmp_path}/n.txt", items)
    assert (tmp_path / "n.txt").read_text() == "spk1 3 \nspk2 12 \n"
    kaldi_io.write_int_table(f"ark:{tmp_path}/n.ark", items)
    assert kaldi_io.read_int_table(f"ark:{tmp_path}/n.ark") == dict(items)
    assert kaldi_io.read_int_table(f"ark,t:{tmp_path}/n.txt") == dict(items)


def test_io_errors(tmp_path):
    kaldi_io.write_vectors(f"ark:{tmp_path}/a.ark", ["a", "b"], np.ones((2, 4), np.float32))
    data = (tmp_path / "a.ark").read_bytes()
    (tmp_path / "cut.ark").write_bytes(data[:-3])
    with pytest.raises(SidError, match="key 'b'.*truncated"):
        kaldi_io.read_vectors(f"ark:{tmp_path}/cut.ark")
    (tmp_path / "dup.ark").write_bytes(data + data)
    with pytest.raises(SidError, match="duplicate key 'a'"):
        kaldi_io.read_vectors(f"ark:{tmp_path}/dup.ark")
    with pytest.raises(SidError, match="bad table specifier"):
        kaldi_io.read_vectors(str(tmp_path / "a.ark"))
    with pytest.raises(SidError, match="cannot (read|open)"):
        kaldi_io.read_vectors(f"ark:{tmp_path}/missing.ark")
    (tmp_path / "mixed.txt").write_text("a [ 1 2 ]\nb [ 1 2 3 ]\n")
    with pytest.raises(SidError, match="key 'b' has dimension 3"):
        kaldi_io.read_vectors(f"ark,t:{tmp_path}/mixed.txt")


# ------------------------------------------------------------------ LDA

@pytest.mark.parametrize("factor", [0.0, 0.1])
def test_lda_whitens_and_diagonalises(factor):
    x, idx = synthetic()
    lda = compute_lda(x, idx, dim=6, total_covariance_factor=factor)
    assert lda.shape == (6, 13)
    xc = x.astype(np.float64) - x.mean(axis=0)
    total = xc.T @ xc / len(x)
    means = np.stack([xc[idx == s].mean(axis=0) for s in range(idx.max() + 1)])
    counts = np.bincount(idx)
    between = (means * counts[:, None]).T @ means / len(x)
    within = total - between
    a = lda[:, :-1].astype(np.float64)
    np.testing.assert_allclose(a @ (factor * total + (1 - factor) * within) @ a.T, np.eye(6), atol=1e-4)
    proj_b = a @ between @ a.T
    np.testing.assert_allclose(proj_b, np.diag(np.diag(proj_b)), atol=1e-4)
    assert np.all(np.diff(np.diag(proj_b)) <= 1e-6)
    # The offset column removes the training mean.
    np.testing.assert_allclose(apply_transform(lda, x).mean(axis=0), 0, atol=1e-4)


def test_lda_errors():
    x, idx = synthetic(dim=12)
    with pytest.raises(SidError, match="--dim=13"):
        compute_lda(x, idx, dim=13)
    with pytest.raises(SidError, match="all the same"):
        compute_lda(np.ones_like(x), idx, dim=4)
    with pytest.raises(SidError, match="does not fit"):
        apply_transform(np.ones((3, 5)), x)


def test_class_stats_rows_in_any_order():
    """Class sums, counts and within-class scatter, rows grouped by class or not, in one call
    or in blocks, equal the direct double-precision sums (a class split across chunks too)."""
    from sid.backend.lda import ClassStats

    x, idx = synthetic(num_spk=25, dim=6)
    x64 = x.astype(np.float64)
    means = np.stack([x64[idx == c].mean(axis=0) for c in range(25)])
    scatter = (x64 - means[idx]).T @ (x64 - means[idx])
    shuffled = np.random.default_rng(1).permutation(len(x))
    for rows in (np.arange(len(x)), shuffled):
        stats = ClassStats(25, 6, chunk=7)
        for s in range(0, len(rows), 11):
            stats.add(x[rows[s:s + 11]], idx[rows[s:s + 11]])
        sums, counts, within = stats.result()
        np.testing.assert_array_equal(counts, np.bincount(idx))
        np.testing.assert_allclose(sums, means * counts[:, None], rtol=1e-12)
        np.testing.assert_allclose(within, scatter, rtol=1e-10, atol=1e-10)


def test_training_passes_equal_the_table_in_memory(tmp_path):
    """train_passes over an scp in small blocks, over a pipe, and over the table in memory: the same
    mean, LDA and PLDA as LDA and PLDA computed directly on the whole mean-subtracted table; vectors
    without a speaker count in the mean only; a table that changes between passes is an error."""
    from sid.backend.pipeline import normalize_length, train, train_passes

    x, idx = synthetic(num_spk=30, dim=10)
    keys = [f"s{s:02d}-u{i:03d}" for i, s in enumerate(idx)]
    utt2spk = {k: f"s{s:02d}" for k, s in zip(keys, idx)}
    utt2spk["zz-none"] = "spk-without-vectors"
    extra = np.full((2, x.shape[1]), 3.0, dtype=np.float32)  # no speaker: in the mean only
    table_keys, table = keys + ["a-orphan", "b-orphan"], np.vstack([x, extra])
    kaldi_io.write_vectors(f"ark,scp:{tmp_path}/t.ark,{tmp_path}/t.scp", table_keys, table)

    mean = table.astype(np.float64).mean(axis=0)
    centred = x - mean.astype(np.float32)
    lda = compute_lda(centred, idx, dim=6, total_covariance_factor=0.0)
    plda = estimate_plda(normalize_length(apply_transform(lda, centred)), idx, num_em_iters=3)
    runs = {"scp": train_passes(kaldi_io.vector_passes(f"scp:{tmp_path}/t.scp", rows=7), utt2spk, 6, 0.0, 3),
            "pipe": train_passes(kaldi_io.vector_passes(f"ark:cat {tmp_path}/t.ark |", rows=7), utt2spk, 6, 0.0, 3),
            "memory": train(table_keys, table.copy(), utt2spk, 6, 0.0, 3)}
    for name, (m, l, p) in runs.items():
        np.testing.assert_allclose(m, mean, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(l, lda, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(p.transform, plda.transform, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(p.psi, plda.psi, rtol=1e-4, err_msg=name)

    calls = []

    def changing():
        calls.append(1)
        yield (table_keys if len(calls) == 1 else table_keys[::-1])[:50], table[:50].copy()

    with pytest.raises(SidError, match="changed while being read"):
        train_passes(changing, utt2spk, 4, 0.0, 2, name="t.scp")


def test_lda_plda_on_rank_deficient_vectors(caplog):
    """Embeddings spanning a subspace (collapsed or low-rank d-vectors, dead ReLU outputs,
    fewer vectors than dimensions): LDA works in the subspace, limited to its rank, with a
    warning saying so, and LDA + PLDA score exactly as on the subspace's own coordinates."""
    from sid.backend.pipeline import prepare, train

    z, idx = synthetic(num_spk=60, dim=12)
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(31, 12)))[0]          # 12 orthonormal directions of 31
    basis = np.insert(basis, 5, 0.0, axis=0)                      # and a unit that never fires
    x = (z.astype(np.float64) @ basis.T).astype(np.float32)
    keys = [f"u{i}" for i in range(len(x))]
    utt2spk = {k: f"s{s}" for k, s in zip(keys, idx)}
    with caplog.at_level("WARNING"):
        mean, lda, plda = train(keys, x.copy(), utt2spk, lda_dim=20)
    assert lda.shape == (12, 33)
    assert "span only 12 dimensions" in caplog.text and "limited from 20 to 12" in caplog.text
    mean_z, lda_z, plda_z = train(keys, z.copy(), utt2spk, lda_dim=12)
    scores = plda.score_matrix(prepare(x.copy(), mean, lda), np.ones(len(x)), prepare(x.copy(), mean, lda))
    scores_z = plda_z.score_matrix(prepare(z.copy(), mean_z, lda_z), np.ones(len(z)),
                                   prepare(z.copy(), mean_z, lda_z))
    np.testing.assert_allclose(scores, scores_z, rtol=1e-3, atol=1e-3)
    # Fewer vectors than dimensions: the same, within the vectors' span.
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert compute_lda(z[:8], idx[:8], dim=4).shape == (4, 13)
    assert "span only 7 dimensions" in caplog.text


# ------------------------------------------------------------------ PLDA

def kaldi_em_reference(x, idx, iters):
    """Direct transcription of Kaldi's PldaEstimator maths: one speaker at a time, no grouping."""
    d = x.shape[1]
    x = x.astype(np.float64)
    spk = [x[idx == s] for s in range(idx.max() + 1)]
    means = [g.mean(axis=0) for g in spk]
    mu = np.mean(means, axis=0)
    scatter = sum((g - m).T @ (g - m) for g, m in zip(spk, means))
    w, b = np.eye(d), np.eye(d)
    for _ in range(iters):
        wi, bi = np.linalg.inv(w), np.linalg.inv(b)
        ws, wc, bs, bc = scatter.copy(), float(len(x) - len(spk)), np.zeros((d, d)), 0.0
        for g, m in zip(spk, means):
            n = len(g)
            mixed = np.linalg.inv(bi + n * wi)
            wv = mixed @ (n * wi @ (m - mu))
            bs += mixed + np.outer(wv, wv)
            bc += 1
            ws += n * (mixed + np.outer(m - mu - wv, m - mu - wv))
            wc += 1
        w, b = ws / wc, bs / bc
    return w, b, mu


def test_plda_em_matches_kaldi_maths():
    x, idx = synthetic()
    plda = estimate_plda(x, idx, num_em_iters=4)
    w, b, mu = kaldi_em_reference(x, idx, 4)
    np.testing.assert_allclose(plda.mean, mu, atol=1e-6)
    t = plda.transform
    np.testing.assert_allclose(t @ w @ t.T, np.eye(x.shape[1]), atol=1e-6)
    np.testing.assert_allclose(t @ b @ t.T, np.diag(plda.psi), atol=1e-6)
    assert np.all(np.diff(plda.psi) <= 0)


def test_plda_io_roundtrip(tmp_path):
    x, idx = synthetic()
    plda = estimate_plda(x, idx, num_em_iters=2)
    plda.write(str(tmp_path / "plda"), binary=True)
    assert (tmp_path / "plda").read_bytes()[:12] == b"\0B<Plda> DV "
    back = Plda.read(str(tmp_path / "plda"))
    np.testing.assert_array_equal(back.transform, plda.transform)
    plda.write(str(tmp_path / "plda.txt"), binary=False)
    text = Plda.read(str(tmp_path / "plda.txt"))
    np.testing.assert_allclose(text.psi, plda.psi, rtol=1e-6)
    (tmp_path / "bad").write_text("<Lda> [ 1 ]")
    with pytest.raises(SidError, match="not a Kaldi PLDA"):
        Plda.read(str(tmp_path / "bad"))


def test_plda_smoothing():
    x, idx = synthetic()
    plda = estimate_plda(x, idx, num_em_iters=3)
    inv = np.linalg.inv(plda.transform)
    w, b = inv @ inv.T, inv @ np.diag(plda.psi) @ inv.T
    plda.smooth_within_class_covariance(0.1)
    inv2 = np.linalg.inv(plda.transform)
    np.testing.assert_allclose(inv2 @ inv2.T, w + 0.1 * b, atol=1e-8)
    np.testing.assert_allclose(inv2 @ np.diag(plda.psi) @ inv2.T, b, atol=1e-8)


def kaldi_llr(plda, e, n, t):
    """Kaldi's LogLikelihoodRatio, term by term."""
    psi = plda.psi
    mean = n * psi / (n * psi + 1) * e
    var = 1 + psi / (n * psi + 1)
    given = -0.5 * (np.sum(np.log(var)) + np.log(2 * np.pi) * len(psi) + np.sum((t - mean) ** 2 / var))
    without = -0.5 * (np.sum(np.log(1 + psi)) + np.log(2 * np.pi) * len(psi) + np.sum(t ** 2 / (1 + psi)))
    return given - without


@pytest.mark.parametrize("simple", [False, True])
def test_plda_scoring(simple):
    x, idx = synthetic()
    plda = estimate_plda(x, idx, num_em_iters=3)
    n = np.array([1, 3, 1, 2])
    e, _ = plda.transform_vectors(x[:4], n, simple_length_norm=simple)
    t, factor = plda.transform_vectors(x[4:10], 1, simple_length_norm=simple)
    y = (x[4:10].astype(np.float64) - plda.mean) @ plda.transform.T
    if simple:
        np.testing.assert_allclose(np.linalg.norm(t, axis=1), np.sqrt(x.shape[1]), rtol=1e-5)
    else:
        np.testing.assert_allclose(np.sum(t.astype(np.float64) ** 2 / (plda.psi + 1), axis=1), x.shape[1], rtol=1e-5)
    np.testing.assert_allclose(t, y * factor[:, None], rtol=1e-5)
    ei, ti = np.repeat(np.arange(4), 6), np.tile(np.arange(6), 4)
    got = plda.log_likelihood_ratios(e, n, t, ei, ti)
    want = [kaldi_llr(plda, e[i].astype(np.float64), n[i], t[j].astype(np.float64)) for i, j in zip(ei, ti)]
    # float32 products over the rows (as Kaldi stores them), double sums: ~1e-7 relative.
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(plda.score_matrix(e, n, t).ravel(), got, rtol=1e-6, atol=1e-4)
    # With one utterance per side the two-covariance LLR is symmetric.
    np.testing.assert_allclose(plda.score_matrix(t, 1, t), plda.score_matrix(t, 1, t).T, atol=1e-4)


# ------------------------------------------------------------------ cosine and score normalisation

def test_cosine_and_snorm():
    rng = np.random.default_rng(3)
    e, t, c = rng.normal(size=(4, 6)), rng.normal(size=(5, 6)), rng.normal(size=(30, 6))
    ei, ti = np.repeat(np.arange(4), 5), np.tile(np.arange(5), 4)
    cos = cosine_scores(e, t, ei, ti)
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(cos, np.sum(unit(e)[ei] * unit(t)[ti], axis=1))
    for top in (30, 7):
        es = cohort_stats(lambda sl: unit(e)[sl] @ unit(c).T, 4, top, chunk=3)
        ts = cohort_stats(lambda sl: unit(t)[sl] @ unit(c).T, 5, top, chunk=2)
        ce, ct = np.sort(unit(e) @ unit(c).T)[:, -top:], np.sort(unit(t) @ unit(c).T)[:, -top:]
        want = 0.5 * ((cos - ce.mean(1)[ei]) / ce.std(1)[ei] + (cos - ct.mean(1)[ti]) / ct.std(1)[ti])
        np.testing.assert_allclose(snorm(cos, ei, ti, es, ts), want)


# ------------------------------------------------------------------ tools: clean errors

def test_tool_error_is_clean(tmp_path, sid_env):
    kaldi_io.write_vectors(f"ark:{tmp_path}/a.ark", ["a", "b"], np.ones((2, 4), np.float32))
    (tmp_path / "utt2spk").write_text("a s1\nb s1\n")
    proc = subprocess.run([sys.executable, "-m", "sid.bin.ivector_compute_lda", "--dim=10",
                           f"ark:{tmp_path}/a.ark", f"ark:{tmp_path}/utt2spk", str(tmp_path / "lda.mat")],
                          env=sid_env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "ERROR (ivector_compute_lda): --dim=10 must be between 1 and the vector dimension 4" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "lda.mat").exists()


def test_scp_reader_fast_path_and_fallbacks(tmp_path):
    """Float-vector scps over several archives take the vectorised path; anything else the general one."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    kaldi_io.write_vectors(f"ark,scp:{tmp_path}/a.ark,{tmp_path}/a.scp", ["a0", "a1", "a2"], a)
    kaldi_io.write_vectors(f"ark,scp:{tmp_path}/b.ark,{tmp_path}/b.scp", ["b0", "b1"], b)
    lines = (tmp_path / "a.scp").read_text().splitlines() + (tmp_path / "b.scp").read_text().splitlines()
    (tmp_path / "ab.scp").write_text("\n".join([lines[3], lines[0], lines[4], lines[1], lines[2]]) + "\n")
    keys, got = kaldi_io.read_vectors(f"scp:{tmp_path}/ab.scp")
    assert keys == ["b0", "a0", "b1", "a1", "a2"]
    np.testing.assert_array_equal(got, np.stack([b[0], a[0], b[1], a[1], a[2]]))
    # A double vector among floats, and a blank line: the general reader, same values.
    kaldi_io.write_vectors(f"ark,scp:{tmp_path}/d.ark,{tmp_path}/d.scp", ["d0"], b[:1].astype(np.float64))
    (tmp_path / "mixed.scp").write_text(lines[0] + "\n\n" + (tmp_path / "d.scp").read_text())
    keys, got = kaldi_io.read_vectors(f"scp:{tmp_path}/mixed.scp")
    assert keys == ["a0", "d0"]
    np.testing.assert_allclose(got, np.stack([a[0], b[0]]))
    # A truncated archive is reported by the general reader with the scp line.
    (tmp_path / "a.ark").write_bytes((tmp_path / "a.ark").read_bytes()[:-8])
    with pytest.raises(SidError, match=r"a.scp:3 .*truncated"):
        kaldi_io.read_vectors(f"scp:{tmp_path}/a.scp")
    (tmp_path / "dup.scp").write_text(lines[3] + "\n" + lines[3] + "\n")
    with pytest.raises(SidError, match="duplicate key 'b0'"):
        kaldi_io.read_vectors(f"scp:{tmp_path}/dup.scp")


def test_ark_reader_fast_path_and_fallbacks(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    kaldi_io.write_vectors(f"ark:{tmp_path}/a.ark", ["k0", "k1", "k2", "k3"], x)
    keys, got = kaldi_io.read_vectors(f"ark:cat {tmp_path}/a.ark |")
    assert keys == ["k0", "k1", "k2", "k3"]
    np.testing.assert_array_equal(got, x)
    # Vectors of another dimension after the first: the general reader names the key.
    kaldi_io.write_vectors(f"ark:{tmp_path}/b.ark", ["k4"], x[:1, :2])
    (tmp_path / "ab.ark").write_bytes((tmp_path / "a.ark").read_bytes() + (tmp_path / "b.ark").read_bytes())
    with pytest.raises(SidError, match="key 'k4' has dimension 2, expected 3"):
        kaldi_io.read_vectors(f"ark:{tmp_path}/ab.ark")
    (tmp_path / "cut.ark").write_bytes((tmp_path / "a.ark").read_bytes()[:-4])
    with pytest.raises(SidError, match="key 'k3'.*truncated"):
        kaldi_io.read_vectors(f"ark:{tmp_path}/cut.ark")
