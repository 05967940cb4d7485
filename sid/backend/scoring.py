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

import functools
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

    ``raw1``/``raw2``: the keys as fixed-width bytes (numpy ``S``), as read; ``keys1``/``keys2``
    the same as str, made on first use (10^6 Python strings cost more than the whole parse);
    ``labels``: target flags when the lines have a third ``target|nontarget`` field;
    ``lines``: each row's line number in ``path``; ``hash1``/``hash2``: one integer per key and
    ``hashes`` one per pair (``key_hashes``), for finding keys and pairs by sorting and
    table look-ups rather than through dicts of strings.
    """
    path: str
    raw1: np.ndarray
    raw2: np.ndarray
    labels: np.ndarray | None
    lines: np.ndarray
    hash1: np.ndarray
    hash2: np.ndarray

    def __len__(self) -> int:
        return len(self.raw1)

    @functools.cached_property
    def keys1(self) -> np.ndarray:
        return _as_str(self.raw1)

    @functools.cached_property
    def keys2(self) -> np.ndarray:
        return _as_str(self.raw2)

    @functools.cached_property
    def hashes(self) -> np.ndarray:
        return _pair_hashes(self.hash1, self.hash2)

    def where(self, row: int) -> str:
        return f"{self.path}:{int(self.lines[row])}"

    def pair(self, row: int) -> str:
        return f"{_text(self.raw1[row])} {_text(self.raw2[row])}"

    def rows_of(self, other: "Trials") -> np.ndarray:
        """The row in this list of each pair of ``other``, -1 where it is not one of ours."""
        order = np.argsort(self.hashes, kind="stable")
        ordered = self.hashes[order]
        pos = np.minimum(np.searchsorted(ordered, other.hashes), len(ordered) - 1)
        rows = order[pos]
        found = ((ordered[pos] == other.hashes) & (self.raw1[rows] == other.raw1)
                 & (self.raw2[rows] == other.raw2))
        if not found.all():
            # Not ours, or a hash shared by two of our pairs: look those few up exactly.
            index = {(a, b): i for i, (a, b) in enumerate(zip(self.raw1.tolist(), self.raw2.tolist()))}
            for i in np.flatnonzero(~found):
                rows[i] = index.get((other.raw1[i], other.raw2[i]), -1)
        return rows


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace")


def _as_str(raw: np.ndarray) -> np.ndarray:
    try:
        return raw.astype(np.str_)  # ASCII, the usual case
    except UnicodeDecodeError:
        return np.array([_text(k) for k in raw.tolist()], dtype=object)


def as_bytes(keys) -> np.ndarray:
    """Keys (a list or array of str, or bytes already) as a numpy ``S`` array."""
    if isinstance(keys, np.ndarray) and keys.dtype.kind == "S":
        return keys
    if not len(keys):
        return np.zeros(0, dtype="S1")
    try:
        return np.array(keys, dtype=np.bytes_)  # ASCII, the usual case (from a list: 5x quicker than via str)
    except UnicodeEncodeError:
        return np.array([str(k).encode() for k in np.asarray(keys).tolist()])


def key_hashes(keys: np.ndarray) -> np.ndarray:
    """One uint64 per key of an ``S`` array, the same for the same key whatever the array's width.

    Each 8 bytes (NUL-padded) are multiplied by their own odd constant and summed (padding adds
    nothing), then mixed so that every bit depends on every byte. Equal hashes are only a
    hint: whoever matches keys by them compares the keys too."""
    n, width = len(keys), keys.dtype.itemsize
    words = -(-width // 8)
    multipliers = np.arange(1, 2 * words, 2, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    chars = np.ascontiguousarray(keys).view(np.uint8).reshape(n, width)
    h = np.empty(n, dtype=np.uint64)
    padded = np.zeros((max(1, min(n, 65536)), 8 * words), dtype=np.uint8)  # one small buffer, reused
    for s in range(0, n, len(padded)):
        block = padded[:len(chars[s:s + len(padded)])]
        block[:, :width] = chars[s:s + len(block)]
        np.matmul(block.view(np.uint64), multipliers, out=h[s:s + len(block)])
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return h


def _pair_hashes(hash1: np.ndarray, hash2: np.ndarray) -> np.ndarray:
    h = hash1 * np.uint64(0xBF58476D1CE4E5B9) + hash2
    h ^= h >> np.uint64(32)
    return h


def lookup(keys: np.ndarray, hashes: np.ndarray, queries: np.ndarray, query_hashes: np.ndarray) -> np.ndarray:
    """The row of each query in ``keys`` (an ``S`` array of distinct keys), -1 where it is none.

    Direct-addressed tables of about 8 slots a key, filled in rounds (a round places the keys
    whose slot no other key took; the rest go to the next round's table, addressed by other
    bits of the hash): one gather per round, where a dict look-up or a binary search per query
    costs a cache miss each (10^6 trials). Every match is confirmed on the key itself."""
    out = np.full(len(queries), -1, dtype=np.int64)
    todo_keys = np.arange(len(keys))
    todo = np.arange(len(queries))
    shift = 0
    while len(todo_keys) and len(todo):
        bits = max(int(len(todo_keys)).bit_length() + 3, 8)
        if shift + bits > 64:  # keys whose hashes agree in every round's bits: found exactly
            index = {k: int(i) for k, i in zip(keys[todo_keys].tolist(), todo_keys)}
            out[todo] = np.fromiter(map(index.get, queries[todo].tolist(), itertools.repeat(-1)),
                                    dtype=np.int64, count=len(todo))
            break
        shift_, mask = np.uint64(shift), np.uint64((1 << bits) - 1)
        table = np.full(1 << bits, -1, dtype=np.int64)
        slots = ((hashes[todo_keys] >> shift_) & mask).astype(np.intp)
        table[slots] = todo_keys
        placed = table[slots] == todo_keys
        cand = table[((query_hashes[todo] >> shift_) & mask).astype(np.intp)]
        hit = cand >= 0
        hit[hit] = (hashes[cand[hit]] == query_hashes[todo[hit]]) & (keys[cand[hit]] == queries[todo[hit]])
        out[todo[hit]] = cand[hit]
        todo, todo_keys = todo[~hit], todo_keys[~placed]
        shift += bits
    return out


def _columns(rxfilename: str, widths: tuple[int, ...], expected: str):
    """The fields of every non-blank line as one fixed-width bytes array per column, and their line numbers."""
    data = kaldi_io.read_bytes(rxfilename)
    # No list of the lines (10^6 of them for Vox1-H) unless the fast checks below fail.
    first = _first_fields(data)
    if first is None:
        raise SidError(f"{rxfilename}: no trials (empty file)")
    if _is_voxceleb(first):
        raise SidError(f"{rxfilename}:1: this is a VoxCeleb-format trial list ('1|0 path1 path2', here "
                       f"'{' '.join(first)}'), not Kaldi trials ('utt1 utt2 target|nontarget'); convert it "
                       "first (run.sh stage 0: local/make_voxceleb1_trials.py; egs/speechocean762: "
                       "local/convert_trials.py)")
    width = len(first)
    if width in widths:
        cols = _single_spaced_columns(data, width)
        if cols is not None:
            return cols, np.arange(1, len(cols[0]) + 1)
    tokens = data.split()
    num_lines = data.count(b"\n") + (not data.endswith(b"\n"))
    if len(tokens) == width * num_lines and width in widths:
        lines = np.arange(1, num_lines + 1)  # no blank lines: row i is line i + 1
    else:
        lines = []
        for lineno, line in enumerate(data.splitlines(), 1):
            n = len(line.split())
            if n and (n != width or width not in widths):
                raise SidError(f"{rxfilename}:{lineno}: expected {expected}, got '{_text(line)}'")
            if n:
                lines.append(lineno)
        lines = np.array(lines)
    del data  # 30 MB for Vox1-E, not held beside the fields
    columns = [tokens[c::width] for c in range(width)]
    del tokens
    return [np.fromiter(col, dtype=f"S{max(map(len, col))}", count=len(col)) for col in columns], lines


def _single_spaced_columns(data: bytes, width: int) -> list[np.ndarray] | None:
    """The columns of ``data`` when every line holds ``width`` fields parted by single spaces (no
    blank lines, no tabs; the usual trial list or score file), found by numpy over the bytes:
    about 5x quicker than splitting 10^6 lines into Python bytes objects. None otherwise."""
    lines = kaldi_io.single_spaced_lines(data, width - 1)
    if lines is None:
        return None
    starts, spaces, ends = lines
    # Each line's own width - 1 spaces, with a non-empty field before, between and after them:
    # then the counts agree line by line, and no line is blank.
    bounds = np.column_stack([starts - 1, spaces, ends])
    if np.any(np.diff(bounds, axis=1) < 2):
        return None
    return [kaldi_io.byte_fields(data, bounds[:, c] + 1, bounds[:, c + 1]) for c in range(width)]


def _first_fields(data: bytes) -> list[str] | None:
    """The fields of the first non-blank line of ``data``, or None."""
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        fields = data[pos:end if end >= 0 else len(data)].split()
        if fields:
            return [_text(f) for f in fields]
        if end < 0:
            return None
        pos = end + 1
    return None


def _is_voxceleb(fields: list[str]) -> bool:
    """``1|0 path1 path2``: an official VoxCeleb list, whose third field is a path, not a label or score."""
    return len(fields) == 3 and fields[0] in ("0", "1") and not _is_float(fields[2]) \
        and fields[2] not in ("target", "nontarget")


def _check_unique(path: str, raw1, raw2, hashes, lines, what: str, values=None) -> None:
    """A pair given twice is an error naming both lines (and both values when they differ)."""
    ordered = np.sort(hashes)
    if not np.any(ordered[1:] == ordered[:-1]):
        return  # the usual case, told by a sort (2x quicker than the argsort below)
    order = np.argsort(hashes, kind="stable")
    same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
    if not len(same):
        return
    # Equal hashes are checked exactly; the first line repeating an earlier pair is reported.
    seen: dict = {}
    for row in sorted(set(order[same].tolist()) | set(order[same + 1].tolist())):
        pair = (raw1[row], raw2[row])
        if pair in seen:
            first = seen[pair]
            shown = " ".join(map(_text, pair))
            if values is not None and values[first] != values[row]:
                raise SidError(f"{path}:{lines[row]}: conflicting {what} for '{shown}': '{_text(values[row])}' "
                               f"here, '{_text(values[first])}' at line {lines[first]}")
            raise SidError(f"{path}:{lines[row]}: duplicate {what} '{shown}' (also at line {lines[first]})")
        seen[pair] = row


def _trials(path: str, cols: list[np.ndarray], lines: np.ndarray, labels, what: str, values) -> Trials:
    raw1, raw2 = cols[0], cols[1]
    trials = Trials(path, raw1, raw2, labels, lines, key_hashes(raw1), key_hashes(raw2))
    _check_unique(path, raw1, raw2, trials.hashes, lines, what, values)
    return trials


def read_trials(rxfilename: str, need_labels: bool = False) -> Trials:
    """A Kaldi trial list, ``utt1 utt2 [target|nontarget]`` (the label required with ``need_labels``).

    A VoxCeleb-format list, a bad label, a line of another width and a pair given twice are
    errors naming the file and line."""
    expected = "'utt1 utt2 target|nontarget'" if need_labels else "'utt1 utt2 [target|nontarget]'"
    cols, lines = _columns(rxfilename, (3,) if need_labels else (2, 3), expected)
    labels = third = None
    if len(cols) == 3:
        third = cols[2]
        labels = third == b"target"
        bad = np.flatnonzero(~labels & (third != b"nontarget"))
        if len(bad):
            raise SidError(f"{rxfilename}:{lines[bad[0]]}: trial label must be target or nontarget, "
                           f"got '{_text(third[bad[0]])}'")
    return _trials(rxfilename, cols, lines, labels, "trial", third)


def read_scores(rxfilename: str) -> tuple[Trials, np.ndarray]:
    """The pairs and float64 scores of a ``utt1 utt2 score`` file.

    A score that is not a finite number, a pair scored twice and a line of another width are
    errors naming the file and line."""
    cols, lines = _columns(rxfilename, (3,), "'utt1 utt2 score'")
    try:
        scores = cols[2].astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(scores))
    except ValueError:
        bad = [next(i for i, v in enumerate(cols[2].tolist()) if not _is_float(v))]
    if len(bad):
        raise SidError(f"{rxfilename}:{lines[bad[0]]}: score '{_text(cols[2][bad[0]])}' is not a finite number")
    return _trials(rxfilename, cols, lines, None, "score", cols[2]), scores


def _is_float(text: str | bytes) -> bool:
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
        raise SidError(f"{scored.where(r)}: scored pair '{scored.pair(r)}' "
                       f"is not a trial of {trials.path}")
    if len(rows) < len(trials):
        covered = np.zeros(len(trials), dtype=bool)
        covered[rows] = True
        t = int(np.flatnonzero(~covered)[0])
        msg = (f"{scored.path}: {len(trials) - len(rows)} of {len(trials)} trials have no score "
               f"(first: '{trials.pair(t)}', {trials.where(t)})")
        if not allow_partial:
            raise SidError(msg + "; pass --allow-partial=true to evaluate the scored trials only")
        log.warning("%s; evaluating the %d scored trials (--allow-partial)", msg, len(rows))
    return trials.labels[rows]


def index_trials(trials: Trials, enroll_keys, test_keys, allow_partial: bool = False,
                 sides: tuple[str, str] = ("enrolment", "test")):
    """Row indices of each trial's keys in ``enroll_keys`` / ``test_keys`` (lists or arrays of
    distinct keys, str or bytes) and which trials have both vectors.

    A trial whose key has no vector is an error naming it, unless ``allow_partial`` (then a
    warning, and the trial is not scored, as in Kaldi); no trial with both vectors is always
    an error, so no empty score file is written."""
    def table(keys):
        raw = as_bytes(keys)
        return raw, key_hashes(raw)

    enroll = table(enroll_keys)
    test = enroll if test_keys is enroll_keys else table(test_keys)
    ei = lookup(*enroll, trials.raw1, trials.hash1)
    ti = lookup(*test, trials.raw2, trials.hash2)
    ok = (ei >= 0) & (ti >= 0)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        first = bad[0]
        missing, side = (trials.raw1[first], sides[0]) if ei[first] < 0 else (trials.raw2[first], sides[1])
        msg = (f"{trials.where(first)}: no {side} vector for '{_text(missing)}' "
               f"({len(bad)} of {len(ok)} trials have a key without a vector)")
        if not ok.any():
            raise SidError(f"{msg}: no trial can be scored")
        if not allow_partial:
            raise SidError(msg + "; pass --allow-partial=true to score the others")
        log.warning("%s; they are not scored (--allow-partial)", msg)
    return ei, ti, ok


def write_scores(wxfilename: str, keys1, keys2, scores: np.ndarray, chunk: int = 65536) -> None:
    """``utt1 utt2 score`` lines (keys as str or bytes); the score is a float printed with 7
    significant digits (``%.7g``), like Kaldi.

    The lines are laid out by numpy, a chunk at a time: each line a row of bytes (the keys'
    NUL-padded bytes, the score's characters, NULs where a shorter score ends), the NULs then
    dropped. Formatting 10^6 lines one by one in Python cost more than all of scoring."""
    values = scores.astype(np.float32).astype(np.float64)
    keys1, keys2 = as_bytes(keys1), as_bytes(keys2)
    w1, w2 = keys1.dtype.itemsize, keys2.dtype.itemsize
    with kaldi_io.open_output(wxfilename) as f:
        for s in range(0, len(values), chunk):
            v = values[s:s + chunk]
            line = np.zeros((len(v), w1 + w2 + 3 + _SCORE_WIDTH), dtype=np.uint8)
            line[:, :w1] = keys1[s:s + chunk, None].view(np.uint8)
            line[:, w1] = ord(" ")
            line[:, w1 + 1:w1 + 1 + w2] = keys2[s:s + chunk, None].view(np.uint8)
            line[:, w1 + 1 + w2] = ord(" ")
            line[:, -1 - _SCORE_WIDTH:-1] = format_g7(v)
            line[:, -1] = ord("\n")
            f.write(line[line != 0].tobytes())


_SCORE_WIDTH = 14  # "-1.234567e-100"


def _fixed_layouts() -> np.ndarray:
    """For each decimal exponent -4..6, which of (7 digits, ".", "0") each character of a fixed-point
    ``%.7g`` is (indices 0-6, 7, 8): "d.dddddd" .. "ddddddd." and "0.dddddddd" .. "0.000ddddddd"."""
    table = np.full((11, _SCORE_WIDTH - 1), 8)
    for e in range(-4, 7):
        if e >= 0:
            row = list(range(e + 1)) + [7] + list(range(e + 1, 7))
        else:
            row = [8, 7] + [8] * (-e - 1) + list(range(7))
        table[e + 4, :len(row)] = row
    return table


_FIXED = _fixed_layouts()


def format_g7(values: np.ndarray) -> np.ndarray:
    """The characters of ``b"%.7g" % v`` for each float64 ``v``, as rows of bytes padded with NULs.

    Fixed-point results (decimal exponents -4 to 6, the usual scores) are laid out by numpy from
    the 7 rounded digits; the rest (exponent notation, zero, inf, nan) and values within 1e-6 of
    a rounding tie once scaled (where the scaled double's own rounding could decide) are
    formatted by Python, so every row is exactly what printf prints."""
    a = np.abs(values)
    ok = np.isfinite(a) & (a > 0)
    a = np.where(ok, a, 1.0)
    exp = np.floor(np.log10(a)).astype(np.int64)
    for _ in range(2):  # log10 may be off by one next to a power of ten: fix and round again
        scaled = a * 10.0 ** (6 - exp).clip(-300, 300)
        mant = np.rint(scaled)
        exp += (mant >= 1e7).astype(np.int64) - (mant < 1e6).astype(np.int64)
    ok &= (mant >= 1e6) & (mant < 1e7) & (np.abs(scaled - np.floor(scaled) - 0.5) > 1e-6) & (exp >= -4) & (exp <= 6)
    mant = np.where(ok, mant, 1e6)
    # Each row's characters to choose from: its 7 digits, ".", "0" (int32 divisions by a constant
    # are a multiplication each; int64 ones and float remainders are 3x slower).
    pool = np.empty((len(a), 9), dtype=np.uint8)
    rest = mant.astype(np.int32)
    for k in range(6, -1, -1):
        quotient = rest // 10
        pool[:, k] = rest - 10 * quotient + ord("0")
        rest = quotient
    pool[:, 7], pool[:, 8] = ord("."), ord("0")
    layout = _FIXED[np.where(ok, exp, 0) + 4]
    # printf drops trailing zeros of the fraction (and its point when none is left): ``sig``
    # digits up to the last non-zero one (the first digit is not zero).
    sig = 7 - np.argmax(pool[:, 6::-1] != ord("0"), axis=1)
    length = np.where(exp >= 0, np.where(sig > exp + 1, sig + 1, exp + 1), 1 - exp + sig)
    chars = np.take_along_axis(pool, layout, axis=1)
    chars[np.arange(chars.shape[1]) >= length[:, None]] = 0
    out = np.empty((len(a), _SCORE_WIDTH), dtype=np.uint8)
    out[:, 0] = np.where(values < 0, ord("-"), 0)
    out[:, 1:] = chars
    for i in np.flatnonzero(~ok).tolist():
        text = b"%.7g" % values[i]
        out[i] = 0
        out[i, :len(text)] = np.frombuffer(text, dtype=np.uint8)
    return out


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
