"""Kaldi data directories: validate, fix, subset, split, copy and combine.

A data dir holds ``key value`` tables. What a file is keyed by follows from its name:
  * utterance: ``utt2*`` (utt2spk, utt2dur, utt2num_frames, utt2aug, ...), ``feats.scp``,
    ``vad.scp``, ``text``, ``segments``, and ``wav.scp`` when there is no ``segments``;
  * speaker: ``spk2*`` except ``spk2utt`` (spk2gender, ...), ``cmvn.scp``;
  * recording: ``reco2*`` and ``wav.scp`` when there is a ``segments`` file (without
    one, a recording is an utterance and these are utterance-keyed).
``spk2utt`` is always derived from ``utt2spk`` (speakers in order of first appearance,
as Kaldi's utt2spk_to_spk2utt.pl). Files are sorted by key in C-locale (bytewise)
order; Python compares ``str`` by code point, which is the same order for UTF-8.

Everything works on whole lines (stripped, otherwise verbatim) and on sets of keys,
with whole-list checks at C speed and per-line loops only where a check fails, so a
VoxCeleb2-size dir (1.1M utterances) takes seconds: one pass per file, and ``split``
slices each file into its parts instead of filtering it once per part.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import logging
import operator
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from sid.data.table import atomic_path
from sid.errors import DataDirError

log = logging.getLogger(__name__)

# Temporary files and folders are created private (0600/0700); outputs get the
# permissions a plain write would give them under the user's umask.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def _atomic_text(path: str | os.PathLike) -> Iterator:
    """A text file to write that appears at ``path`` (renamed into place) only when complete."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=ENCODING, errors=ERRORS, newline="\n") as f:
            yield f
        os.chmod(tmp, 0o666 & ~_UMASK)

# Kaldi's tools see bytes: text that is not UTF-8 passes through unchanged (each bad byte
# a lone surrogate in between), and only "\n" ends a line (a lone "\r" is a blank).
ENCODING, ERRORS = "utf-8", "surrogateescape"

UTT, SPK, REC = "utterance", "speaker", "recording"
UTT_FILES = ("feats.scp", "vad.scp", "text", "segments")


def key_kind(name: str, has_segments: bool) -> str | None:
    """What the keys of data-dir file ``name`` are; None for spk2utt and files that are not tables we know."""
    if name == "wav.scp":
        return REC if has_segments else UTT
    if name in UTT_FILES or name.startswith("utt2"):
        return UTT
    if name == "spk2utt":
        return None
    if name == "cmvn.scp" or name.startswith("spk2"):
        return SPK
    if name.startswith("reco2"):
        return REC if has_segments else UTT  # without segments a recording is an utterance
    return None


@dataclass
class Table:
    """A table file's lines (stripped of surrounding whitespace) and their keys, in file order."""

    path: Path
    keys: list[str]
    lines: list[str]
    linenos: list[int] | None = None  # set when empty lines were skipped
    empty_lines: list[int] = field(default_factory=list)

    def lineno(self, i: int) -> int:
        return self.linenos[i] if self.linenos is not None else i + 1

    def values(self) -> list[str]:
        out = []
        for line in self.lines:
            parts = line.split(None, 1)
            out.append(parts[1].strip() if len(parts) > 1 else "")
        return out


def load_table(path: str | os.PathLike) -> Table:
    """Read a table; empty lines are skipped and recorded (``empty_lines``) for the caller to judge."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise DataDirError(f"{path}: {err.strerror}") from None
    text = data.decode(ENCODING, ERRORS)
    del data
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    try:
        keys = [line.split(None, 1)[0] for line in lines]
        return Table(path, keys, [line.strip() for line in lines])
    except IndexError:  # an empty line somewhere: take the slower, careful path
        pass
    keys, kept, linenos, empty = [], [], [], []
    for lineno, line in enumerate(lines, 1):
        parts = line.split(None, 1)
        if not parts:
            empty.append(lineno)
            continue
        keys.append(parts[0])
        kept.append(line.strip())
        linenos.append(lineno)
    return Table(path, keys, kept, linenos, empty)


def spk2utt_lines(utts: Iterable[str], spks: Iterable[str]) -> list[str]:
    """spk2utt lines from utt2spk pairs: speakers in order of first appearance (utt2spk_to_spk2utt.pl)."""
    groups: dict[str, list[str]] = {}
    for utt, spk in zip(utts, spks):
        group = groups.get(spk)
        if group is None:
            groups[spk] = [utt]
        else:
            group.append(utt)
    return [spk + " " + " ".join(us) for spk, us in groups.items()]


def utt2spk_pairs(table: Table) -> list[str]:
    """The speaker of each utt2spk line (its second field)."""
    spks = [line[len(key):].strip() for line, key in zip(table.lines, table.keys)]
    if sum(map(len, map(str.split, spks))) != len(spks) or not all(spks):
        for i, spk in enumerate(spks):
            if len(spk.split()) != 1:
                raise DataDirError(f"{table.path}:{table.lineno(i)}: expected '<utterance> <speaker>', "
                                   f"got '{table.lines[i]}'")
    return spks


def write_lines(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """Write lines atomically (temporary name, then rename)."""
    if not isinstance(lines, list):
        lines = list(lines)
    with _atomic_text(path) as f:
        if lines:
            f.write("\n".join(lines))
            f.write("\n")


def _sorted_by_key(keys: list[str], lines: list[str]) -> tuple[list[str], list[str]]:
    if all(map(operator.le, keys, itertools.islice(keys, 1, None))):
        return keys, lines
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return [keys[i] for i in order], [lines[i] for i in order]


class DataDir:
    """A Kaldi data directory. Tables are read from disk on each ``table()`` call and not
    cached, so a tool holds only the tables it is working on (1.1M-line files are big)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataDirError(f"{self.path}: no such data directory")

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    @property
    def has_segments(self) -> bool:
        return self.has("segments")

    def table_names(self) -> list[str]:
        """Table files present whose keys we know, plus spk2utt; hidden files and subfolders are not ours."""
        seg = self.has_segments
        names = []
        for entry in sorted(os.listdir(self.path)):
            if entry.startswith(".") or not (self.path / entry).is_file():
                continue
            if entry == "spk2utt" or key_kind(entry, seg) is not None:
                names.append(entry)
        return names

    def table(self, name: str) -> Table:
        if not self.has(name):
            raise DataDirError(f"{self.file(name)}: no such file")
        return load_table(self.file(name))

    def utt2spk(self) -> tuple[list[str], list[str]]:
        """Utterances and their speakers, in utt2spk order (utt2spk is required)."""
        if not self.has("utt2spk"):
            raise DataDirError(f"{self.path}: no utt2spk")
        table = self.table("utt2spk")
        if table.empty_lines:
            raise DataDirError(f"{table.path}:{table.empty_lines[0]}: empty line")
        return table.keys, utt2spk_pairs(table)

    def segment_recordings(self) -> tuple[list[str], list[str]]:
        """Utterances of segments and the recording of each."""
        table = self.table("segments")
        out = []
        for i, line in enumerate(table.lines):
            fields = line.split()
            if len(fields) != 4:
                raise DataDirError(f"{table.path}:{table.lineno(i)}: expected '<utterance> <recording> <start> <end>'")
            out.append(fields[1])
        return table.keys, out


# ---------------------------------------------------------------------------
# validate


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Report:
    def __init__(self):
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, msg: str) -> None:
        self.errors.append(msg)


class _Keys:
    """A checked table's key set, and (built only when a message needs it) each key's first line."""

    def __init__(self, table: Table):
        self.table = table
        self.set = set(table.keys)
        self._first: dict[str, int] | None = None

    def first(self) -> dict[str, int]:
        if self._first is None:
            keys = self.table.keys
            # Built from the end, so the earliest index of a repeated key wins.
            self._first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1)))
        return self._first

    def where(self, key: str) -> str:
        return f"{self.table.path.name}:{self.table.lineno(self.first()[key])}"


def _check_table(table: Table, rep: _Report) -> _Keys:
    """Sortedness, uniqueness, empty lines and values. Whole-list checks run at C speed;
    the per-line loops that name each problem run only when a check fails."""
    keys, lines = table.keys, table.lines
    if not lines and not table.empty_lines:
        rep.error(f"{table.path}: file is empty")
    for lineno in table.empty_lines:
        rep.error(f"{table.path}:{lineno}: empty line")
    ks = _Keys(table)
    if len(ks.set) != len(keys):
        seen: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key in seen:
                rep.error(f"{table.path}:{table.lineno(i)}: duplicate key '{key}' (first at line {table.lineno(seen[key])})")
            else:
                seen[key] = i
    if not all(map(operator.le, keys, itertools.islice(keys, 1, None))):
        for i in range(1, len(keys)):
            if keys[i] < keys[i - 1]:
                rep.error(f"{table.path}:{table.lineno(i)}: not sorted: key '{keys[i]}' comes after '{keys[i - 1]}' "
                          f"(line {table.lineno(i - 1)}); sort with LC_ALL=C")
    if any(map(operator.eq, lines, keys)):  # a line that is just its key has no value
        for i, (line, key) in enumerate(zip(lines, keys)):
            if line == key:
                rep.error(f"{table.path}:{table.lineno(i)}: key '{key}' has no value")
    return ks


def _check_same_keys(ks: _Keys, ref: _Keys, what: str, rep: _Report) -> None:
    """Both ways: keys of ``ks`` missing from ``ref`` and the reverse, each with its line."""
    if ks.set == ref.set:
        return
    table, ref_name = ks.table, ref.table.path.name
    for i, key in sorted((ks.first()[k], k) for k in ks.set - ref.set):
        rep.error(f"{table.path}:{table.lineno(i)}: {what} '{key}' is not in {ref_name}")
    for i, key in sorted((ref.first()[k], k) for k in ref.set - ks.set):
        rep.error(f"{table.path}: no line for {what} '{key}' ({ref_name}:{ref.table.lineno(i)})")


def _raw_values(table: Table) -> list[str]:
    """Each line after its key (lines are stripped, so the key starts the line)."""
    return [line[len(key):] for line, key in zip(table.lines, table.keys)]


def _check_numbers(table: Table, rep: _Report, integer: bool = False) -> None:
    conv = int if integer else float
    try:
        if min(map(conv, _raw_values(table)), default=1) > 0:
            return
    except ValueError:
        pass
    for i, line in enumerate(table.lines):
        parts = line.split()
        if len(parts) != 2:
            rep.error(f"{table.path}:{table.lineno(i)}: expected '<key> <number>'")
            continue
        try:
            num = conv(parts[1])
        except ValueError:
            rep.error(f"{table.path}:{table.lineno(i)}: '{parts[1]}' is not {'an integer' if integer else 'a number'}")
            continue
        if not num > 0:
            rep.error(f"{table.path}:{table.lineno(i)}: '{parts[0]}' has {parts[1]}, expected a positive value")


def validate(path: str | os.PathLike, *, no_feats: bool = False, no_wav: bool = False, no_spk_sort: bool = False,
             no_text: bool = False, non_print: bool = False, check_audio: bool = False,
             check_frames: bool = True) -> tuple[list[str], list[str]]:
    """Every problem of a data dir as ``(errors, warnings)``; each names its file and line.

    Like Kaldi's validate_data_dir.sh: ``feats.scp`` and ``wav.scp`` are required unless
    ``no_feats``/``no_wav``, and checked whenever present; ``text`` is optional (Kaldi
    requires it unless ``no_text``) and, unless ``non_print``, must not hold control
    characters.
    ``check_audio``: every wav.scp file path must exist (pipes are not run).
    ``check_frames``: with utt2num_frames, the frame counts in the feats.scp/vad.scp
    archive headers must match it.
    Tables are loaded one at a time and dropped, so memory stays near two tables' worth.
    """
    d = DataDir(path)
    rep = _Report()
    for name in ("utt2spk", "spk2utt"):
        if not d.has(name):
            rep.error(f"{d.file(name)}: no such file (a data dir needs utt2spk and spk2utt; "
                      "make spk2utt with utt2spk_to_spk2utt.pl)")
    if not no_feats and not d.has("feats.scp"):
        rep.error(f"{d.file('feats.scp')}: no such file (use --no-feats for a data dir without features)")
    if not no_wav and not d.has("wav.scp"):
        rep.error(f"{d.file('wav.scp')}: no such file (use --no-wav for a data dir without audio)")
    if not d.has("utt2spk"):
        return rep.errors, rep.warnings

    unreadable: set[str] = set()

    def load(name: str) -> Table | None:
        """The table, or None (reported once) when it cannot be read as text."""
        if name in unreadable:
            return None
        try:
            return load_table(d.file(name))
        except DataDirError as err:
            rep.error(str(err))
            unreadable.add(name)
            return None

    u2s = load("utt2spk")
    if u2s is None:
        return rep.errors, rep.warnings
    utts = _check_table(u2s, rep)
    if not u2s.lines:
        return rep.errors, rep.warnings  # nothing to check the other files against
    spks = [v.strip() for v in _raw_values(u2s)]
    if sum(map(len, map(str.split, spks))) != len(spks) or not all(spks):
        for i, spk in enumerate(spks):
            if len(spk.split()) != 1:
                rep.error(f"{u2s.path}:{u2s.lineno(i)}: expected '<utterance> <speaker>', got '{u2s.lines[i]}'")
    if not no_spk_sort and not all(map(operator.le, spks, itertools.islice(spks, 1, None))):
        for i in range(1, len(spks)):
            if spks[i] < spks[i - 1]:
                rep.error(f"{u2s.path}:{u2s.lineno(i)}: speaker '{spks[i]}' comes after '{spks[i - 1]}': utt2spk must "
                          "also be sorted by speaker (make speaker ids prefixes of utterance ids)")

    s2u = load("spk2utt") if d.has("spk2utt") else None
    if s2u is not None:
        _check_table(s2u, rep)
        if s2u.lines != spk2utt_lines(u2s.keys, spks):
            _check_spk2utt(s2u, u2s, utts, spks, rep)
        del s2u

    has_seg = d.has_segments
    recordings: _Keys | None = None
    wav = load("wav.scp") if d.has("wav.scp") else None
    if wav is not None:
        wav_keys = _check_table(wav, rep)
        if has_seg:
            recordings = wav_keys
        else:
            _check_same_keys(wav_keys, utts, "utterance", rep)
        if check_audio:
            _check_audio_files(wav, rep)
        del wav, wav_keys
    elif has_seg and not d.has("wav.scp"):
        rep.error(f"{d.file('segments')}: there is no wav.scp for its recordings")

    spk_keys: _Keys | None = None
    num_frames: Table | None = None
    for name in d.table_names():
        if name in ("utt2spk", "spk2utt", "wav.scp"):
            continue
        table = load(name)
        if table is None:
            continue
        ks = _check_table(table, rep)
        if not table.lines:
            continue  # reported as empty; listing every utterance it lacks would add nothing
        kind = key_kind(name, has_seg)
        if kind == UTT:
            _check_same_keys(ks, utts, "utterance", rep)
        elif kind == SPK:
            if spk_keys is None:  # speakers by first utt2spk line, for messages
                spk_keys = _Keys(Table(u2s.path, spks, u2s.lines, u2s.linenos))
            _check_same_keys(ks, spk_keys, "speaker", rep)
        elif recordings is not None:
            _check_same_keys(ks, recordings, "recording", rep)
        else:
            rep.error(f"{table.path}: keyed by recording, but there is no wav.scp to check it against")
        if name == "segments":
            _check_segments(table, recordings, rep)
        elif name in ("utt2dur", "reco2dur"):
            _check_numbers(table, rep)
        elif name == "utt2num_frames":
            _check_numbers(table, rep, integer=True)
            num_frames = table
        elif name == "text" and not non_print:
            bad = [i for i, line in enumerate(table.lines) if _NON_PRINT.search(line)]
            if bad:
                rep.error(f"{table.path}:{table.lineno(bad[0])}: {len(bad)} lines with non-printable characters or "
                          "bytes that are not UTF-8 (e.g. this one; --non-print allows them)")
        elif name == "spk2gender":
            for i, value in enumerate(_raw_values(table)):
                if value.strip() not in ("m", "f"):
                    rep.error(f"{table.path}:{table.lineno(i)}: expected '<speaker> m|f', got '{table.lines[i]}'")
    if check_frames and num_frames is not None:
        for name in ("feats.scp", "vad.scp"):
            scp = load(name) if d.has(name) else None
            if scp is not None:
                _check_frames(scp, num_frames, rep)
    return rep.errors, rep.warnings


# What Kaldi's grep '[^[:print:][:space:]]' finds in a UTF-8 locale: control characters
# other than the blanks, and bytes that are not UTF-8 (read here as lone surrogates).
_NON_PRINT = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\udc80-\udcff]")


def _check_spk2utt(s2u: Table, u2s: Table, utts: _Keys, spks: list[str], rep: _Report) -> None:
    """The detailed comparison, run only when spk2utt differs from what utt2spk gives."""
    spk_of = dict(zip(u2s.keys, spks))
    speakers = set(spks)
    listed: dict[str, int] = {}
    for i, line in enumerate(s2u.lines):
        fields = line.split()
        spk, members = fields[0], fields[1:]
        where = f"{s2u.path}:{s2u.lineno(i)}"
        if not members:
            continue  # reported as a line without a value
        if spk not in speakers:
            rep.error(f"{where}: speaker '{spk}' is not in utt2spk")
        for utt in members:
            if utt in listed:
                rep.error(f"{where}: utterance '{utt}' already listed (line {s2u.lineno(listed[utt])})")
                continue
            listed[utt] = i
            owner = spk_of.get(utt)
            if owner is None:
                rep.error(f"{where}: utterance '{utt}' of speaker '{spk}' is not in utt2spk")
            elif owner != spk:
                rep.error(f"{where}: utterance '{utt}' is listed for speaker '{spk}' but {utts.where(utt)} "
                          f"gives speaker '{owner}'")
        if not all(map(operator.le, members, itertools.islice(members, 1, None))):
            rep.error(f"{where}: utterances of speaker '{spk}' are not in sorted order")
    for i, utt in enumerate(u2s.keys):
        if utt not in listed:
            rep.error(f"{s2u.path}: utterance '{utt}' (utt2spk:{u2s.lineno(i)}, speaker '{spks[i]}') is not listed")


def _check_segments(seg: Table, recordings: _Keys | None, rep: _Report) -> None:
    used = set()
    for i, line in enumerate(seg.lines):
        fields = line.split()
        where = f"{seg.path}:{seg.lineno(i)}"
        if len(fields) != 4 or not _is_number(fields[2]) or not _is_number(fields[3]):
            rep.error(f"{where}: expected '<utterance> <recording> <start-seconds> <end-seconds>', got '{line}'")
            continue
        rec, start, end = fields[1], float(fields[2]), float(fields[3])
        used.add(rec)
        if start < 0 or end <= start:
            rep.error(f"{where}: bad segment times {fields[2]} {fields[3]} (need 0 <= start < end)")
        if recordings is not None and rec not in recordings.set:
            rep.error(f"{where}: recording '{rec}' is not in wav.scp")
    if recordings is not None:
        unused = [r for r in recordings.table.keys if r not in used]
        if unused:
            rep.warnings.append(f"{seg.path.parent / 'wav.scp'}: {len(unused)} recordings have no segments "
                                f"(e.g. '{unused[0]}')")


def _check_audio_files(wav: Table, rep: _Report) -> None:
    for i, value in enumerate(wav.values()):
        if value.endswith("|") or value == "-":
            continue  # a pipe is only checked by running it
        if not os.path.isfile(value):
            rep.error(f"{wav.path}:{wav.lineno(i)}: '{wav.keys[i]}': audio file '{value}' does not exist")


def _check_frames(scp: Table, num_frames: Table, rep: _Report) -> None:
    expected: dict[str, tuple[int, str]] = {}
    for i, line in enumerate(num_frames.lines):
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            expected[parts[0]] = (int(parts[1]), f"{num_frames.path.name}:{num_frames.lineno(i)}")
    from sid.kaldi_io import RandomAccessReader  # numpy: imported only when frames are checked

    reader = RandomAccessReader()
    # A missing or unreadable archive is one problem, not one per utterance in it.
    bad_archives: dict[str, list] = {}
    try:
        for i, value in enumerate(scp.values()):
            utt = scp.keys[i]
            if utt not in expected:
                continue
            try:
                rows = reader.num_rows(value)
            except OSError as err:
                entry = bad_archives.setdefault(value.rpartition(":")[0], [scp.lineno(i), 0, err.strerror or str(err)])
                entry[1] += 1
                continue
            except ValueError as err:
                rep.error(f"{scp.path}:{scp.lineno(i)}: cannot read '{utt}' ({value}): {err}")
                continue
            want, where = expected[utt]
            if rows != want:
                rep.error(f"{scp.path}:{scp.lineno(i)}: '{utt}' has {rows} frames but {where} says {want}")
    finally:
        reader.close()
    for archive, (lineno, count, why) in bad_archives.items():
        rep.error(f"{scp.path}:{lineno}: cannot read archive '{archive}' ({why}; {count} entries)")


# ---------------------------------------------------------------------------
# writing a data dir reduced to (and optionally split over) sets of keys


def _distribute(table: Table, where: dict, nparts: int) -> list[list[str]]:
    """Each line goes to the part(s) its key maps to (an int or a tuple of ints); unmapped keys are dropped."""
    parts: list[list[str]] = [[] for _ in range(nparts)]
    get = where.get
    for key, line in zip(table.keys, table.lines):
        p = get(key)
        if p is None:
            continue
        if type(p) is int:
            parts[p].append(line)
        else:
            for q in p:
                parts[q].append(line)
    return parts


def _write_parts(src: DataDir, dests: list[Path], utt_part: dict[str, int],
                 utts: list[str], spks: list[str]) -> None:
    """Write every table of ``src`` into each of ``dests``, part ``p`` holding the utterances with ``utt_part[u] == p``.

    In a valid data dir every utterance-keyed file has utt2spk's keys in its order, and
    split's parts are contiguous in that order, so each part is a slice of each file;
    files keyed otherwise go line by line.
    """
    n = len(dests)
    has_seg = src.has_segments
    part_of = list(map(utt_part.get, utts))
    spk_parts: dict[str, set[int]] = {}
    part_utts: list[list[str]] = [[] for _ in range(n)]
    part_spks: list[list[str]] = [[] for _ in range(n)]
    for utt, spk, p in zip(utts, spks, part_of):
        if p is None:
            continue
        part_utts[p].append(utt)
        part_spks[p].append(spk)
        spk_parts.setdefault(spk, set()).add(p)
    spk_where = {s: (next(iter(ps)) if len(ps) == 1 else tuple(sorted(ps))) for s, ps in spk_parts.items()}
    rec_where: dict = {}
    if has_seg:
        rec_parts: dict[str, set[int]] = {}
        for utt, rec in zip(*src.segment_recordings()):
            p = utt_part.get(utt)
            if p is not None:
                rec_parts.setdefault(rec, set()).add(p)
        rec_where = {r: (next(iter(ps)) if len(ps) == 1 else tuple(sorted(ps))) for r, ps in rec_parts.items()}

    slices: list[tuple[int, int]] | None = None
    if None not in part_of and all(map(operator.le, part_of, itertools.islice(part_of, 1, None))):
        counts = [len(us) for us in part_utts]
        ends = list(itertools.accumulate(counts))
        slices = [(e - c, e) for c, e in zip(counts, ends)]
    del part_of

    for d in dests:
        d.mkdir(parents=True, exist_ok=True)
    for name in src.table_names():
        if name == "spk2utt":
            continue
        kind = key_kind(name, has_seg)
        where = utt_part if kind == UTT else spk_where if kind == SPK else rec_where
        table = src.table(name)
        if kind == UTT and slices is not None and table.keys == utts:
            parts = [table.lines[a:b] for a, b in slices]
        else:
            parts = _distribute(table, where, n)
        del table
        for d, lines in zip(dests, parts):
            write_lines(d / name, lines)
    for d, us, ss in zip(dests, part_utts, part_spks):
        write_lines(d / "spk2utt", spk2utt_lines(us, ss))


def _clear_tables(dest: Path, backup: bool = False, keep: Iterable[str] = ()) -> None:
    """Remove the tables of a previous data dir at ``dest`` so none survives that the new one lacks;
    with ``backup``, those not in ``keep`` (to be rewritten) are moved to ``dest/.backup/``."""
    if dest.is_dir():
        seg = (dest / "segments").is_file()
        keep = set(keep)
        for entry in os.listdir(dest):
            p = dest / entry
            if p.is_file() and not entry.startswith(".") and (entry == "spk2utt" or key_kind(entry, seg) is not None
                                                               or entry in _COPY_VERBATIM):
                if backup and entry not in keep:
                    (dest / ".backup").mkdir(exist_ok=True)
                    os.replace(p, dest / ".backup" / entry)
                    log.warning("%s: not in the source; moved to %s", p, dest / ".backup")
                else:
                    p.unlink()


def _check_dest(src: DataDir, dest: Path) -> None:
    if dest.resolve() == src.path.resolve():
        raise DataDirError(f"destination {dest} is the source data dir")


def _filter_file(path: Path, out_path: Path, keep: set[str] | dict) -> None:
    """Copy the lines of a table whose key is in ``keep``, streamed (memory does not grow with the file)."""
    with open(path, encoding=ENCODING, errors=ERRORS, newline="\n") as f, _atomic_text(out_path) as out:
        write = out.write
        last = "\n"
        for line in f:
            parts = line.split(None, 1)
            if parts and parts[0] in keep:
                write(line)
                last = line
        if not last.endswith("\n"):
            write("\n")


def write_subset(src: DataDir, dest: str | os.PathLike, utts: Iterable[str],
                 utt2spk: tuple[list[str], list[str]] | None = None) -> int:
    """Write ``dest`` holding the utterances of ``src`` in ``utts``; returns how many.

    ``utt2spk``: ``src.utt2spk()`` when the caller has already read it. Each file is
    streamed through a filter, so memory holds the ids, not the files.
    """
    dest = Path(dest)
    _check_dest(src, dest)
    all_utts, spks = utt2spk or src.utt2spk()
    keep = utts if isinstance(utts, (set, frozenset)) else set(utts)
    mask = [u in keep for u in all_utts]
    kept_utts = list(itertools.compress(all_utts, mask))
    kept_spks = list(itertools.compress(spks, mask))
    del mask
    keep = set(kept_utts)
    has_seg = src.has_segments
    recordings: set[str] = set()
    if has_seg:
        recordings = {rec for utt, rec in zip(*src.segment_recordings()) if utt in keep}
    where = {UTT: keep, SPK: set(kept_spks), REC: recordings}
    _clear_tables(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in src.table_names():
        if name != "spk2utt":
            _filter_file(src.file(name), dest / name, where[key_kind(name, has_seg)])
    write_lines(dest / "spk2utt", spk2utt_lines(kept_utts, kept_spks))
    if src.has("frame_shift"):
        shutil.copyfile(src.file("frame_shift"), dest / "frame_shift")
    return len(kept_utts)


def subset(src: str | os.PathLike, dest: str | os.PathLike, *, utt_list: str | None = None, spk_list: str | None = None,
           num: int = 0, first: int = 0, last: int = 0, per_spk: int = 0, speakers: int = 0,
           shortest: int = 0) -> int:
    """Kaldi's subset_data_dir.sh, choosing the same utterances; returns the number written.

    Exactly one selection: ``num`` utterances spread evenly over utt2spk (Kaldi's
    default, subset_scp.pl), the ``first``/``last`` N, up to ``per_spk`` per speaker
    (every k-th, k the largest step that still gives N), whole ``speakers`` in Kaldi's
    shuffle_list.pl order until there are N utterances, the ``shortest`` N (by
    utt2num_frames, else the feature lengths), or the ids of ``utt_list``/``spk_list``.
    """
    counts = {"num": num, "first": first, "last": last, "per_spk": per_spk, "speakers": speakers, "shortest": shortest}
    modes = [bool(utt_list), bool(spk_list)] + [n > 0 for n in counts.values()]
    if sum(modes) != 1:
        raise DataDirError("choose exactly one of --utt-list, --spk-list, --first, --last, --per-spk, --speakers, "
                           "--shortest or a number of utterances")
    d = DataDir(src)
    _check_dest(d, Path(dest))
    utts, spks = d.utt2spk()
    n = max(counts.values())
    if n > len(utts):
        raise DataDirError(f"cannot subset {d.path} to {n} utterances: it has only {len(utts)}")
    if utt_list:
        keep = set(_read_id_list(utt_list))
        sel = [u for u in utts if u in keep]
        if len(sel) < len(keep):
            log.warning("%d utterances of %s are not in %s", len(keep) - len(sel), utt_list, d.path)
    elif spk_list:
        keep = set(_read_id_list(spk_list))
        sel = [u for u, s in zip(utts, spks) if s in keep]
    elif first:
        sel = utts[:first]
    elif last:
        sel = utts[-last:]
    elif per_spk:
        groups: dict[str, list[str]] = {}
        for u, s in zip(utts, spks):
            groups.setdefault(s, []).append(u)
        sel = []
        for us in groups.values():
            step = 1
            while per_spk * (step + 1) <= len(us):
                step += 1
            sel.extend(us[0:min(len(us), per_spk * step):step])
    elif speakers:
        groups = {}
        for u, s in zip(utts, spks):
            groups.setdefault(s, []).append(u)
        chosen_spks, total = set(), 0
        for spk in shuffle_list(list(groups)):
            if total >= speakers:
                break
            chosen_spks.add(spk)
            total += len(groups[spk])
        sel = [u for u, s in zip(utts, spks) if s in chosen_spks]
    elif shortest:
        keep = set(u for _, u in sorted(_lengths(d))[:shortest])
        sel = [u for u in utts if u in keep]
    else:
        sel = spread(utts, num)
    if not sel:
        raise DataDirError(f"the subset of {d.path} would be empty")
    chosen = set(sel)
    n = write_subset(d, dest, chosen, (utts, spks))
    log.info("reducing #utt from %d to %d (%d speakers) in %s", len(utts), n,
             len({s for u, s in zip(utts, spks) if u in chosen}), dest)
    return n


def spread(items: list, n: int) -> list:
    """``n`` of ``items`` spread evenly, the ones Kaldi's subset_scp.pl picks (halve the range
    and the count, left half getting the smaller half of the count)."""
    out: list = []

    def pick(start: int, end: int, needed: int) -> None:
        if end - start == 1:
            if needed > 0:
                out.append(items[start])
            return
        half = (end - start) // 2
        pick(start, start + half, needed // 2)
        pick(start + half, end, needed - needed // 2)

    if n > 0 and items:
        pick(0, len(items), n)
    return out


def shuffle_list(items: list, seed: int = 0) -> list:
    """Kaldi's shuffle_list.pl order: each item gets Perl's ``rand()`` after ``srand(seed)``
    (drand48), items sorted by those numbers as Perl prints them, compared as strings."""
    x = (seed << 16) + 0x330E
    keyed = []
    for i, item in enumerate(items):
        x = (0x5DEECE66D * x + 0xB) & 0xFFFFFFFFFFFF
        keyed.append((format(x / 2.0 ** 48, ".15g"), i, item))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [item for _, _, item in keyed]


def _lengths(d: DataDir) -> list[tuple[tuple[float, str], str]]:
    """``((length, line), utt)`` per utterance in Kaldi's ``sort -n -k2`` order terms: from
    utt2num_frames, or else the feature matrices' row counts."""
    if d.has("utt2num_frames"):
        t = d.table("utt2num_frames")
        pairs = [(k, line) for k, line in zip(t.keys, t.lines)]
    elif d.has("feats.scp"):
        from sid.kaldi_io import RandomAccessReader  # numpy: imported only when frames are counted

        t = d.table("feats.scp")
        reader = RandomAccessReader()
        try:
            pairs = []
            for k, v in zip(t.keys, t.values()):
                try:
                    pairs.append((k, f"{k} {reader.num_rows(v)}"))
                except (OSError, ValueError) as err:
                    raise DataDirError(f"{t.path}: cannot read '{k}': {err}") from None
        finally:
            reader.close()
    else:
        raise DataDirError(f"{d.path}: --shortest needs utt2num_frames or feats.scp")
    return [((_leading_number(_field(line, 1) or ""), line), k) for k, line in pairs]


def _leading_number(text: str) -> float:
    """``sort -n``'s number: the leading decimal number of the field, 0 when there is none."""
    m = re.match(r"-?(\d+\.?\d*|\.\d+)", text)
    return float(m.group(0)) if m else 0.0


def _read_id_list(path: str) -> list[str]:
    try:
        with open(path, encoding=ENCODING, errors=ERRORS, newline="\n") as f:
            return [line.split(None, 1)[0] for line in f if line.strip()]
    except OSError as err:
        raise DataDirError(f"{path}: {err.strerror}") from None


# ---------------------------------------------------------------------------
# split


def _kaldi_speaker_split(counts: list[int], n: int) -> list[int]:
    """Part of each speaker (given in order with its utterance count), as Kaldi's split_scp.pl
    --utt2spk: speaker i starts in part i*n//len, then a speaker at a part's edge moves to the
    neighbouring part while that brings the two parts' utterance counts closer."""
    m = len(counts)
    parts: list[list[int]] = [[] for _ in range(n)]
    totals = [0] * n
    for i, c in enumerate(counts):
        p = i * n // m
        parts[p].append(i)
        totals[p] += c
    changed = True
    while changed:
        changed = False
        for p in range(n):
            if p < n - 1 and parts[p]:
                c = counts[parts[p][-1]]
                if abs((totals[p + 1] + c) - (totals[p] - c)) < abs(totals[p + 1] - totals[p]):
                    totals[p + 1] += c
                    totals[p] -= c
                    parts[p + 1].insert(0, parts[p].pop())
                    changed = True
            if p > 0 and parts[p]:
                c = counts[parts[p][0]]
                if abs((totals[p] - c) - (totals[p - 1] + c)) < abs(totals[p] - totals[p - 1]):
                    totals[p - 1] += c
                    totals[p] -= c
                    parts[p - 1].append(parts[p].pop(0))
                    changed = True
    out = [0] * m
    for p, members in enumerate(parts):
        if not members:
            raise DataDirError(f"cannot split {m} speakers into {n} parts without an empty part "
                               "(too many parts for too few speakers; split per utterance with --per-utt)")
        for i in members:
            out[i] = p
    return out


def split_assignment(utts: list[str], spks: list[str], n: int, per_utt: bool) -> dict[str, int]:
    """utterance -> part, contiguous in utt2spk order and balanced by count.

    By speaker (default) no speaker is in two parts; ``per_utt`` parts differ by at most one utterance.
    """
    if n < 1:
        raise DataDirError(f"cannot split into {n} parts")
    if per_utt:
        if n > len(utts):
            raise DataDirError(f"cannot split {len(utts)} utterances into {n} parts")
        base, extra = divmod(len(utts), n)
        out = {}
        i = 0
        for p in range(n):
            size = base + (1 if p < extra else 0)
            for u in utts[i:i + size]:
                out[u] = p
            i += size
        return out
    order: list[str] = []
    counts: dict[str, int] = {}
    for s in spks:
        if s not in counts:
            order.append(s)
            counts[s] = 0
        counts[s] += 1
    if n > len(order):
        raise DataDirError(f"cannot split {len(order)} speakers into {n} parts (split per utterance with --per-utt)")
    spk_part = dict(zip(order, _kaldi_speaker_split([counts[s] for s in order], n)))
    return {u: spk_part[s] for u, s in zip(utts, spks)}


def _manifest(d: DataDir) -> str:
    lines = []
    for name in d.table_names():
        st = d.file(name).stat()
        lines.append(f"{name} {st.st_size} {st.st_mtime_ns}")
    return "\n".join(lines) + "\n"


def split(path: str | os.PathLike, n: int, *, per_utt: bool = False) -> Path:
    """Write ``<dir>/split<n>[utt]/<1..n>/``; an existing split made from the same files is reused.

    The split is built in a temporary folder and renamed into place, so a job never
    sees half a split; ``.sources`` records the size and mtime of each source file.
    """
    d = DataDir(path)
    out = d.path / f"split{n}{'utt' if per_utt else ''}"
    manifest = _manifest(d)
    stamp = out / ".sources"
    if stamp.is_file() and stamp.read_text() == manifest and all((out / str(p) / "utt2spk").is_file()
                                                                for p in range(1, n + 1)):
        log.info("%s is up to date", out)
        return out
    utts, spks = d.utt2spk()
    where = split_assignment(utts, spks, n, per_utt)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=d.path))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        _write_parts(d, [tmp / str(p + 1) for p in range(n)], where, utts, spks)
        write_lines(tmp / ".sources", manifest.splitlines())
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=d.path))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("split %s (%d utterances, %d speakers) into %d parts %s", d.path, len(utts), len(set(spks)), n,
             "per utterance" if per_utt else "by speaker")
    return out


# ---------------------------------------------------------------------------
# fix


# Kaldi's fix_data_dir.sh drops an utterance missing from one of these (wav.scp too when
# there is no segments file, utt2dur/utt2num_frames when the value is not positive); ours
# also from vad.scp, so that utterances whose VAD failed go (Kaldi keeps them, and its
# validator then rejects the dir). Other utterance-keyed files are only reduced.
_FIX_UTT_FILTERS = ("feats.scp", "text", "segments", "utt2lang", "vad.scp")
# ... and a speaker missing from one of these, with all its utterances.
_FIX_SPK_FILTERS = ("cmvn.scp", "spk2gender")
_AWK_NUMBER = re.compile(r"[ \t]*[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+)[ \t]*")


def awk_positive(field: str) -> bool:
    """awk's ``$2 > 0`` (as Kaldi's scripts test durations): a numeric comparison when the
    field looks like a number (mawk also reads hex), else a string comparison with "0"."""
    if _AWK_NUMBER.fullmatch(field):
        return (int(field, 16) if "x" in field.lower() else float(field)) > 0
    return field > "0"


def _dedup_sorted(t: Table) -> tuple[list[str], list[str], list[str]]:
    """``sort -k1,1 -u``: sorted by key, the first line of a repeated key kept; empty lines
    and lines with only a key dropped (Kaldi keeps those, for a later tool to fail on)."""
    keys, lines = t.keys, t.lines
    notes = []
    if t.empty_lines:
        notes.append(f"{t.path.name}: dropped {len(t.empty_lines)} empty lines")
    if any(map(operator.eq, lines, keys)) or len(set(keys)) != len(keys):
        seen: set[str] = set()
        kk, ll = [], []
        dup = malformed = 0
        for k, line in zip(keys, lines):
            if k in seen:
                dup += 1
            elif line == k:
                malformed += 1
            else:
                seen.add(k)
                kk.append(k)
                ll.append(line)
        keys, lines = kk, ll
        if dup:
            notes.append(f"{t.path.name}: dropped {dup} lines with a duplicate key (first line kept)")
        if malformed:
            notes.append(f"{t.path.name}: dropped {malformed} lines without a value")
    keys, lines = _sorted_by_key(keys, lines)
    return keys, lines, notes


def _field(line: str, i: int) -> str | None:
    parts = line.split()
    return parts[i] if len(parts) > i else None


def fix(path: str | os.PathLike, *, utt_extra_files: Iterable[str] = (),
        spk_extra_files: Iterable[str] = ()) -> dict[str, int]:
    """Kaldi's fix_data_dir.sh, step for step, on the files in memory.

    Every table is sorted with the first line of a repeated key kept. With segments, the
    segments whose recording is not in wav.scp go. Speakers missing from cmvn.scp or
    spk2gender go with their utterances; utterances missing from feats.scp, text,
    segments, utt2lang, vad.scp, wav.scp (without segments) or with a utt2dur /
    utt2num_frames value that is not positive go. Then every file is reduced to the
    utterances, speakers and recordings left and spk2utt is remade. utt2spk must be
    sorted by speaker too (speaker ids prefixes of utterance ids); otherwise it fails,
    as Kaldi does, and changes nothing.

    ``utt_extra_files``/``spk_extra_files``: more files (by name) keyed by utterance /
    speaker; every ``utt2*``, ``spk2*`` and ``reco2*`` file is handled without naming it.
    The previous files are copied to ``<dir>/.backup/`` with a ``dropped`` list
    (``<utterance> <reason>``). Returns ``reason -> count``.
    """
    d = DataDir(path)
    if not d.has("utt2spk"):
        if not d.has("spk2utt"):
            raise DataDirError(f"{d.file('utt2spk')}: no such file")
        pairs = []
        for line in d.table("spk2utt").lines:
            f = line.split()
            pairs.extend(f"{u} {f[0]}" for u in f[1:])
        pairs.sort()  # whole-line order is key order: keys hold no whitespace
        write_lines(d.file("utt2spk"), pairs)
        log.info("made utt2spk from spk2utt")
    has_seg = d.has_segments
    kinds = {name: key_kind(name, has_seg) for name in d.table_names() if name != "spk2utt"}
    for names, kind in ((utt_extra_files, UTT), (spk_extra_files, SPK)):
        for name in names:
            if d.has(name):
                kinds[name] = kind
    clean: dict[str, tuple[list[str], list[str]]] = {}
    notes: list[str] = []
    for name in kinds:
        keys, lines, why = _dedup_sorted(d.table(name))
        clean[name] = (keys, lines)
        notes.extend(why)
    if has_seg and "wav.scp" not in clean:
        raise DataDirError(f"{d.file('segments')} exists but not {d.file('wav.scp')}")

    u_keys, u_lines = clean["utt2spk"]
    spks = []
    for k, line in zip(u_keys, u_lines):
        parts = line.split()
        if len(parts) != 2:
            raise DataDirError(f"{d.file('utt2spk')}: expected '<utterance> <speaker>', got '{line}'")
        spks.append(parts[1])
    if not all(map(operator.le, spks, itertools.islice(spks, 1, None))):
        i = next(i for i in range(1, len(spks)) if spks[i] < spks[i - 1])
        raise DataDirError(f"{d.file('utt2spk')}: not sorted by speaker as well as by utterance: '{u_keys[i]}' "
                           f"(speaker '{spks[i]}') follows '{u_keys[i - 1]}' (speaker '{spks[i - 1]}'); make "
                           "speaker ids prefixes of utterance ids (Kaldi's fix_data_dir.sh stops here too)")

    dropped: dict[str, str] = {}
    reasons: dict[str, int] = {}

    def drop(utts: Iterable[str], why: str) -> None:
        n = 0
        for u in utts:
            if u not in dropped:
                dropped[u] = why
                n += 1
        if n:
            reasons[why] = reasons.get(why, 0) + n

    recordings: set[str] = set()
    if has_seg:
        recordings = set(clean["wav.scp"][0])
        s_keys, s_lines = clean["segments"]
        drop((k for k, line in zip(s_keys, s_lines) if _field(line, 1) not in recordings),
             "its recording is not in wav.scp")
    speakers = set(spks)
    for name in _FIX_SPK_FILTERS:
        if name in clean:
            present = set(clean[name][0])
            lost = speakers - present
            if lost:
                drop((u for u, s in zip(u_keys, spks) if s in lost), f"its speaker is not in {name}")
    filters = list(_FIX_UTT_FILTERS) + ([] if has_seg else ["wav.scp"])
    for name in filters:
        if name in clean:
            present = set(clean[name][0])
            drop((u for u in u_keys if u not in present), f"not in {name}")
    for name in ("utt2dur", "utt2num_frames"):
        if name in clean:
            good = {k for k, line in zip(*clean[name]) if len(f := line.split()) == 2 and awk_positive(f[1])}
            drop((u for u in u_keys if u not in good), f"no positive value in {name}")
    kept = [(u, s) for u, s in zip(u_keys, spks) if u not in dropped]
    if not kept:
        raise DataDirError(f"{d.path}: no utterances remained ({'; '.join(f'{n} {w}' for w, n in reasons.items())})")

    backup = d.path / ".backup"
    if backup.exists():
        shutil.rmtree(backup)
    backup.mkdir()
    for name in d.table_names():
        shutil.copy2(d.file(name), backup / name)
    write_lines(backup / "dropped", [f"{u} {why.replace(' ', '-')}" for u, why in sorted(dropped.items())])

    keep = {u for u, _ in kept}
    speakers = {s for _, s in kept}
    if has_seg:
        s_keys, s_lines = clean["segments"]
        recordings = {_field(line, 1) for k, line in zip(s_keys, s_lines) if k in keep}
    wanted = {UTT: keep, SPK: speakers, REC: recordings}
    for name, (keys, lines) in clean.items():
        kind = kinds[name]
        out = [line for k, line in zip(keys, lines) if k in wanted[kind]]
        if kind != UTT and len(out) < len(keys):
            notes.append(f"{name}: dropped {len(keys) - len(out)} lines for {kind}s not in use")
        elif kind == UTT and len(out) < len(keys) - sum(k in dropped for k in keys):
            notes.append(f"{name}: dropped {len(keys) - len(out) - sum(k in dropped for k in keys)} "
                         "lines for utterances not in utt2spk")
        write_lines(d.file(name), out)
    write_lines(d.file("spk2utt"), spk2utt_lines([u for u, _ in kept], [s for _, s in kept]))
    for note in notes:
        log.info("%s", note)
    for why, count in reasons.items():
        log.info("dropped %d utterances: %s", count, why)
    log.info("kept %d of %d utterances (%d speakers) in %s; old files in %s", len(kept), len(u_keys),
             len(speakers), d.path, backup)
    return reasons


# ---------------------------------------------------------------------------
# copy and combine


# Files Kaldi's copy_data_dir.sh rewrites with apply_map.pl (fields joined by one space);
# others with renamed keys keep the rest of their line as it was.
_COPY_REWRITTEN = {"feats.scp", "vad.scp", "utt2lang", "segments", "text", "utt2dur", "utt2num_frames",
                   "spk2gender", "cmvn.scp"}
_COPY_VERBATIM = ("frame_shift", "stm", "glm", "ctm")


def copy(src: str | os.PathLike, dest: str | os.PathLike, *, utt_prefix: str = "", utt_suffix: str = "",
         spk_prefix: str = "", spk_suffix: str = "", validate_opts: str = "") -> int:
    """Kaldi's copy_data_dir.sh: copy with utterance/speaker ids renamed, then validate the copy.

    An existing ``utt2uniq`` is carried over (renamed); none is made where the source has
    none (Kaldi's script makes one, then moves it away as a file the source lacks).
    Recording ids (with ``segments``) are not renamed.
    Files are sorted by their new keys (Kaldi keeps the old order, which a suffix can
    unsort). Tables of a previous data dir at ``dest`` that the source lacks are moved
    to ``dest/.backup/``. The copy is checked with :func:`validate` (``--no-feats``/
    ``--no-text`` where the source has no feats.scp/text, plus the Kaldi
    validate_data_dir.sh options in ``validate_opts``); a problem is an error.
    """
    s = DataDir(src)
    dest = Path(dest)
    _check_dest(s, dest)
    vopts = _validate_options(validate_opts)
    utts, spks = s.utt2spk()
    has_seg = s.has_segments

    def rename(key: str, kind: str) -> str:
        if kind == UTT:
            return utt_prefix + key + utt_suffix
        if kind == SPK:
            return spk_prefix + key + spk_suffix
        return key

    _clear_tables(dest, backup=True, keep=s.table_names() + ["utt2uniq"])
    dest.mkdir(parents=True, exist_ok=True)
    renamed = bool(utt_prefix or utt_suffix)
    for name in s.table_names():
        if name in ("spk2utt", "utt2uniq"):
            continue
        kind = key_kind(name, has_seg)
        t = s.table(name)
        if kind == REC:
            lines, keys = t.lines, t.keys
        elif name in _COPY_REWRITTEN or (name in ("wav.scp", "reco2dur") and not has_seg):
            keys = [rename(k, kind) for k in t.keys]
            lines = [" ".join([k] + line.split()[1:]) for k, line in zip(keys, t.lines)]
        elif not (renamed or (kind == SPK and (spk_prefix or spk_suffix))):
            lines, keys = t.lines, t.keys
        else:
            keys = [rename(k, kind) for k in t.keys]
            lines = []
            for k, line in zip(keys, t.lines):
                rest = line.split(None, 1)
                lines.append(k + " " + rest[1] if len(rest) > 1 else k)
        if name == "utt2spk":
            lines = [k + " " + rename(sp, SPK) for k, sp in zip(keys, spks)]
        keys, lines = _sorted_by_key(keys, lines)
        write_lines(dest / name, lines)
    new_utts = [rename(u, UTT) for u in utts]
    new_spks = [rename(sp, SPK) for sp in spks]
    order = sorted(range(len(new_utts)), key=new_utts.__getitem__)
    write_lines(dest / "spk2utt", spk2utt_lines([new_utts[i] for i in order], [new_spks[i] for i in order]))
    if s.has("utt2uniq"):
        t = s.table("utt2uniq")
        write_lines(dest / "utt2uniq", sorted(f"{rename(k, UTT)} {_field(line, 1) or ''}"
                                              for k, line in zip(t.keys, t.lines)))
    for name in _COPY_VERBATIM:
        if s.has(name):
            shutil.copyfile(s.file(name), dest / name)
    log.info("copied %d utterances from %s to %s", len(utts), s.path, dest)
    vopts.setdefault("no_feats", not s.has("feats.scp"))
    errors, warnings = validate(dest, check_frames=False, **vopts)
    for w in warnings:
        log.warning("%s", w)
    if errors:
        raise DataDirError("the copy does not validate (validate_data_dir.sh "
                           f"{validate_opts}{' ' if validate_opts else ''}{dest}):\n" + "\n".join(errors))
    return len(utts)


def _validate_options(text: str) -> dict[str, bool]:
    """Kaldi validate_data_dir.sh flags (as copy_data_dir.sh's --validate-opts) -> :func:`validate` keywords."""
    flags = {"--no-feats": "no_feats", "--no-wav": "no_wav", "--no-text": "no_text", "--non-print": "non_print",
             "--no-spk-sort": "no_spk_sort"}
    out = {}
    for word in text.split():
        if word not in flags:
            raise DataDirError(f"unknown validate_data_dir.sh option '{word}' (known: {', '.join(flags)})")
        out[flags[word]] = True
    return out


def _iter_keyed(path: Path, src: int) -> Iterator[tuple[str, int, str]]:
    """``(key, src, line)`` for each non-empty line of a table file, streamed."""
    with open(path, encoding=ENCODING, errors=ERRORS, newline="\n") as f:
        for line in f:
            parts = line.split(None, 1)
            if parts:
                yield parts[0], src, line.strip()


class _Unsorted(Exception):
    pass


def _ascending(items: Iterator[tuple[str, int, str]]) -> Iterator[tuple[str, int, str]]:
    prev = ""
    for item in items:
        if item[0] < prev:
            raise _Unsorted
        prev = item[0]
        yield item


def _combine_file(out_path: Path, sources: list, labels: list[str], kind: str) -> int:
    """Merge the sources' lines into ``out_path`` in line order (Kaldi's ``sort``); returns the number of lines.

    Sorted sources are merged as streams, so memory does not grow with the data;
    an unsorted source makes it fall back to sorting everything in memory. A key in
    more than one line is written once, from the line that sorts first (what Kaldi's
    fix_data_dir.sh keeps), with a warning when the lines differ.
    """
    def write(items) -> int:
        n = 0
        prev_key, prev_src, prev_line = None, -1, ""
        repeats = 0
        with _atomic_text(out_path) as out:
            for key, line, src in items:
                if key == prev_key:
                    if kind == UTT or line.split()[1:] != prev_line.split()[1:]:
                        repeats += 1
                        if repeats <= 5:
                            where = f"twice in {labels[src]}" if src == prev_src else \
                                f"in both {labels[prev_src]} and {labels[src]}"
                            log.warning("%s: %s '%s' is %s; keeping '%s'", out_path.name, kind, key, where, prev_line)
                    continue
                out.write(line)
                out.write("\n")
                n += 1
                prev_key, prev_src, prev_line = key, src, line
        if repeats > 5:
            log.warning("%s: %d repeated keys in all", out_path.name, repeats)
        return n

    def by_line(make):
        return ((key, line, src) for key, src, line in make())

    try:
        return write(heapq.merge(*(_ascending(by_line(make)) for make in sources)))
    except _Unsorted:
        log.warning("%s: a source is not sorted; sorting in memory (run fix_data_dir.sh on the sources)", out_path.name)
        return write(sorted(itertools.chain.from_iterable(by_line(make) for make in sources)))


# Files Kaldi's combine_data.sh combines (when every source has them), besides utt2uniq and segments.
_COMBINE_FILES = ("utt2spk", "utt2lang", "utt2dur", "utt2num_frames", "reco2dur", "feats.scp", "text", "cmvn.scp",
                  "vad.scp", "reco2file_and_channel", "wav.scp", "spk2gender")


def combine(dest: str | os.PathLike, srcs: list[str | os.PathLike], *, extra_files: Iterable[str] = (),
            skip_fix: bool = False) -> int:
    """Kaldi's combine_data.sh: the union of several data dirs, then fix_data_dir on it.

    A file is combined when every source has it (otherwise it is left out, with a
    warning); Kaldi's own list (utt2spk, feats.scp, wav.scp, ...), ``extra_files``,
    and every other ``utt2*``/``spk2*``/``reco2*`` file. utt2uniq is made wherever
    one source has it (identity for the others); when some source has segments, a
    source without gets one segment per utterance from its utt2dur (``<utt> <utt> 0
    <duration>``; durations read from the audio where it has no utt2dur). A
    frame_shift file is copied (and must agree). Unless ``skip_fix``, the result goes
    through :func:`fix` as in Kaldi.
    """
    dirs = [DataDir(p) for p in srcs]
    if not dirs:
        raise DataDirError("combine needs at least one source data dir")
    dest = Path(dest)
    for d in dirs:
        _check_dest(d, dest)
        if not d.has("utt2spk"):
            raise DataDirError(f"{d.file('utt2spk')}: no such file")
    frame_shift = None
    for d in dirs:
        if d.has("feats.scp") and d.has("frame_shift"):
            if frame_shift is not None and frame_shift.read_bytes() != d.file("frame_shift").read_bytes():
                raise DataDirError(f"different frame_shift in {frame_shift.parent} and {d.path}: cannot combine features")
            frame_shift = d.file("frame_shift")
    labels = [str(d.path) for d in dirs]
    any_seg = any(d.has_segments for d in dirs)
    names: set[str] = set(_COMBINE_FILES) | set(extra_files)
    for d in dirs:
        names.update(n for n in d.table_names() if n != "spk2utt")
    names -= {"utt2uniq", "segments"}
    _clear_tables(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(d.has("utt2uniq") for d in dirs):
        sources = [functools.partial(_iter_keyed, d.file("utt2uniq"), i) if d.has("utt2uniq")
                   else functools.partial(_identity_pairs, d.file("utt2spk"), i) for i, d in enumerate(dirs)]
        _combine_file(dest / "utt2uniq", sources, labels, UTT)
    if any_seg:
        sources = [functools.partial(_iter_keyed, d.file("segments"), i) if d.has_segments
                   else functools.partial(_whole_segments, d, i) for i, d in enumerate(dirs)]
        _combine_file(dest / "segments", sources, labels, UTT)
    # utt2spk first, then the rest in name order.
    for name in ["utt2spk"] + sorted(names - {"utt2spk"}):
        missing = [d for d in dirs if not d.has(name)]
        if missing:
            if len(missing) < len(dirs):
                log.warning("not combining %s: missing from %s", name, ", ".join(str(d.path) for d in missing))
            continue
        sources = [functools.partial(_iter_keyed, d.file(name), i) for i, d in enumerate(dirs)]
        kind = REC if (name == "wav.scp" and any_seg) else key_kind(name, any_seg) or UTT
        _combine_file(dest / name, sources, labels, kind)
    groups: dict[str, list[str]] = {}
    n = 0
    for utt, _, line in _iter_keyed(dest / "utt2spk", 0):
        groups.setdefault(line[len(utt):].strip(), []).append(utt)
        n += 1
    write_lines(dest / "spk2utt", [spk + " " + " ".join(us) for spk, us in groups.items()])
    if frame_shift is not None:
        shutil.copyfile(frame_shift, dest / "frame_shift")
    log.info("combined %d utterances from %d data dirs into %s", n, len(dirs), dest)
    if not skip_fix:
        fix(dest)
    return n


def _identity_pairs(utt2spk: Path, src: int) -> Iterator[tuple[str, int, str]]:
    """utt2uniq lines mapping each utterance to itself."""
    for key, _, _ in _iter_keyed(utt2spk, src):
        yield key, src, f"{key} {key}"


def _whole_segments(d: DataDir, src: int) -> Iterator[tuple[str, int, str]]:
    """One segment per utterance of a data dir without segments: ``<utt> <utt> 0 <utt2dur value>``,
    as Kaldi's get_segments_for_data.sh (durations read from the audio when there is no utt2dur)."""
    if d.has("utt2dur") and d.file("utt2dur").stat().st_size:
        for key, _, line in _iter_keyed(d.file("utt2dur"), src):
            yield key, src, f"{key} {key} 0 {_field(line, 1) or ''}"
        return
    from sid.bin.get_utt2dur import durations, format_seconds

    log.info("%s has no utt2dur: reading the durations of its recordings for segments", d.path)
    wav = d.table("wav.scp")
    dur = durations(list(zip(wav.keys, wav.values())), 1, False)
    for key in sorted(dur):
        yield key, src, f"{key} {key} 0 {format_seconds(dur[key])}"
