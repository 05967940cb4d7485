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
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sid import kaldi_io
from sid.errors import SidError

log = logging.getLogger(__name__)


@dataclass
class Trials:
    """A trial list (or the pairs of a score file) with what its messages need.

    ``labels``: target flags when the lines have a third ``target|nontarget`` field;
    ``lines``: each row's line number in ``path``; ``hashes``: one integer per pair, for
    finding pairs by sorting rather than through a dict of joined key strings (3-4x faster).
    """
    path: str
    keys1: np.ndarray
    keys2: np.ndarray
    labels: np.ndarray | None
    lines: np.ndarray
    hashes: np.ndarray

    def __len__(self) -> int:
        return len(self.keys1)

    def where(self, row: int) -> str:
        return f"{self.path}:{int(self.lines[row])}"

    def rows_of(self, other: "Trials") -> np.ndarray:
        """The row in this list of each pair of ``other``, -1 where it is not one of ours."""
        order = np.argsort(self.hashes, kind="stable")
        ordered = self.hashes[order]
        pos = np.minimum(np.searchsorted(ordered, other.hashes), len(ordered) - 1)
        rows = order[pos]
        found = ((ordered[pos] == other.hashes) & (self.keys1[rows] == other.keys1)
                 & (self.keys2[rows] == other.keys2))
        if not found.all():
            # Not ours, or a hash shared by two of our pairs: look those few up exactly.
            index = {(a, b): i for i, (a, b) in enumerate(zip(self.keys1, self.keys2))}
            for i in np.flatnonzero(~found):
                rows[i] = index.get((other.keys1[i], other.keys2[i]), -1)
        return rows


def _pair_hashes(keys1, keys2) -> np.ndarray:
    # A str caches its hash, so the dict lookups of the keys that follow do not hash them again.
    n = len(keys1)
    return (np.fromiter(map(hash, keys1), dtype=np.int64, count=n) * np.int64(1000003)
            ^ np.fromiter(map(hash, keys2), dtype=np.int64, count=n))


def _columns(rxfilename: str, widths: tuple[int, ...], expected: str):
    """The fields of every non-blank line as an object array (rows x width), and their line numbers."""
    text = kaldi_io.read_bytes(rxfilename).decode(errors="replace")
    tokens = text.split()
    # No list of the lines (10^6 strings for Vox1-H) unless the fast check below fails (nor a
    # StringIO, which would hold the text again in 4 bytes a character).
    first = _first_fields(text)
    if first is None:
        raise SidError(f"{rxfilename}: no trials (empty file)")
    if _is_voxceleb(first):
        raise SidError(f"{rxfilename}:1: this is a VoxCeleb-format trial list ('1|0 path1 path2', here "
                       f"'{' '.join(first)}'), not Kaldi trials ('utt1 utt2 target|nontarget'); convert it "
                       "first (run.sh stage 0: local/make_voxceleb1_trials.py; egs/speechocean762: "
                       "local/convert_trials.py)")
    width = len(first)
    num_lines = text.count("\n") + (not text.endswith("\n"))
    if len(tokens) == width * num_lines and width in widths:
        lines = np.arange(1, num_lines + 1)  # no blank lines: row i is line i + 1
    else:
        lines = []
        for lineno, line in enumerate(text.splitlines(), 1):
            n = len(line.split())
            if n and (n != width or width not in widths):
                raise SidError(f"{rxfilename}:{lineno}: expected {expected}, got '{line}'")
            if n:
                lines.append(lineno)
        lines = np.array(lines)
    del text  # 30 MB for Vox1-E, not held beside the key array
    return np.array(tokens, dtype=object).reshape(-1, width), lines


def _first_fields(text: str) -> list[str] | None:
    """The fields of the first non-blank line of ``text``, or None."""
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos)
        fields = text[pos:end if end >= 0 else len(text)].split()
        if fields:
            return fields
        if end < 0:
            return None
        pos = end + 1
    return None


def _is_voxceleb(fields: list[str]) -> bool:
    """``1|0 path1 path2``: an official VoxCeleb list, whose third field is a path, not a label or score."""
    return len(fields) == 3 and fields[0] in ("0", "1") and not _is_float(fields[2]) \
        and fields[2] not in ("target", "nontarget")


def _check_unique(path: str, keys1, keys2, hashes, lines, what: str, values=None) -> None:
    """A pair given twice is an error naming both lines (and both values when they differ)."""
    order = np.argsort(hashes, kind="stable")
    same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
    if not len(same):
        return
    # Equal hashes are checked exactly; the first line repeating an earlier pair is reported.
    seen: dict = {}
    for row in sorted(set(order[same].tolist()) | set(order[same + 1].tolist())):
        pair = (keys1[row], keys2[row])
        if pair in seen:
            first = seen[pair]
            shown = " ".join(pair)
            if values is not None and values[first] != values[row]:
                raise SidError(f"{path}:{lines[row]}: conflicting {what} for '{shown}': '{values[row]}' here, "
                               f"'{values[first]}' at line {lines[first]}")
            raise SidError(f"{path}:{lines[row]}: duplicate {what} '{shown}' (also at line {lines[first]})")
        seen[pair] = row


def read_trials(rxfilename: str, need_labels: bool = False) -> Trials:
    """A Kaldi trial list, ``utt1 utt2 [target|nontarget]`` (the label required with ``need_labels``).

    A VoxCeleb-format list, a bad label, a line of another width and a pair given twice are
    errors naming the file and line."""
    expected = "'utt1 utt2 target|nontarget'" if need_labels else "'utt1 utt2 [target|nontarget]'"
    cols, lines = _columns(rxfilename, (3,) if need_labels else (2, 3), expected)
    labels = None
    if cols.shape[1] == 3:
        third = cols[:, 2]
        labels = third == "target"
        bad = np.flatnonzero(~labels & (third != "nontarget"))
        if len(bad):
            raise SidError(f"{rxfilename}:{lines[bad[0]]}: trial label must be target or nontarget, "
                           f"got '{third[bad[0]]}'")
    hashes = _pair_hashes(cols[:, 0], cols[:, 1])
    _check_unique(rxfilename, cols[:, 0], cols[:, 1], hashes, lines, "trial", None if labels is None else cols[:, 2])
    return Trials(rxfilename, cols[:, 0], cols[:, 1], labels, lines, hashes)


def read_scores(rxfilename: str) -> tuple[Trials, np.ndarray]:
    """The pairs and float64 scores of a ``utt1 utt2 score`` file.

    A score that is not a finite number, a pair scored twice and a line of another width are
    errors naming the file and line."""
    cols, lines = _columns(rxfilename, (3,), "'utt1 utt2 score'")
    try:
        scores = cols[:, 2].astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(scores))
    except ValueError:
        bad = [next(i for i, v in enumerate(cols[:, 2]) if not _is_float(v))]
    if len(bad):
        raise SidError(f"{rxfilename}:{lines[bad[0]]}: score '{cols[bad[0], 2]}' is not a finite number")
    hashes = _pair_hashes(cols[:, 0], cols[:, 1])
    _check_unique(rxfilename, cols[:, 0], cols[:, 1], hashes, lines, "score", cols[:, 2])
    return Trials(rxfilename, cols[:, 0], cols[:, 1], None, lines, hashes), scores


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def match_scores(trials: Trials, scored: Trials, allow_partial: bool = False) -> np.ndarray:
    """Target flags of the scored pairs from a labelled trial list.

    A scored pair that is not a trial is an error; trials without a score are an error
    unless ``allow_partial`` (then a warning), so a metric is never silently computed
    on part of a list."""
    if trials.labels is None:
        raise SidError(f"{trials.path}:1: trials need a third field, target or nontarget")
    rows = trials.rows_of(scored)
    if np.any(rows < 0):
        r = int(np.flatnonzero(rows < 0)[0])
        raise SidError(f"{scored.where(r)}: scored pair '{scored.keys1[r]} {scored.keys2[r]}' "
                       f"is not a trial of {trials.path}")
    if len(rows) < len(trials):
        covered = np.zeros(len(trials), dtype=bool)
        covered[rows] = True
        t = int(np.flatnonzero(~covered)[0])
        msg = (f"{scored.path}: {len(trials) - len(rows)} of {len(trials)} trials have no score "
               f"(first: '{trials.keys1[t]} {trials.keys2[t]}', {trials.where(t)})")
        if not allow_partial:
            raise SidError(msg + "; pass --allow-partial=true to evaluate the scored trials only")
        log.warning("%s; evaluating the %d scored trials (--allow-partial)", msg, len(rows))
    return trials.labels[rows]


def index_trials(trials: Trials, enroll_keys: list[str], test_keys: list[str], allow_partial: bool = False,
                 sides: tuple[str, str] = ("enrolment", "test")):
    """Row indices of each trial's keys and which trials have both vectors.

    A trial whose key has no vector is an error naming it, unless ``allow_partial`` (then a
    warning, and the trial is not scored, as in Kaldi); no trial with both vectors is always
    an error, so no empty score file is written."""
    epos = {k: i for i, k in enumerate(enroll_keys)}
    tpos = epos if test_keys is enroll_keys else {k: i for i, k in enumerate(test_keys)}
    keys1, keys2 = trials.keys1, trials.keys2
    # map() over dict.get keeps the per-trial lookup in C (10^6 trials).
    ei = np.fromiter(map(epos.get, keys1, itertools.repeat(-1)), dtype=np.int64, count=len(keys1))
    ti = np.fromiter(map(tpos.get, keys2, itertools.repeat(-1)), dtype=np.int64, count=len(keys2))
    ok = (ei >= 0) & (ti >= 0)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        first = bad[0]
        missing, side = (keys1[first], sides[0]) if ei[first] < 0 else (keys2[first], sides[1])
        msg = (f"{trials.where(first)}: no {side} vector for '{missing}' "
               f"({len(bad)} of {len(ok)} trials have a key without a vector)")
        if not ok.any():
            raise SidError(f"{msg}: no trial can be scored")
        if not allow_partial:
            raise SidError(msg + "; pass --allow-partial=true to score the others")
        log.warning("%s; they are not scored (--allow-partial)", msg)
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
