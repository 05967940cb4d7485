"""Kaldi's PLDA (ivector/plda.cc): two-covariance model, EM training, scoring, file format.

Model: x = mean + between-speaker y + within-speaker e, stored as ``mean``,
``transform`` (makes the within-class covariance unit and the between-class
covariance diagonal) and ``psi`` (that diagonal). Files are Kaldi's
``<Plda> mean transform psi </Plda>`` in binary (doubles) or text.

Training follows PldaEstimator: within/between covariances start at I and
each EM iteration accumulates, per speaker with n vectors and mean m
(minus the mean of speaker means), the posterior of its speaker variable
(covariance (B^-1 + n W^-1)^-1, mean w) into B and W stats. Rather than one
matrix inverse per distinct n, each iteration diagonalises W and B together
(T W T^T = I, T B T^T = diag(l)): there every posterior covariance is the
diagonal l / (1 + n l), so all speakers are handled by elementwise
operations and two products, whatever their numbers of vectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sid import kaldi_io
from sid.backend import big_blas
from sid.backend.lda import class_stats, fix_signs, row_squares
from sid.errors import SidError

log = logging.getLogger(__name__)


def _joint_diagonalize(within: np.ndarray, between: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T, T^-1, l)`` with ``T within T^T = I`` and ``T between T^T = diag(l)``."""
    try:
        chol = np.linalg.cholesky((within + within.T) / 2)
    except np.linalg.LinAlgError:
        raise SidError("within-class covariance is not positive definite: too little data for the dimension, or "
                       "vectors spanning fewer dimensions than they have (a collapsed or low-rank model); "
                       "an LDA first (--lda-dim) reduces them to the dimensions they span") from None
    chol_inv = np.linalg.inv(chol)
    lam, u = np.linalg.eigh(chol_inv @ ((between + between.T) / 2) @ chol_inv.T)
    return u.T @ chol_inv, chol @ u, lam


@dataclass
class Plda:
    mean: np.ndarray       # (D,) float64
    transform: np.ndarray  # (D, D) float64
    psi: np.ndarray        # (D,) float64

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    # ------------------------------------------------------------ I/O
    @classmethod
    def read(cls, rxfilename: str) -> "Plda":
        data = kaldi_io.read_bytes(rxfilename)
        binary = data[:2] == b"\0B"
        pos = 2 if binary else 0
        while pos < len(data) and data[pos:pos + 1] in (b" ", b"\n", b"\t", b"\r"):
            pos += 1
        if data[pos:pos + 7] != b"<Plda> ":
            raise SidError(f"{rxfilename}: not a Kaldi PLDA model (expected token <Plda>)")
        pos += 7
        parts = []
        for name in ("mean", "transform", "psi"):
            where = f"{rxfilename}: PLDA {name}"
            if binary:
                array, pos = kaldi_io.decode_binary(data, pos, where)
            else:
                array, pos = kaldi_io.decode_text(data, pos, where)
            parts.append(np.array(array, dtype=np.float64))
        if data[pos:].strip() != b"</Plda>":
            raise SidError(f"{rxfilename}: expected </Plda> after psi")
        mean, transform, psi = parts
        d = mean.shape[0]
        if mean.ndim != 1 or transform.shape != (d, d) or psi.shape != (d,):
            raise SidError(f"{rxfilename}: inconsistent PLDA dimensions (mean {mean.shape}, "
                           f"transform {transform.shape}, psi {psi.shape})")
        return cls(mean, transform, psi)

    def write(self, wxfilename: str, binary: bool = True) -> None:
        if binary:
            body = b"\0B<Plda> " + b"".join(kaldi_io.encode(a, True)[2:] for a in (self.mean, self.transform, self.psi))
        else:
            body = b"<Plda> " + b"".join(kaldi_io.encode(a, False) for a in (self.mean, self.transform, self.psi))
        with kaldi_io.open_output(wxfilename) as f:
            f.write(body + b"</Plda> ")

    # ------------------------------------------------------------ model edits
    def smooth_within_class_covariance(self, factor: float) -> None:
        """ivector-copy-plda --smoothing: add ``factor`` x between-class to within-class covariance."""
        if not 0.0 <= factor <= 1.0:
            raise SidError(f"--smoothing={factor} must be between 0 and 1")
        log.info("Smoothing within-class covariance by %g, Psi is initially: [ %s ]",
                 factor, " ".join(f"{v:g}" for v in self.psi))
        within = 1.0 + factor * self.psi
        self.transform = self.transform * (within ** -0.5)[:, None]
        self.psi = self.psi / within
        log.info("New value of Psi is [ %s ]", " ".join(f"{v:g}" for v in self.psi))

    # ------------------------------------------------------------ scoring
    # Products over whole tables and trial lists are float32 (rows are float32, as Kaldi keeps
    # them); the sums that set a score's scale (squared norms, log-determinants, per-vector
    # terms) are double. Scores agree with Kaldi's double arithmetic to ~1e-5 (parity: 1e-3)
    # at a fifth of the time.
    def transform_vectors(self, x: np.ndarray, num_utts: np.ndarray | int = 1, normalize_length: bool = True,
                          simple_length_norm: bool = False, in_place: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Kaldi's TransformIvector for each row: returns (float32 transformed rows, normalisation factors).

        ``in_place``: the result overwrites ``x`` (float32), a block of rows at a time, so a whole
        table is not held twice."""
        # x T^T - mean T^T is (x - mean) T^T, without a copy of the table.
        t = self.transform.T.astype(np.float32)
        offset = (self.mean @ self.transform.T).astype(np.float32)
        if in_place and x.dtype == np.float32 and x.flags.c_contiguous:
            buf = np.empty((min(4096, len(x)), x.shape[1]), dtype=np.float32)  # one 3 MB product buffer
            for s in range(0, len(x), 4096):
                product = buf[:len(x[s:s + 4096])]
                np.matmul(x[s:s + 4096], t, out=product)
                np.subtract(product, offset, out=x[s:s + 4096])
            y = x
        else:
            with big_blas():
                y = np.asarray(x, dtype=np.float32) @ t
            y -= offset
        if simple_length_norm:
            factor = np.sqrt(self.dim / row_squares(y, np.ones((self.dim, 1)))[:, 0])
        else:
            n = np.broadcast_to(np.asarray(num_utts, dtype=np.float64), (y.shape[0],))
            if np.all(n == n[:1]):
                inv_covar = 1.0 / (self.psi + 1.0 / (n[0] if len(n) else 1.0))
                quad = row_squares(y, inv_covar[:, None])[:, 0]
            else:
                quad = np.einsum("ij,ij,ij->i", y, y, 1.0 / (self.psi[None, :] + 1.0 / n[:, None]), dtype=np.float64)
            factor = np.sqrt(self.dim / quad)
        if normalize_length:
            y *= factor.astype(np.float32)[:, None]
        return y, factor

    def _llr_terms(self, enroll: np.ndarray, test: np.ndarray, n: int):
        """Per-enrolment term (double), the weights of the cross term's enrolment side (float32,
        one per dimension), per-test term (double).

        Same-speaker hypothesis: test ~ N(a e, diag(v)) with a = n psi / (n psi + 1),
        v = 1 + psi / (n psi + 1); different-speaker: test ~ N(0, I + psi).
        Expanding the squares, LLR = enroll_term + test_term + cross . test.
        """
        psi = self.psi
        a = n * psi / (n * psi + 1.0)
        inv_v = 1.0 / (1.0 + psi / (n * psi + 1.0))
        inv_tot = 1.0 / (1.0 + psi)
        weights = np.column_stack([a * a * inv_v, inv_tot - inv_v])
        if enroll is test:  # one table (scoring a list against itself): both sums in one pass
            enroll_sq, test_sq = row_squares(enroll, weights).T
        else:
            enroll_sq, test_sq = row_squares(enroll, weights[:, :1])[:, 0], row_squares(test, weights[:, 1:])[:, 0]
        enroll_term = -0.5 * (enroll_sq - np.sum(np.log(inv_v)))
        test_term = 0.5 * (np.sum(np.log(1.0 + psi)) + test_sq)
        return enroll_term, (a * inv_v).astype(np.float32), test_term

    def log_likelihood_ratios(self, enroll: np.ndarray, enroll_n: np.ndarray, test: np.ndarray,
                              enroll_idx: np.ndarray, test_idx: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """LLR of each trial (enroll[enroll_idx[k]], test[test_idx[k]]) on PLDA-transformed rows."""
        enroll = np.asarray(enroll, dtype=np.float32)
        test = np.asarray(test, dtype=np.float32)
        enroll_n = np.asarray(enroll_n)
        scores = np.empty(len(enroll_idx), dtype=np.float64)
        if len(enroll_n) and enroll_n.min() == enroll_n.max():  # one count (single utterances): every trial
            groups = [(enroll_n[0], None)]
        else:
            n_of_trial = enroll_n[enroll_idx]
            groups = [(n, np.flatnonzero(n_of_trial == n)) for n in np.unique(n_of_trial)]
        for n, sel in groups:
            enroll_term, weights, test_term = self._llr_terms(enroll, test, n)
            for start in range(0, len(enroll_idx) if sel is None else len(sel), chunk):
                k = slice(start, start + chunk) if sel is None else sel[start:start + chunk]
                ei, ti = enroll_idx[k], test_idx[k]
                # Weighted per chunk: a weighted copy of the whole enrolment table would double its memory.
                cross = enroll[ei]
                cross *= weights
                scores[k] = enroll_term[ei] + test_term[ti] + np.einsum("ij,ij->i", cross, test[ti])
        return scores

    def score_matrix(self, enroll: np.ndarray, enroll_n: np.ndarray, test: np.ndarray) -> np.ndarray:
        """LLRs of every enrolment row against every test row (cohort scoring)."""
        enroll = np.asarray(enroll, dtype=np.float32)
        test = np.asarray(test, dtype=np.float32)
        enroll_n = np.broadcast_to(np.asarray(enroll_n), (len(enroll),))
        out = np.empty((len(enroll), len(test)))
        for n in np.unique(enroll_n):
            rows = np.flatnonzero(enroll_n == n)
            enroll_term, weights, test_term = self._llr_terms(enroll[rows], test, n)
            out[rows] = enroll_term[:, None] + test_term[None, :] + (enroll[rows] * weights) @ test.T
        return out


def estimate_plda(x: np.ndarray, spk_idx: np.ndarray, num_em_iters: int = 10) -> Plda:
    """Train Kaldi's PLDA on rows ``x`` with speaker indices ``spk_idx`` (0..S-1, each used)."""
    return plda_from_stats(class_stats(x, spk_idx, int(spk_idx.max()) + 1), num_em_iters)


def plda_from_stats(stats: tuple[np.ndarray, np.ndarray, np.ndarray], num_em_iters: int = 10) -> Plda:
    """``estimate_plda`` from the ``ClassStats`` of the rows."""
    sums, counts, offset_scatter = stats
    n_total, num_spk, d = int(counts.sum()), len(counts), sums.shape[1]
    if np.any(counts == 0):
        raise SidError("internal error: speaker without vectors passed to estimate_plda")
    if num_spk == n_total:
        raise SidError("No speakers with multiple utterances, unable to estimate PLDA.")
    means = sums / counts[:, None]
    global_mean = means.sum(axis=0) / num_spk
    centred = means - global_mean
    n_spk = counts.astype(np.float64)[:, None]
    sqrt_n = np.sqrt(n_spk)

    within = np.eye(d)
    between = np.eye(d)
    for it in range(num_em_iters):
        log.info("Plda estimation iteration %d of %d", it, num_em_iters)
        to_diag, back, lam = _joint_diagonalize(within, between)
        m = centred @ to_diag.T                      # speaker means where W = I, B = diag(lam)
        # (S, D) arrays, each op in place (a pass over 10 MB each for 6,000 speakers):
        # q = 1 / (1 + n lam); the diagonal posterior covariance per speaker lam q; the posterior
        # means of the speaker variables w = n m lam q; the residuals m - w = m q, scaled by
        # sqrt(n) so that both products below are SYRKs.
        q = np.multiply(n_spk, lam)
        q += 1.0
        np.reciprocal(q, out=q)
        post_var = np.multiply(q, lam)
        between_diag = post_var.sum(axis=0)
        within_diag = n_spk[:, 0] @ post_var
        w = np.multiply(post_var, n_spk, out=post_var)
        w *= m
        r = np.multiply(q, sqrt_n, out=q)
        r *= m
        between_t = w.T @ w
        within_t = r.T @ r
        between_t[np.diag_indices(d)] += between_diag
        within_t[np.diag_indices(d)] += within_diag
        within = (offset_scatter + back @ within_t @ back.T) / n_total
        between = (back @ between_t @ back.T) / num_spk
        log.info("Trace of within-class variance is %g", np.trace(within))
        log.info("Trace of between-class variance is %g", np.trace(between))

    log.info("Norm of mean of iVector distribution is %g", np.linalg.norm(global_mean))
    to_diag, _, lam = _joint_diagonalize(within, between)
    order = np.argsort(-lam, kind="stable")
    s = lam[order]
    num_floored = int(np.sum(s < 0))
    if num_floored:
        log.warning("Floored %d eigenvalues of between-class variance to zero.", num_floored)
    s = np.maximum(s, 0.0)
    transform = fix_signs(to_diag[order])
    log.info("Diagonal of between-class variance in normalized space is [ %s ]", " ".join(f"{v:g}" for v in s))
    return Plda(global_mean, transform, s)
