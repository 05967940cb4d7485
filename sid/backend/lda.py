"""Kaldi's ivector-compute-lda: LDA after normalising an interpolated within/total covariance.

With data mean-subtracted, per speaker s with n_s vectors and mean m_s:
  total  T = sum_i x_i x_i^T / N,   within W = T - sum_s n_s m_s m_s^T / N,
  between B = T - W.
C = f T + (1-f) W (f = --total-covariance-factor) is whitened by
P = diag(s)^-1/2 U^T from its eigen-decomposition (eigenvalues floored at
covariance_floor times the largest); B is projected, diagonalised, and the
rows of the result for the ``dim`` largest eigenvalues form the transform.
The written matrix is ``dim x (D+1)``: the last column ``-A mean`` removes
the training mean, as Kaldi writes it.

Where Kaldi stops on a singular total covariance (vectors spanning fewer than D
dimensions: too few of them, or a collapsed or low-rank embedding space), LDA is
computed in the subspace they span and ``dim`` limited to its rank, with a warning.

Eigenvectors are defined up to sign; we make each row's largest-magnitude
coefficient positive (Kaldi's own choice follows its QR iterations).
Downstream PLDA/cosine scores do not depend on the signs.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

from sid.backend import big_blas
from sid.errors import SidError

log = logging.getLogger(__name__)


def speaker_index(keys: list[str], utt2spk: dict[str, str]) -> tuple[np.ndarray, list[str]]:
    """Per-row speaker index into a sorted speaker list; rows without a speaker get -1."""
    # map() keeps the per-key lookups in C (10^5 keys), one per key and table (each a cache miss);
    # a key without a speaker looks up None: -1.
    spk_of = list(map(utt2spk.get, keys))
    spks = sorted(set(spk_of) - {None})
    pos = {s: i for i, s in enumerate(spks)}
    return np.fromiter(map(pos.get, spk_of, itertools.repeat(-1)), dtype=np.int64, count=len(keys)), spks


# Row chunks of 8192 keep each double buffer at 32 MB, allocated once: fresh 100 MB temporaries
# per chunk were mapped and page-faulted anew each time (seconds of system time on a busy VM).
# (A 512-dim SYRK of 8192 rows ran at 44 GFLOP/s here, of 4096 at 39-42.)
_CHUNK = 8192


class ClassStats:
    """Per-class sums and counts of rows and their within-class scatter
    ``sum_i (x_i - m_{s(i)}) (x_i - m_{s(i)})^T``, in double precision, accumulated a block of
    rows at a time (``add``), so a table need not be held whole.

    The scatter is Kaldi's ``sum x x^T - sum_s n_s m_s m_s^T`` (CovarianceStats, PldaStats): each
    chunk of rows converted to double, one double SYRK (on the free cores) and the sums of its
    classes' rows. (A float32 SYRK is 2x faster but not accurate enough: on real 512-dim x-vectors
    (2,000, LDA to 64) PLDA scores moved 3.6-6.5e-4 from Kaldi's, where double stays within 5e-5; on real 64-dim
    x-vectors, even of class-centred rows in chunks of 128, PLDA scores moved by 4e-4, 3x what
    a 1e-7 perturbation of the input moves them.)
    """

    def __init__(self, num_classes: int, dim: int, chunk: int = _CHUNK):
        self.sums = np.zeros((num_classes, dim))
        self.counts = np.zeros(num_classes, dtype=np.int64)
        self.scatter = np.zeros((dim, dim))
        self._buf = np.empty((chunk, dim))

    def add(self, x: np.ndarray, idx: np.ndarray) -> None:
        """Rows ``x`` of classes ``idx`` (0..num_classes-1)."""
        chunk = len(self._buf)
        with big_blas():
            for s in range(0, len(x), chunk):
                rows = idx[s:s + chunk]
                block = self._buf[:len(rows)]
                block[...] = x[s:s + chunk]
                self._add_sums(block, rows)
                self.scatter += block.T @ block
        self.counts += np.bincount(idx, minlength=len(self.counts))

    def _add_sums(self, block: np.ndarray, rows: np.ndarray) -> None:
        if np.all(rows[1:] >= rows[:-1]):
            # Rows grouped by class (keys sorted with their speaker first, as Kaldi's tables are):
            # a sum over each run, in row order. (scipy.sparse alone takes 0.15 s to import.)
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            run_sums = np.empty((len(starts), block.shape[1]))
            for i, (start, end) in enumerate(zip(starts.tolist(), starts[1:].tolist() + [len(rows)])):
                np.add.reduce(block[start:end], axis=0, out=run_sums[i])
            self.sums[rows[starts]] += run_sums  # each class once: its rows are one run
            return
        import scipy.sparse

        # Any order: a sparse product over the classes the chunk holds (over all of them, it
        # made and added a 24 MB matrix per chunk); each class's rows also summed in row order.
        classes, row_class = np.unique(rows, return_inverse=True)
        onehot = scipy.sparse.csr_matrix((np.ones(len(rows)), (row_class, np.arange(len(rows)))),
                                         shape=(len(classes), len(rows)))
        self.sums[classes] += onehot @ block

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sums, counts, within-class scatter)``."""
        scaled = self.sums / np.sqrt(np.maximum(self.counts, 1))[:, None]  # sum_s n_s m_s m_s^T as a SYRK
        return self.sums, self.counts, self.scatter - scaled.T @ scaled


def class_stats(x: np.ndarray, idx: np.ndarray, num_classes: int,
                chunk: int = _CHUNK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``ClassStats`` of a whole table: per-class sums and counts, within-class scatter."""
    stats = ClassStats(num_classes, x.shape[1], min(chunk, max(len(x), 1)))
    stats.add(x, idx)
    return stats.result()


def row_squares(x: np.ndarray, weights: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """``sum_j x_ij^2 w_jk`` for each row ``i`` of ``x`` and column ``k`` of ``weights``, in double:
    the squares of a chunk of rows at a time and one product for every column (2-4x quicker than
    ``np.einsum(..., dtype=np.float64)``, which converts element by element)."""
    out = np.empty((len(x), weights.shape[1]))
    buf = np.empty((min(chunk, len(x)), x.shape[1]))
    for s in range(0, len(x), chunk):
        sq = buf[:len(x[s:s + chunk])]
        sq[...] = x[s:s + chunk]
        sq *= sq
        np.matmul(sq, weights, out=out[s:s + chunk])
    return out


def sort_eig(sym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (largest first) and eigenvectors (columns) of a symmetric matrix."""
    s, u = np.linalg.eigh((sym + sym.T) / 2)
    order = np.argsort(-s, kind="stable")
    return s[order], u[:, order]


def fix_signs(rows: np.ndarray) -> np.ndarray:
    """Flip rows so each one's largest-magnitude entry is positive (a deterministic sign choice)."""
    pick = rows[np.arange(rows.shape[0]), np.argmax(np.abs(rows), axis=1)]
    return rows * np.where(pick < 0, -1.0, 1.0)[:, None]


def normalizing_transform(covar: np.ndarray, floor: float) -> np.ndarray:
    """P with P covar P^T = I, eigenvalues floored at ``floor`` times the largest."""
    s, u = sort_eig(covar)
    floor_value = floor * s[0]
    num_floored = int(np.sum(s < floor_value))
    if num_floored:
        log.warning("Floored %d eigenvalues of covariance to %g", num_floored, floor_value)
    s = np.maximum(s, floor_value)
    return s[:, None] ** -0.5 * u.T


# Kaldi's SingularTotCovar test: a total covariance whose eigenvalues span more than this
# ratio is singular for LDA's purposes.
MAX_CONDITION = 1e6


def _total_subspace(total: np.ndarray, n: int, dim: int) -> tuple[np.ndarray | None, int]:
    """``(basis, dim)``: None and ``dim`` where the total covariance is well conditioned (Kaldi's
    case); otherwise the ``D x r`` eigenvectors of its ``r`` eigenvalues above ``1 / MAX_CONDITION``
    of the largest, LDA then working in that subspace, and ``dim`` limited to ``r``.

    Embeddings of a collapsed or undertrained network (ReLU outputs that never fire, a few
    directions only), or fewer vectors than dimensions, span a subspace: Kaldi stops there;
    here the subspace is used, with a warning that says so."""
    d = total.shape[0]
    eig, vecs = sort_eig(total)
    if eig[0] <= 0:
        raise SidError(f"the {n} vectors are all the same (zero total covariance): nothing for LDA to separate "
                       "(a collapsed model?)")
    if eig[-1] > eig[0] / MAX_CONDITION:
        return None, dim
    rank = int(np.sum(eig > eig[0] / MAX_CONDITION))
    log.warning("The total covariance of %d vectors of dimension %d is singular: they span only %d dimensions "
                "(eigenvalues below %g of the largest; too few vectors, or collapsed or low-rank embeddings). "
                "LDA is computed in that %d-dim subspace%s", n, d, rank, 1 / MAX_CONDITION, rank,
                f" and its dimension limited from {dim} to {rank}" if dim > rank else "")
    return vecs[:, :rank], min(dim, rank)


def compute_lda(x: np.ndarray, spk_idx: np.ndarray, dim: int, total_covariance_factor: float = 0.1,
                covariance_floor: float = 1e-6) -> np.ndarray:
    """The ``dim x (D+1)`` LDA transform (float32) of rows ``x`` labelled by ``spk_idx`` (0..S-1)."""
    if not 0 < dim <= x.shape[1]:  # before the statistics, which take a while
        raise SidError(f"--dim={dim} must be between 1 and the vector dimension {x.shape[1]}")
    stats = class_stats(x, spk_idx, int(spk_idx.max()) + 1)
    return lda_from_stats(stats, dim, total_covariance_factor, covariance_floor)


def lda_from_stats(stats: tuple[np.ndarray, np.ndarray, np.ndarray], dim: int, total_covariance_factor: float = 0.1,
                   covariance_floor: float = 1e-6) -> np.ndarray:
    """``compute_lda`` from the ``ClassStats`` of the rows (every class with a row)."""
    # Kaldi subtracts the mean from the vectors first (train() does too); the speaker means are
    # centred in double here, which spares a copy of the table where the caller has not (the
    # results differ from Kaldi's by float rounding only: the parity tests compare them).
    sums, counts, within = stats
    n, num_spk, d = int(counts.sum()), len(counts), sums.shape[1]
    if not 0 < dim <= d:
        raise SidError(f"--dim={dim} must be between 1 and the vector dimension {d}")
    if n - num_spk <= 0:
        raise SidError(f"LDA needs speakers with several vectors ({n} vectors of {num_spk} speakers)")
    mean = sums.sum(axis=0) / n  # every row has a speaker: no second pass over the table
    log.info("2-norm of iVector mean is %g", np.linalg.norm(mean))
    log.info("Stats have %d speakers, %d utterances.", num_spk, n)
    means = sums / counts[:, None]
    scaled = (means - mean) * np.sqrt(counts)[:, None]
    within /= n
    total = within + scaled.T @ scaled / n
    basis, dim = _total_subspace(total, n, dim)
    if basis is not None:
        total, within = basis.T @ total @ basis, basis.T @ within @ basis
    to_normalize = total_covariance_factor * total + (1.0 - total_covariance_factor) * within
    proj = normalizing_transform(to_normalize, covariance_floor)
    between_proj = proj @ (total - within) @ proj.T
    s, u = sort_eig(between_proj)
    log.info("Singular values of between-class covariance after projecting with interpolated "
             "[total/within] covariance with a weight of %g on the total covariance, are: [ %s ]",
             total_covariance_factor, " ".join(f"{v:g}" for v in s))
    linear = u[:, :dim].T @ proj
    if basis is not None:
        linear = linear @ basis.T   # back from the subspace's coordinates to the vectors'
    linear = fix_signs(linear).astype(np.float32)
    offset = -(linear.astype(np.float64) @ mean)
    return np.hstack([linear, offset.astype(np.float32)[:, None]])


def apply_transform(transform: np.ndarray, x: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """ivector-transform: ``x A^T`` (+ offset column if the matrix is affine), float32 like Kaldi.

    ``overwrite``: where the result is no wider than ``x`` (a reduction, LDA), it is written
    into ``x``'s own memory, a block of rows at a time (each block's result lands where rows
    already used were), so training does not page in a second table; ``x`` is lost."""
    n, d = x.shape
    if transform.shape[1] not in (d, d + 1):
        raise SidError(f"transform is {transform.shape[0]}x{transform.shape[1]}, "
                       f"which does not fit vectors of dimension {d} (needs {d} or {d + 1} columns)")
    a = transform[:, :d].T.astype(np.float32)
    k = a.shape[1]
    with big_blas():
        if overwrite and x.dtype == np.float32 and x.flags.c_contiguous and k <= d:
            y = x.reshape(-1)[:n * k].reshape(n, k)
            # 4096 rows a product: its result (3 MB) is memory malloc keeps, where 13 MB ones were
            # handed back to the system and paged in again each time.
            for s in range(0, n, 4096):
                y[s:s + 4096] = x[s:s + 4096] @ a
        else:
            y = np.asarray(x, dtype=np.float32) @ a
    if transform.shape[1] == d + 1:
        y += transform[:, d].astype(np.float32)
    return y
