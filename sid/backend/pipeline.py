"""The recipe's back-end chain (egs/voxceleb/v2 stages 10-12) in one process.

Kaldi runs it as pipes of binaries, each parsing the whole table::

    ivector-subtract-global-mean mean.vec | ivector-transform lda.mat | ivector-normalize-length

Here each embedding table is read once and the same stages are applied to
the whole matrix: mean subtraction, the affine LDA transform and scaling to
length sqrt(dim), each rounding to float32 as Kaldi's archives between the
stages do, so the result equals the pipe's output. ``train_passes`` fits mean,
LDA and PLDA as stages 10-11 do, a block of rows at a time; ``score_plda`` scores trial lists as
``ivector-plda-scoring --normalize-length=true`` does on the pipe's output.
"""

from __future__ import annotations

import itertools
import logging
from typing import Callable, Iterator

import numpy as np

from sid import kaldi_io
from sid.backend.lda import ClassStats, apply_transform, lda_from_stats, row_squares
from sid.backend.plda import Plda, plda_from_stats
from sid.errors import SidError

log = logging.getLogger(__name__)


def subtract_mean(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """ivector-subtract-global-mean: in place on float32 rows (Kaldi subtracts the double mean from floats)."""
    if mean.shape[0] != x.shape[1]:
        raise SidError(f"mean has dimension {mean.shape[0]}, the vectors {x.shape[1]}")
    x -= mean.astype(np.float32)
    return x


def normalize_length(x: np.ndarray, keys: list[str] | None = None) -> np.ndarray:
    """ivector-normalize-length (with --scaleup): rows scaled to length sqrt(dim), in place; zero rows stay zero."""
    norm = np.sqrt(row_squares(x, np.ones((x.shape[1], 1)))[:, 0])
    ratio = norm / np.sqrt(x.shape[1])
    zero = ratio == 0
    for k in np.flatnonzero(zero)[:10]:
        log.warning("Zero iVector for key %s", keys[k] if keys else k)
    x /= np.where(zero, 1.0, ratio).astype(np.float32)[:, None]
    return x


def prepare(x: np.ndarray, mean: np.ndarray | None, lda: np.ndarray | None, keys: list[str] | None = None,
            normalize: bool = True) -> np.ndarray:
    """Mean subtraction, LDA, length normalisation (each if given): what the recipe pipes into scoring."""
    if mean is not None:
        x = subtract_mean(x, mean)
    if lda is not None:
        x = apply_transform(lda, x)
    return normalize_length(x, keys) if normalize else x


def read_prepared(rspecifier: str, mean: np.ndarray | None, lda: np.ndarray | None,
                  normalize: bool = True, then: Callable[[np.ndarray], np.ndarray] | None = None,
                  ) -> tuple[list[str], np.ndarray]:
    """``(keys, rows)`` of a vector table after ``prepare`` (and ``then``, e.g. the PLDA's transform,
    which may work in place on the block it is given);
    errors name the table. Read and transformed a block at a time, as Kaldi's pipe streams it:
    the raw table (512 dims) is never held whole beside the result (200)."""
    def blocks():
        for keys, x in kaldi_io.iter_vector_blocks(rspecifier, 16384):
            try:
                # The block is ours until the next is read: each stage overwrites it (no fresh
                # 13 MB arrays per block, which cost more in page faults than their products).
                if mean is not None:
                    x = subtract_mean(x, mean)
                y = apply_transform(lda, x, overwrite=True) if lda is not None else x
                if normalize:
                    y = normalize_length(y, keys)
                yield keys, (then(y) if then is not None else y)
            except SidError as err:
                raise SidError(f"{rspecifier}: {err}") from None

    return kaldi_io.stack_vector_blocks(blocks(), rspecifier)


def train(keys: list[str], x: np.ndarray, utt2spk: dict[str, str], lda_dim: int,
          total_covariance_factor: float = 0.0, num_em_iters: int = 10,
          with_plda: bool = True) -> tuple[np.ndarray, np.ndarray | None, Plda | None]:
    """``train_passes`` of a table in memory (left as it was)."""
    return train_passes(kaldi_io.memory_passes(keys, x), utt2spk, lda_dim, total_covariance_factor, num_em_iters,
                        with_plda)


def train_passes(blocks: Callable[[], Iterator[tuple[list[str], np.ndarray]]], utt2spk: dict[str, str], lda_dim: int,
                 total_covariance_factor: float = 0.0, num_em_iters: int = 10, with_plda: bool = True,
                 name: str = "the training vectors") -> tuple[np.ndarray, np.ndarray | None, Plda | None]:
    """``(mean, LDA transform or None, PLDA or None)`` from training rows, as the recipe's stages 10-11.

    Kaldi computes LDA on mean-subtracted vectors and PLDA on mean-subtracted,
    LDA-projected, length-normalised ones; vectors without a speaker count in
    the mean only. ``blocks()`` gives the table's ``(keys, rows)`` blocks anew at each call
    (``kaldi_io.vector_passes``; each block may be overwritten). Two passes, so the table is
    never held whole (faulting in a fresh 400 MB table cost 0.06-0.7 s of system time on these
    VMs, a pass over the page cache about 0.2 s): the mean and LDA's statistics of the rows as read, then PLDA's of the projected
    rows. LDA's statistics are those of the mean-subtracted rows, shifted in double (the
    scatter does not move): Kaldi's rows rounded to float32 after the subtraction differ from
    them by that rounding only.
    """
    spks = sorted(set(utt2spk.values()))
    pos = {s: i for i, s in enumerate(spks)}
    spk_of = {u: pos[s] for u, s in utt2spk.items()}  # one look-up a key below
    keys: list[str] = []
    parts: list[np.ndarray] = []
    total = None
    lda_stats = None
    for block_keys, x in blocks():
        idx = np.fromiter(map(spk_of.get, block_keys, itertools.repeat(-1)), dtype=np.int64, count=len(block_keys))
        keys += block_keys
        parts.append(idx)
        has = idx >= 0
        if lda_dim > 0:
            if lda_stats is None:
                if not 0 < lda_dim <= x.shape[1]:  # before the statistics, which take a while
                    raise SidError(f"--dim={lda_dim} must be between 1 and the vector dimension {x.shape[1]}")
                lda_stats = ClassStats(len(spks), x.shape[1])
            if has.all():
                lda_stats.add(x, idx)
                rest = None  # the speakers' sums hold every row
            else:
                lda_stats.add(x[has], idx[has])
                rest = x[~has]
        else:
            rest = x
        if rest is not None:
            part = rest.sum(axis=0, dtype=np.float64)  # in double, as ivector-mean
            total = part if total is None else total + part
    if not keys:
        raise SidError("no training vectors")
    kaldi_io.check_unique_keys(keys, name)
    if lda_stats is not None:
        total = lda_stats.sums.sum(axis=0) + (0.0 if total is None else total)
    mean = total / len(keys)
    log.info("Computed mean of %d iVectors; norm of mean is %g", len(keys), np.linalg.norm(mean))
    spk_idx = np.concatenate(parts)
    missing = int((spk_idx < 0).sum())
    if missing == len(keys):
        raise SidError("no training vector has a speaker in utt2spk")
    if missing:
        first = keys[int(np.argmax(spk_idx < 0))]
        log.warning("%d vectors have no speaker in utt2spk (first: %s); they are not used for LDA/PLDA",
                    missing, first)
    # Speakers of utt2spk without a vector drop out: the rest numbered densely, in order.
    present = np.bincount(spk_idx[spk_idx >= 0], minlength=len(spks)) > 0
    renumber = np.cumsum(present) - 1
    spk_idx = np.where(spk_idx >= 0, renumber[spk_idx], -1)
    num_spk = int(present.sum())
    lda = None
    if lda_stats is not None:
        log.info("Computing LDA on %d vectors of %d speakers", len(keys) - missing, num_spk)
        sums, counts, scatter = lda_stats.result()
        sums, counts = sums[present], counts[present]
        lda = lda_from_stats((sums - counts[:, None] * mean, counts, scatter), lda_dim, total_covariance_factor)
    if not with_plda:
        return mean, lda, None
    log.info("Training PLDA (%d EM iterations)", num_em_iters)
    stats = None
    done = 0
    for block_keys, x in blocks():
        if block_keys != keys[done:done + len(block_keys)]:
            raise SidError(f"{name} changed while being read (at key '{block_keys[0]}')")
        idx = spk_idx[done:done + len(block_keys)]
        done += len(block_keys)
        # Kaldi's PLDA input is the LDA of vectors whose own mean was subtracted (ivector-subtract-global-mean
        # without a mean file), the same mean here.
        x = subtract_mean(x, mean)
        if missing:
            x, idx = x[idx >= 0], idx[idx >= 0]
        if lda is not None:
            x = apply_transform(lda, x, overwrite=True)
        x = normalize_length(x)
        if stats is None:
            stats = ClassStats(num_spk, x.shape[1])
        stats.add(x, idx)
    if done != len(keys):
        raise SidError(f"{name} changed while being read ({len(keys)} vectors, then {done})")
    return mean, lda, plda_from_stats(stats.result(), num_em_iters)
