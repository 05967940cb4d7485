"""Trial lists, score files, cosine and PLDA scoring, S-norm and adaptive S-norm.

Trials are Kaldi's ``utt1 utt2 [target|nontarget]`` lines; score files are
``utt1 utt2 score`` with the score printed as Kaldi prints a float (7
significant digits). Scoring is vectorised: one gather and dot product per
trial chunk, never a Python loop over trials.

Score normalisation (S-norm / AS-norm, as in WeSpeaker): each enrolment and
test vector is scored against a cohort (speaker-mean embeddings of a training
set); the mean and standard deviation of its top-N cohort scores (all of them
for S-norm) give  s' = ((s - mu_e) / sd_e + (s - mu_t) / sd_t) / 2.
"""

from __future__ import annotations

import itertools
import logging
from typing import Callable

import numpy as np

from sid import kaldi_io
from sid.errors import SidError

log = logging.getLogger(__name__)


def read_trials(rxfilename: str, min_fields: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(keys1, keys2, third column or None)`` of a trial or score file (2 or 3 fields per line)."""
    text = kaldi_io.read_bytes(rxfilename).decode()
    tokens = text.split()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise SidError(f"{rxfilename}: no trials")
    width = len(lines[0].split())
    if not min_fields <= width <= 3 or len(tokens) != width * len(lines):
        for lineno, line in enumerate(text.splitlines(), 1):
            if len(line.split()) != width or not min_fields <= width <= 3:
                raise SidError(f"{rxfilename}:{lineno}: expected {max(width, min_fields)} fields "
                               f"(utt1 utt2{' score' if min_fields == 3 else ' [target|nontarget]'}), got '{line}'")
    cols = np.array(tokens, dtype=object).reshape(-1, width)
    return cols[:, 0], cols[:, 1], (cols[:, 2] if width == 3 else None)


def read_scores(rxfilename: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keys1, keys2, float64 scores)`` of a ``utt1 utt2 score`` file."""
    k1, k2, third = read_trials(rxfilename, min_fields=3)
    try:
        return k1, k2, third.astype(np.float64)
    except ValueError:
        bad = next(i for i, v in enumerate(third) if not _is_float(v))
        raise SidError(f"{rxfilename}:{bad + 1}: score '{third[bad]}' is not a number") from None


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def index_trials(keys1, keys2, enroll_keys: list[str], test_keys: list[str], what: str = "trials"):
    """Row indices of each trial's keys; trials with a missing key are dropped with a warning (as Kaldi)."""
    epos = {k: i for i, k in enumerate(enroll_keys)}
    tpos = epos if test_keys is enroll_keys else {k: i for i, k in enumerate(test_keys)}
    # map() over dict.get keeps the per-trial lookup in C (10^6 trials).
    ei = np.fromiter(map(epos.get, keys1, itertools.repeat(-1)), dtype=np.int64, count=len(keys1))
    ti = np.fromiter(map(tpos.get, keys2, itertools.repeat(-1)), dtype=np.int64, count=len(keys2))
    ok = (ei >= 0) & (ti >= 0)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        first = bad[0]
        missing = keys1[first] if ei[first] < 0 else keys2[first]
        log.warning("%d of %d %s have a key without a vector (first: '%s'); they are not scored",
                    len(bad), len(ok), what, missing)
    return ei, ti, ok


def write_scores(wxfilename: str, keys1, keys2, scores: np.ndarray, chunk: int = 8192) -> None:
    """``utt1 utt2 score`` lines; the score is a float printed with 7 significant digits, like Kaldi.

    Written 8192 lines at a time: the memory of each chunk is reused by the next, where the
    text of 10^6 trials held whole cost 40k page faults (0.1-0.5 s of system time here)."""
    values = scores.astype(np.float32).astype(np.float64)
    with kaldi_io.open_output(wxfilename) as f:
        for s in range(0, len(values), chunk):
            f.write("".join(map("%s %s %.7g\n".__mod__, zip(keys1[s:s + chunk], keys2[s:s + chunk],
                                                             values[s:s + chunk].tolist()))).encode())


def length_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norm == 0):
        raise SidError("zero-length embedding: cannot length-normalise for cosine scoring")
    return x / norm


def cosine_scores(enroll: np.ndarray, test: np.ndarray, ei: np.ndarray, ti: np.ndarray,
                  chunk: int = 4096) -> np.ndarray:
    """Cosine similarity of each trial (enroll[ei[k]], test[ti[k]])."""
    e = length_normalize(enroll.astype(np.float64))
    t = length_normalize(test.astype(np.float64))
    out = np.empty(len(ei))
    for s in range(0, len(ei), chunk):
        out[s:s + chunk] = np.einsum("ij,ij->i", e[ei[s:s + chunk]], t[ti[s:s + chunk]])
    return out


def cohort_stats(score_rows: Callable[[slice], np.ndarray], num_rows: int, top_n: int,
                 chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each row's ``top_n`` largest cohort scores.

    ``score_rows(sl)`` returns the (rows in ``sl``) x cohort score matrix; rows are
    taken in chunks so a large test set never needs its full cohort matrix.
    """
    mean = np.empty(num_rows)
    std = np.empty(num_rows)
    for s in range(0, num_rows, chunk):
        sl = slice(s, min(s + chunk, num_rows))
        block = score_rows(sl)
        k = min(top_n, block.shape[1])
        if k < block.shape[1]:
            block = np.partition(block, block.shape[1] - k, axis=1)[:, -k:]
        mean[sl] = block.mean(axis=1)
        std[sl] = block.std(axis=1)
    if np.any(std == 0):
        raise SidError("a cohort score standard deviation is zero (cohort too small or identical vectors)")
    return mean, std


def snorm(scores: np.ndarray, ei: np.ndarray, ti: np.ndarray, enroll_stats, test_stats) -> np.ndarray:
    """Symmetric normalisation: the mean of the enrolment- and test-side z-normalised scores."""
    (me, se), (mt, st) = enroll_stats, test_stats
    return 0.5 * ((scores - me[ei]) / se[ei] + (scores - mt[ti]) / st[ti])
