"""Kaldi tables for the feature tools: matrix/vector writers and readers, wav input.

``MatrixWriter`` takes a Kaldi wspecifier (``ark:f``, ``ark,t:f``, ``ark,scp:f.ark,f.scp``,
``ark:-``, ``ark:| cmd``) and writes through kaldiio. Files are written under a
temporary name and renamed when the writer is closed after success (the ark first,
then the scp), so an scp that exists always points at a complete ark; if the
program dies, the old outputs (or none) remain.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from typing import Iterator

import kaldiio
import numpy as np
from kaldiio.utils import open_like_kaldi, parse_specifier

from sid.data.audio import read_audio
from sid.errors import AudioError, SidError

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)

# Kaldi's CompressionMethod kAutomaticMethod, copy-feats' default.
AUTOMATIC_COMPRESSION = 1


def _is_file(name: str) -> bool:
    name = name.strip()
    return name != "-" and not name.startswith("|") and not name.endswith("|")


def _atomic(name: str) -> bool:
    """Written under a temporary name and renamed: a regular file, not /dev/null or a FIFO."""
    return _is_file(name) and (not os.path.exists(name) or os.path.isfile(name))


def _temp_beside(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the output should not be
    return tmp


def _parse(wspecifier: str) -> dict:
    try:
        spec = parse_specifier(wspecifier)
    except Exception as err:  # kaldiio raises ValueError/KeyError with terse text
        raise SidError(f"invalid wspecifier '{wspecifier}': {err}") from None
    if spec["ark"] is None:
        raise SidError(f"invalid wspecifier '{wspecifier}': expected ark:..., ark,t:... or ark,scp:...")
    return spec


class MatrixWriter:
    """Write ``key -> float32 matrix or vector`` records to a wspecifier.

    Use as a context manager; on an exception the temporary files are removed.
    ``compression_method`` (Kaldi's numbering, 1 = automatic) compresses matrices.
    """

    def __init__(self, wspecifier: str, compression_method: int | None = None):
        spec = _parse(wspecifier)
        self.text = spec["t"]
        self.compression_method = compression_method
        self.ark_name = spec["ark"]
        self.scp_name = spec["scp"]
        if self.scp_name is not None and not (_is_file(self.ark_name) and _is_file(self.scp_name)):
            raise SidError(f"wspecifier '{wspecifier}': ark,scp: needs two file names")
        self._renames: list[tuple[str, str]] = []
        if _atomic(self.ark_name):
            tmp = _temp_beside(self.ark_name)
            self._renames.append((tmp, self.ark_name))
            self.ark = open(tmp, "wb")
        else:
            self.ark = open_like_kaldi(self.ark_name, "wb")
        self.scp = None
        if self.scp_name is not None and not _atomic(self.scp_name):
            self.scp = open(self.scp_name, "w", encoding="utf-8")
        elif self.scp_name is not None:
            tmp = _temp_beside(self.scp_name)
            self._renames.append((tmp, self.scp_name))
            self.scp = open(tmp, "w", encoding="utf-8")
        self.count = 0

    def write(self, key: str, array: np.ndarray) -> None:
        if not key or any(c.isspace() for c in key):
            raise SidError(f"invalid key '{key}': keys must be non-empty and contain no whitespace")
        position = self.ark.tell() if self.scp is not None else 0
        method = self.compression_method if array.ndim == 2 and not self.text else None
        kaldiio.save_ark(self.ark, {key: np.asarray(array, dtype=np.float32)}, text=self.text,
                         compression_method=method)
        if self.scp is not None:
            # Offset of the data, just past "key ".
            self.scp.write(f"{key} {self.ark_name}:{position + len(key.encode()) + 1}\n")
        self.count += 1

    def close(self, success: bool = True) -> None:
        for f in (self.ark, self.scp):
            if f is not None and not f.closed:
                f.close()
        for tmp, final in self._renames:
            if success:
                os.replace(tmp, final)
            elif os.path.exists(tmp):
                os.unlink(tmp)
        self._renames = []

    def __enter__(self) -> "MatrixWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(success=exc_type is None)


class ScalarWriter:
    """``key value`` lines (utt2dur, utt2num_frames) to an ``ark,t:`` wspecifier, atomically."""

    def __init__(self, wspecifier: str):
        spec = _parse(wspecifier)
        if not spec["t"] or spec["scp"] is not None:
            raise SidError(f"wspecifier '{wspecifier}': scalar tables are written as text, e.g. ark,t:utt2dur")
        self.name = spec["ark"]
        self.tmp = _temp_beside(self.name) if _atomic(self.name) else None
        self.f = open(self.tmp, "w", encoding="utf-8") if self.tmp else open_like_kaldi(self.name, "w")

    def write(self, key: str, value) -> None:
        self.f.write(f"{key} {value}\n")

    def __enter__(self) -> "ScalarWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.f.close()
        if self.tmp:
            if exc_type is None:
                os.replace(self.tmp, self.name)
            elif os.path.exists(self.tmp):
                os.unlink(self.tmp)


def read_matrices(rspecifier: str) -> Iterator[tuple[str, np.ndarray]]:
    """Sequential ``(key, float32 array)`` from a Kaldi rspecifier (scp:, ark:, ark,t:, pipes, -)."""
    try:
        with warnings.catch_warnings():
            # kaldiio warns that ",t" is not needed (it detects text itself); Kaldi accepts it.
            warnings.simplefilter("ignore", UserWarning)
            reader = kaldiio.ReadHelper(rspecifier)
    except FileNotFoundError as err:
        raise SidError(f"cannot open rspecifier '{rspecifier}': {err.strerror}: {err.filename}") from None
    except Exception as err:
        raise SidError(f"invalid rspecifier '{rspecifier}': {err}") from None
    with reader:
        try:
            for key, value in reader:
                yield key, np.asarray(value, dtype=np.float32)
        except (OSError, ValueError, EOFError) as err:
            raise SidError(f"error reading '{rspecifier}': {err}") from None


def random_access(rspecifier: str) -> dict:
    """``key -> array`` lookup: an scp is indexed lazily, an ark is read whole."""
    spec = parse_specifier(rspecifier)
    if spec["scp"] is not None and spec["ark"] is None and _is_file(spec["scp"]):
        try:
            return kaldiio.load_scp(spec["scp"])
        except FileNotFoundError as err:
            raise SidError(f"cannot open '{spec['scp']}': {err.strerror}") from None
    return dict(read_matrices(rspecifier))


def read_wavs(rspecifier: str, segments: str = "") -> Iterator[tuple[str, str, callable]]:
    """``(utt, where, read(sample_rate, resample) -> (samples, sr))`` per utterance.

    ``scp:wav.scp`` entries are decoded with ``sid.data.audio.read_audio`` (any format
    it knows, pipes, ``segments``); an ``ark:`` of wav data is read through kaldiio.
    Decoding happens in ``read`` so one bad utterance raises ``AudioError`` for itself.
    """
    spec = parse_specifier(rspecifier)
    if spec["scp"] is not None and spec["ark"] is None:
        from sid.data.table import read_table

        try:
            table = read_table(spec["scp"])
        except FileNotFoundError:
            raise SidError(f"cannot open '{spec['scp']}': no such file") from None
        wav = dict(table)
        if segments:
            from sid.data.table import iter_lines

            for lineno, utt, rest in iter_lines(segments):
                fields = rest.split()
                try:
                    rec, start, end = fields[0], float(fields[1]), float(fields[2])
                except (IndexError, ValueError):
                    raise SidError(f"{segments}:{lineno}: expected '<utt> <recording> <start> <end>'") from None
                if rec not in wav:
                    log.warning(f"{segments}:{lineno}: recording '{rec}' of '{utt}' is not in {spec['scp']}")
                    yield utt, f"{segments}:{lineno}", _missing(utt, rec)
                    continue
                yield utt, wav[rec], _reader(wav[rec], utt, start, end)
        else:
            for utt, value in table:
                yield utt, value, _reader(value, utt, 0.0, None)
        return
    if segments:
        raise SidError("--segments needs the recordings as scp:wav.scp")
    for utt, (rate, data) in kaldiio.ReadHelper(rspecifier):
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[:, 0]
        yield utt, rspecifier, lambda *_a, _d=data, _r=rate: (_d.astype(np.float32), _r)


def _reader(spec: str, utt: str, start: float, end: float | None):
    def read(sample_rate: int | None, resample: bool):
        return read_audio(spec, utt=utt, sample_rate=sample_rate, resample=resample, start=start, end=end)
    return read


def _missing(utt: str, rec: str):
    def read(*_):
        raise AudioError(f"utterance '{utt}': recording '{rec}' is not in wav.scp")
    return read
