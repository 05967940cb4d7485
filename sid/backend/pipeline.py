"""The recipe's back-end chain (egs/voxceleb/v2 stages 10-12) in one process.

Kaldi runs it as pipes of binaries, each parsing the whole table::

    ivector-subtract-global-mean mean.vec | ivector-transform lda.mat | ivector-normalize-length

Here each embedding table is read once and the same stages are applied to
the whole matrix: mean subtraction, the affine LDA transform and scaling to
length sqrt(dim), each rounding to float32 as Kaldi's archives between the
stages do, so the result equals the pipe's output. ``train`` fits mean, LDA
and PLDA as stages 10-11 do; ``score_plda`` scores trial lists as
``ivector-plda-scoring --normalize-length=true`` does on the pipe's output.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from sid import kaldi_io
from sid.backend.lda import apply_transform, compute_lda, speaker_index
from sid.backend.plda import Plda, estimate_plda
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
    norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
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
    """``(mean, LDA transform or None, PLDA or None)`` from training rows, as the recipe's stages 10-11.

    Kaldi computes LDA on mean-subtracted vectors and PLDA on mean-subtracted,
    LDA-projected, length-normalised ones; vectors without a speaker count in
    the mean only. ``x`` is overwritten.
    """
    if not keys:
        raise SidError("no training vectors")
    mean = x.mean(axis=0, dtype=np.float64)
    log.info("Computed mean of %d iVectors; norm of mean is %g", len(keys), np.linalg.norm(mean))
    spk_idx, spks = speaker_index(keys, utt2spk)
    missing = int((spk_idx < 0).sum())
    if missing:
        first = keys[int(np.argmax(spk_idx < 0))]
        log.warning("%d vectors have no speaker in utt2spk (first: %s); they are not used for LDA/PLDA",
                    missing, first)
    keep = spk_idx >= 0
    if not keep.any():
        raise SidError("no training vector has a speaker in utt2spk")
    x = subtract_mean(x, mean)
    if not keep.all():
        x, spk_idx = x[keep], spk_idx[keep]
        # Speakers are re-indexed densely: those left with no vector drop out.
        _, spk_idx = np.unique(spk_idx, return_inverse=True)
    lda = None
    if lda_dim > 0:
        log.info("Computing LDA on %d vectors of %d speakers", len(x), int(spk_idx.max()) + 1)
        lda = compute_lda(x, spk_idx, lda_dim, total_covariance_factor)
    if not with_plda:
        return mean, lda, None
    if lda is not None:
        # Kaldi's PLDA input is the LDA of vectors whose own mean was subtracted (ivector-subtract-global-mean
        # without a mean file), the same mean here.
        x = apply_transform(lda, x, overwrite=True)
    x = normalize_length(x)
    log.info("Training PLDA (%d EM iterations)", num_em_iters)
    return mean, lda, estimate_plda(x, spk_idx, num_em_iters)
