"""Kaldi table I/O: archives and scp files of vectors and matrices, single objects, int32
and scalar tables, rx/wx filenames. Every tool, the back-ends, training and extraction
read and write Kaldi files through this module.

Reading takes Kaldi rspecifiers (``ark:f``, ``ark,t:f``, ``scp:f``, ``ark:-``,
``ark:cmd |``) and rxfilenames (``f``, ``-``, ``cmd |``); writing takes wspecifiers
(``ark:f``, ``ark,t:f``, ``ark,scp:f.ark,f.scp``, ``ark:-``, ``ark:| cmd``) and
wxfilenames. Binary objects are Kaldi's ``\\0B`` + ``FV``/``DV``/``FM``/``DM`` layout
(compressed ``CM``/``CM2``/``CM3`` matrices are decoded and encoded by kaldiio); text
objects print numbers like Kaldi's streams (7 significant digits), so our files and
Kaldi's are interchangeable.

Integrity: every object is checked against the bytes that are really there, so a
truncated archive is an error naming the archive, the byte offset and the key, never
a table that quietly ends early; a pipe that fails is an error, not an empty table.
Files are written under a unique temporary name beside the target and renamed when
complete (the archive before its scp, so an scp always points into a whole archive);
a failing or interrupted writer removes its temporary files. A full disk is reported
with the file system, its free space and the size being written.

Two readers exist for speed. Vector tables (the back-ends: 145k Vox1-E vectors) are
parsed a block at a time (positioned reads for scp files) with no per-item Python object where the
archive is the usual one-dimension binary one. Matrices (features) stream one item
at a time, reading exactly the bytes each header announces.

numpy is the only heavy import; kaldiio is imported where compressed matrices, wav
archives or scp ranges need it, so a tool starts fast.
"""

from __future__ import annotations

import contextlib
import errno
import io
import mmap
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from sid.data.table import PendingFile, disk_full
from sid.errors import SidError

_BIN_TYPES = {b"FV": (np.float32, 1), b"DV": (np.float64, 1), b"FM": (np.float32, 2), b"DM": (np.float64, 2)}

# Kaldi's CompressionMethod kAutomaticMethod, copy-feats' default.
AUTOMATIC_COMPRESSION = 1


# ---------------------------------------------------------------- rx/wx filenames

def _is_file(name: str) -> bool:
    name = name.strip()
    return name not in ("-", "") and not name.startswith("|") and not name.endswith("|")


def read_bytes(rxfilename: str) -> bytes:
    """Everything an rxfilename yields: a file, ``-`` (stdin) or ``cmd |`` (a shell pipe)."""
    name = rxfilename.strip()
    if name == "-" or name == "":
        return sys.stdin.buffer.read()
    if name.endswith("|"):
        proc = subprocess.run(name[:-1], shell=True, stdout=subprocess.PIPE)
        if proc.returncode != 0:
            raise SidError(f"command '{name[:-1].strip()}' failed with status {proc.returncode}")
        return proc.stdout
    try:
        return Path(name).read_bytes()
    except OSError as err:
        raise SidError(f"cannot read {name}: {err.strerror}") from None


@contextlib.contextmanager
def open_input(rxfilename: str):
    """A binary stream for an rxfilename; a pipe's command must exit 0 once the stream is read."""
    name = rxfilename.strip()
    if name in ("-", ""):
        yield sys.stdin.buffer
    elif name.endswith("|"):
        proc = subprocess.Popen(name[:-1], shell=True, stdout=subprocess.PIPE)
        try:
            yield proc.stdout
        finally:
            proc.stdout.close()
            status = proc.wait()
        if status != 0:
            raise SidError(f"command '{name[:-1].strip()}' failed with status {status}")
    else:
        try:
            f = open(name, "rb")
        except OSError as err:
            raise SidError(f"cannot open {name}: {err.strerror}") from None
        with f:
            yield f


class _Sink:
    """A binary output stream that counts its bytes and reports a full disk clearly."""

    def __init__(self, f, name: str, pending: PendingFile | None):
        self.f, self.name, self.pending, self.written = f, name, pending, 0
        self.estimate = None  # bytes -> estimated total bytes, set by a writer that knows its item count

    def write(self, data) -> None:
        try:
            self.f.write(data)
        except OSError as err:
            self._fail(err, len(data))
        self.written += len(data)

    def flush(self) -> None:
        try:
            self.f.flush()
        except OSError as err:
            self._fail(err, 0)

    def _fail(self, err: OSError, pending_bytes: int):
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            needed = self.estimate(self.written) if self.estimate else None
            raise disk_full(self.name, self.written + pending_bytes, needed, estimated=True) from None
        raise SidError(f"cannot write {self.name}: {err.strerror}") from None


@contextlib.contextmanager
def open_output(wxfilename: str):
    """A binary stream for a wxfilename: ``-`` is stdout, ``| cmd`` a pipe, else a file that
    appears (renamed into place) only if the block succeeds."""
    with _output(wxfilename) as out:
        yield out
        out.commit()


class _Output:
    """One output of a writer: ``commit()`` makes it visible (rename; close a pipe and check
    its status), ``discard()`` removes what was written."""

    def __init__(self, wxfilename: str):
        name = self.name = wxfilename.strip()
        self.proc = self.pending = None
        if name == "-":
            self.sink = _Sink(sys.stdout.buffer, "standard output", None)
        elif name.startswith("|"):
            self.proc = subprocess.Popen(name[1:], shell=True, stdin=subprocess.PIPE)
            self.sink = _Sink(self.proc.stdin, f"pipe '{name[1:].strip()}'", None)
        else:
            self.pending = PendingFile(name)
            try:
                self.sink = _Sink(open(self.pending.tmp, "wb"), name, self.pending)
            except OSError as err:
                self.pending.discard()
                raise SidError(f"cannot write {name}: {err.strerror}") from None

    def write(self, data) -> None:
        self.sink.write(data)

    def commit(self) -> None:
        if self.proc is not None:
            self._close_pipe()
            return
        if self.pending is None:
            self.sink.flush()
            return
        try:
            self.sink.flush()
            self.sink.f.close()
        except OSError as err:
            self.discard()
            self.sink._fail(err, 0)
        except SidError:
            self.discard()
            raise
        self.pending.commit()

    def discard(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self._close_pipe()
            return
        if self.pending is not None:
            with contextlib.suppress(OSError):
                self.sink.f.close()
            self.pending.discard()

    def _close_pipe(self) -> None:
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        if self.proc.wait() != 0:
            raise SidError(f"command '{self.name[1:].strip()}' failed with status {self.proc.returncode}")


@contextlib.contextmanager
def _output(wxfilename: str):
    out = _Output(wxfilename)
    try:
        yield out
    except BaseException:
        out.discard()
        raise


# ---------------------------------------------------------------- object encoding

def fmt(x: float) -> str:
    """A number as Kaldi's text streams print it (precision 7, %g)."""
    return f"{x:.7g}"


def binary_parts(array: np.ndarray) -> tuple[bytes, memoryview]:
    """A binary Kaldi vector or matrix as its header (``\\0B`` on) and its values' bytes, uncopied
    where the array is already contiguous little-endian float."""
    double = array.dtype == np.float64
    if array.ndim == 1:
        head = (b"DV " if double else b"FV ") + struct.pack("<bi", 4, array.shape[0])
    else:
        head = (b"DM " if double else b"FM ") + struct.pack("<bibi", 4, array.shape[0], 4, array.shape[1])
    return b"\0B" + head, memoryview(np.ascontiguousarray(array, dtype="<f8" if double else "<f4")).cast("B")


def encode(array: np.ndarray, binary: bool) -> bytes:
    """One Kaldi vector or matrix object (with the ``\\0B`` header when binary)."""
    array = np.asarray(array)
    if binary:
        return b"".join(binary_parts(array))
    if array.ndim == 1:
        return (" [ " + "".join(fmt(x) + " " for x in array.tolist()) + "]\n").encode()
    if array.shape[1] == 0:
        return b" [ ]\n"
    rows = "".join("\n  " + "".join(fmt(x) + " " for x in row) for row in array.tolist())
    return (" [" + rows + "]\n").encode()


def encode_compressed(matrix: np.ndarray, method: int) -> bytes:
    """A matrix in Kaldi's compressed format (``CM``/``CM2``/``CM3``, chosen by ``method``), through kaldiio."""
    from kaldiio.matio import write_array

    buf = io.BytesIO()
    write_array(buf, np.asarray(matrix, dtype=np.float32), compression_method=method)
    return buf.getvalue()


def object_size(head: bytes) -> int | None:
    """Bytes of the binary object whose header (from ``\\0B``) starts ``head``: -1 if it is not
    a vector or matrix, None if ``head`` is too short to tell."""
    if len(head) < 5:
        return None
    token = head[2:head.find(b" ", 2)] if b" " in head[2:6] else b""
    if token in (b"FV", b"DV"):
        if len(head) < 10:
            return None
        return 10 + struct.unpack_from("<i", head, 6)[0] * (4 if token == b"FV" else 8)
    if token in (b"FM", b"DM"):
        if len(head) < 15:
            return None
        rows, cols = struct.unpack_from("<i", head, 6)[0], struct.unpack_from("<i", head, 11)[0]
        return 15 + rows * cols * (4 if token == b"FM" else 8)
    if token in (b"CM", b"CM2", b"CM3"):
        start = 3 + len(token)  # GlobalHeader: float min, float range, int32 rows, int32 cols
        if len(head) < start + 16:
            return None
        rows, cols = struct.unpack_from("<ii", head, start + 8)
        body = {b"CM": 8 * cols + rows * cols, b"CM2": 2 * rows * cols, b"CM3": rows * cols}[token]
        return start + 16 + body
    return -1


# Longest header object_size needs (CM2/CM3: 22 bytes).
_HEADER_BYTES = 24


def decode_binary(data: bytes, pos: int, where: str) -> tuple[np.ndarray, int]:
    """Parse a binary object whose type token starts at ``pos`` (after ``\\0B``)."""
    kind = data[pos:pos + 2]
    if kind not in _BIN_TYPES or data[pos + 2:pos + 3] != b" ":
        size = object_size(bytes(data[pos - 2:pos - 2 + _HEADER_BYTES]))
        if size is None or (size > 0 and pos - 2 + size > len(data)):
            raise SidError(f"{where}: truncated Kaldi object")
        from kaldiio.matio import read_matrix_or_vector
        fd = io.BytesIO(data[pos - 2:pos - 2 + size] if size > 0 else data[pos - 2:])
        try:
            array = read_matrix_or_vector(fd)
        except Exception as err:  # kaldiio raises assorted errors on bad input
            raise SidError(f"{where}: cannot decode Kaldi object ({err or type(err).__name__})") from None
        return array, pos - 2 + fd.tell()
    dtype, ndim = _BIN_TYPES[kind]
    pos += 3
    try:
        if ndim == 1:
            _, n = struct.unpack_from("<bi", data, pos)
            shape, pos = (n,), pos + 5
        else:
            _, rows, _, cols = struct.unpack_from("<bibi", data, pos)
            shape, pos = (rows, cols), pos + 10
    except struct.error:
        raise SidError(f"{where}: truncated Kaldi object") from None
    count = int(np.prod(shape))
    end = pos + count * np.dtype(dtype).itemsize
    if end > len(data):
        raise SidError(f"{where}: truncated Kaldi object (expected {count} values)")
    return np.frombuffer(data, dtype=dtype, count=count, offset=pos).reshape(shape), end


def decode_text(data: bytes, pos: int, where: str) -> tuple[np.ndarray, int]:
    """Parse a text ``[ ... ]`` vector or matrix starting at or after ``pos``."""
    start = data.find(b"[", pos)
    end = data.find(b"]", pos)
    if start < 0 or end < start or data[pos:start].strip():
        raise SidError(f"{where}: expected a Kaldi text object '[ ... ]'")
    body = data[start + 1:end]
    try:
        if b"\n" in body.strip(b" "):
            rows = [np.array(line.split(), dtype=np.float64) for line in body.split(b"\n") if line.strip()]
            if len({len(r) for r in rows}) > 1:
                raise SidError(f"{where}: matrix rows have different lengths")
            array = np.stack(rows) if rows else np.zeros((0, 0))
        else:
            array = np.array(body.split(), dtype=np.float64)
    except ValueError as err:
        raise SidError(f"{where}: bad number in text object ({err})") from None
    end += 1
    if data[end:end + 1] == b"\n":
        end += 1
    return array, end


def decode(data: bytes, pos: int, where: str) -> tuple[np.ndarray, int]:
    """One vector or matrix at ``pos`` (binary or text); returns it and the position after it."""
    if data[pos:pos + 2] == b"\0B":
        return decode_binary(data, pos + 2, where)
    return decode_text(data, pos, where)


def read_object(rxfilename: str) -> np.ndarray:
    """A single vector or matrix file (``mean.vec``, ``lda.mat``), binary or text."""
    data = read_bytes(rxfilename)
    if not data.strip():
        raise SidError(f"{rxfilename}: empty file")
    return decode(data, 0, rxfilename)[0]


def read_vector(rxfilename: str) -> np.ndarray:
    array = read_object(rxfilename)
    if array.ndim != 1:
        raise SidError(f"{rxfilename}: expected a vector, found a {array.shape[0]}x{array.shape[1]} matrix")
    return array


def read_matrix(rxfilename: str) -> np.ndarray:
    array = read_object(rxfilename)
    if array.ndim != 2:
        raise SidError(f"{rxfilename}: expected a matrix, found a vector of dimension {array.shape[0]}")
    return array


def write_object(wxfilename: str, array: np.ndarray, binary: bool) -> None:
    with open_output(wxfilename) as f:
        f.write(encode(array, binary))


# ---------------------------------------------------------------- specifiers

def split_specifier(spec: str) -> tuple[set[str], str]:
    """``'ark,t,scp:a.ark,a.scp'`` -> ``({'ark','t','scp'}, 'a.ark,a.scp')``."""
    prefix, colon, rest = spec.partition(":")
    opts = {o.strip() for o in prefix.split(",")}
    if not colon or not opts & {"ark", "scp"}:
        raise SidError(f"bad table specifier '{spec}' (expected ark:..., ark,t:..., scp:... )")
    return opts, rest


def scp_of(wspecifier: str) -> str:
    """The scp file of an ``ark,scp:ARK,SCP`` wspecifier, else ''."""
    opts, _, paths = wspecifier.partition(":")
    if {o.strip() for o in opts.split(",")} >= {"ark", "scp"} and paths.count(",") == 1:
        return paths.split(",")[1]
    return ""


def files_of(rspecifier: str) -> list[str]:
    """The file a table is read from (none for a pipe or stdin), for up-to-date checks."""
    _, _, path = rspecifier.partition(":")
    return [path] if _is_file(path) else []


# ---------------------------------------------------------------- random access by scp entry

class RandomAccessReader:
    """Objects by Kaldi scp value (``ark-file:offset``), with up to ``cache_fd`` archives kept
    open between reads. Safe across ``fork``: a child reopens its own files. Reads exactly the
    bytes the object's header announces and fails (naming archive, offset and key) if the
    archive ends before; pipes and ``[range]`` entries go through kaldiio."""

    def __init__(self, cache_fd: int = 64):
        self.cache_fd = cache_fd
        self._pid = None
        self._fds: dict = {}

    def close(self) -> None:
        for f in self._fds.values():
            f.close()
        self._fds.clear()

    def __getstate__(self):
        return {"cache_fd": self.cache_fd, "_pid": None, "_fds": {}}

    def _file(self, path: str):
        if self._pid != os.getpid():
            self._fds, self._pid = {}, os.getpid()  # a forked child must not share file offsets
        f = self._fds.get(path)
        if f is None:
            if len(self._fds) >= self.cache_fd:
                self.close()
            f = self._fds[path] = open(path, "rb")
        return f

    @staticmethod
    def _split(value: str) -> tuple[str, int] | None:
        path, sep, offset = value.rpartition(":")
        if not sep or not offset.isdigit() or value.endswith("|") or "[" in value:
            return None
        return path, int(offset)

    def read(self, value: str, key: str = "") -> np.ndarray:
        """The object of one scp value; a SidError names the entry on failure."""
        what = f"'{key}' ({value})" if key else value
        loc = self._split(value)
        if loc is None:
            return self._load(value, what)
        path, offset = loc
        try:
            f = self._file(path)
            f.seek(offset)
            head = f.read(_HEADER_BYTES)
        except OSError as err:
            raise SidError(f"cannot read {what}: {err.strerror}") from None
        if head[:2] != b"\0B":
            return self._load(value, what)
        size = object_size(head)
        if size is None:
            raise SidError(f"{path}: truncated archive: entry {what} at byte {offset} ends inside its header")
        if size < 0:
            return self._load(value, what)
        hlen = {b"FV": 10, b"DV": 10, b"FM": 15, b"DM": 15}.get(head[2:4]) if head[4:5] == b" " else None
        if hlen is not None:
            f.seek(offset + hlen)
            body = f.read(size - hlen)
            got = hlen + len(body)
        else:
            got = min(size, os.fstat(f.fileno()).st_size - offset)
        if got < size:
            raise SidError(f"{path}: truncated archive: entry {what} at byte {offset} needs {size} bytes, "
                           f"the file has {got}")
        if hlen is not None:
            return _decode_plain(head[:hlen], body)
        from kaldiio.matio import read_matrix_or_vector  # compressed: kaldiio decodes straight from the file

        f.seek(offset)
        try:
            return read_matrix_or_vector(f)
        except Exception as err:  # kaldiio raises assorted errors on bad input
            raise SidError(f"cannot decode {what}: {err or type(err).__name__}") from None

    def num_rows(self, value: str) -> int:
        """Rows of a matrix (length of a vector) from its header only; raises ValueError if the
        entry is not a whole object, OSError if its archive cannot be read."""
        loc = self._split(value)
        if loc is None:
            return len(self._load(value, value, ValueError))
        path, offset = loc
        f = self._file(path)
        f.seek(offset)
        head = f.read(_HEADER_BYTES)
        if head[:2] != b"\0B":
            return len(self._load(value, value, ValueError))
        size = object_size(head)
        if size is None:
            raise ValueError(f"truncated archive: the file ends at byte {offset + len(head)}")
        if size < 0:
            return len(self._load(value, value, ValueError))
        end = os.fstat(f.fileno()).st_size
        if offset + size > end:
            raise ValueError(f"truncated archive: the entry needs bytes up to {offset + size}, the file ends at {end}")
        token = head[2:head.find(b" ", 2)]
        if token in (b"CM", b"CM2", b"CM3"):
            return struct.unpack_from("<i", head, 3 + len(token) + 8)[0]
        return struct.unpack_from("<i", head, 6)[0]

    @staticmethod
    def _load(value: str, what: str, error=SidError):
        import kaldiio

        try:
            return kaldiio.load_mat(value)
        except Exception as err:  # kaldiio raises assorted types for a bad entry
            raise error(f"cannot read {what}: {err or type(err).__name__}") from None


class ScpTable:
    """``key -> array`` view of scp entries (``key -> 'ark:offset'``), each read on access.
    Picklable: a DataLoader worker gets its own open files."""

    def __init__(self, entries: dict[str, str]):
        self.entries = entries
        self.reader = RandomAccessReader()

    @classmethod
    def open(cls, path: str) -> "ScpTable":
        from sid.data.table import read_dict

        try:
            return cls(read_dict(path))
        except FileNotFoundError:
            raise SidError(f"cannot open {path}: no such file") from None

    def __contains__(self, key) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> np.ndarray:
        return self.reader.read(self.entries[key], key)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)


def random_access(rspecifier: str):
    """``key -> array`` lookup: an scp is read lazily, an archive whole."""
    opts, path = split_specifier(rspecifier)
    if "scp" in opts and _is_file(path):
        return ScpTable.open(path)
    return dict(read_matrices(rspecifier))


# ---------------------------------------------------------------- sequential reading

def _read_key(f) -> tuple[bytes, int]:
    """The next key of an archive stream (leading whitespace skipped) and how many bytes were read;
    b'' at the end. The key's terminating space is consumed; a key the stream ends inside is returned
    with no space after it (the caller reports it)."""
    read = f.read
    c = read(1)
    n = 1
    while c and c in b" \t\n\r":
        c = read(1)
        n += 1
    if not c:
        return b"", n - 1
    key = [c]
    while True:
        c = read(1)
        if not c or c == b" ":
            return b"".join(key) + (c or b"\n"), n + len(key)
        key.append(c)


def _iter_stream(f, name: str) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, array)`` for each object of an archive stream, reading exactly the bytes each header
    announces (one read per object), so a stream that ends early is named, never cut silently."""
    at = 0
    while True:
        raw, n = _read_key(f)
        if not raw:
            return
        key = raw[:-1].decode(errors="replace")
        if raw[-1:] != b" ":
            raise SidError(f"{name}: truncated archive at byte {at + n - len(raw) + 1}: key '{key[:40]}' with no object")
        if "\n" in key:
            raise SidError(f"{name}: not a Kaldi archive at byte {at} (a key '{key[:40]}' spanning lines)")
        at += n
        head = f.read(5)
        if head[:2] == b"\0B":
            token_end = 5 if head[4:5] == b" " else 6
            head += f.read(token_end - 5)
            token = head[2:token_end - 1]
            if token in (b"FV", b"DV"):
                head += f.read(5)
            elif token in (b"FM", b"DM"):
                head += f.read(10)
            elif token in (b"CM", b"CM2", b"CM3"):
                head += f.read(16)
            size = object_size(head)
            if size is None:
                raise SidError(f"{name}: truncated archive at byte {at}: utterance '{key}' ends inside its header")
            if size < 0:
                raise SidError(f"{name}: utterance '{key}' at byte {at} is not a vector or matrix "
                               f"('{token.decode(errors='replace')}')")
            body = f.read(size - len(head))
            if len(body) < size - len(head):
                raise SidError(f"{name}: truncated archive at byte {at}: utterance '{key}' needs {size} bytes, "
                               f"only {len(head) + len(body)} remain")
            array = decode(head + body, 0, f"{name}: utterance '{key}'")[0] if token[:2] == b"CM" \
                else _decode_plain(head, body)
            at += size
        else:
            text = [head]
            while b"]" not in text[-1]:
                line = f.readline()
                if not line:
                    raise SidError(f"{name}: truncated archive at byte {at}: the text object of utterance '{key}' "
                                   "has no closing ']'")
                text.append(line)
            data = b"".join(text)
            close = data.index(b"]")
            array = decode_text(data[:close + 1], 0, f"{name}: utterance '{key}'")[0]
            rest = data[close + 1:]
            if rest.strip():
                raise SidError(f"{name}: unexpected '{rest.strip()[:20].decode(errors='replace')}' after the text "
                               f"object of utterance '{key}'")
            at += len(data)
        yield key, array


def _decode_plain(head: bytes, body: bytes) -> np.ndarray:
    """An FV/DV/FM/DM object from its header and values, without copying the values."""
    dtype = "<f4" if head[2:3] == b"F" else "<f8"
    if head[3:4] == b"V":
        return np.frombuffer(body, dtype=dtype)
    rows, cols = struct.unpack_from("<i", head, 6)[0], struct.unpack_from("<i", head, 11)[0]
    return np.frombuffer(body, dtype=dtype).reshape(rows, cols)


def _scp_lines(text: str, path: str, first: int = 1) -> Iterator[tuple[int, str, str]]:
    """``(line number, key, value)`` of each non-blank ``key value`` line of an scp's text (whose
    first line is line ``first``); a key without a value is an error naming the line."""
    for lineno, line in enumerate(text.splitlines(), first):
        key, _, value = line.strip().partition(" ")
        if not key:
            continue
        value = value.strip()
        if not value:
            raise SidError(f"{path}:{lineno}: key '{key}' has no value")
        yield lineno, key, value


def read_matrices(rspecifier: str) -> Iterator[tuple[str, np.ndarray]]:
    """Sequential ``(key, float32 array)`` from a Kaldi rspecifier (scp:, ark:, ark,t:, pipes, -)."""
    opts, path = split_specifier(rspecifier)
    if "scp" in opts:
        reader = RandomAccessReader()
        try:
            with open_input(path) as f:
                text = io.TextIOWrapper(f, encoding="utf-8").read()
            for _, key, value in _scp_lines(text, path):
                yield key, np.asarray(reader.read(value, key), dtype=np.float32)
        finally:
            reader.close()
        return
    with open_input(path) as f:
        where = "standard input" if path.strip() in ("-", "") else path.strip()
        for key, array in _iter_stream(f, where):
            yield key, np.asarray(array, dtype=np.float32)


# ---------------------------------------------------------------- vector tables (back-ends)

def _scan_ark(data: bytes, where: str) -> Iterator[tuple[str, int]]:
    """``(key, position of its object)`` for each item of an archive held in memory."""
    pos, n = 0, len(data)
    while True:
        while pos < n and data[pos] in b" \t\n\r":
            pos += 1
        if pos >= n:
            return
        space = data.find(b" ", pos)
        if space < 0:
            raise SidError(f"{where}: truncated archive at byte {pos} after key "
                           f"'{data[pos:pos + 50].decode(errors='replace')}'")
        key = data[pos:space].decode()
        yield key, space + 1
        pos = _skip(data, space + 1, f"{where}: key '{key}' at byte {space + 1}")


def _skip(data: bytes, pos: int, where: str) -> int:
    """Position after the object at ``pos``, reading only its header when it is a binary one."""
    if data[pos:pos + 2] == b"\0B":
        size = object_size(bytes(data[pos:pos + _HEADER_BYTES]))
        if size is None or size > 0 and pos + size > len(data):
            raise SidError(f"{where}: truncated Kaldi object")
        return pos + size if size > 0 else decode(data, pos, where)[1]
    # Text object: it ends at its only ']'.
    end = data.find(b"]", pos)
    if end < 0:
        raise SidError(f"{where}: text object without closing ']'")
    return end + 2 if data[end + 1:end + 2] == b"\n" else end + 1


def _iter_scp(path: str) -> Iterator[tuple[str, bytes, int, str]]:
    """``(key, archive bytes, object position, where)`` for each line of an scp file."""
    cache: dict[str, bytes] = {}
    for lineno, key, target in _scp_lines(read_bytes(path).decode(), path):
        where = f"{path}:{lineno}"
        fname, colon, offset = target.rpartition(":")
        if colon and offset.isdigit():
            if fname not in cache:
                cache[fname] = read_bytes(fname)
            if int(offset) >= len(cache[fname]):
                raise SidError(f"{where}: key '{key}': offset {offset} is past the end of {fname} "
                               f"({len(cache[fname])} bytes; truncated archive?)")
            yield key, cache[fname], int(offset), f"{where} ({target})"
        else:
            yield key, read_bytes(target), 0, f"{where} ({target})"


def _locate(opts: set[str], path: str, rspecifier: str, data: bytes | None) -> Iterator[tuple[str, bytes, int, str]]:
    """``(key, buffer, object position, where)`` for each item of a table (``data``: an archive already read)."""
    if "scp" in opts:
        yield from _iter_scp(path)
    else:
        for key, pos in _scan_ark(data, rspecifier):
            yield key, data, pos, f"{rspecifier}: key '{key}'"


def read_vectors(rspecifier: str) -> tuple[list[str], np.ndarray]:
    """All vectors of a table as ``(keys, float32 matrix)``; duplicate keys and dimension mismatches are errors.

    Plain binary float vectors (the common case) are copied straight from the
    archive bytes into one preallocated matrix, with no per-vector array.
    """
    opts, path = split_specifier(rspecifier)
    if "scp" in opts:
        # Read with positioned reads straight into the result: a memory map of the archives
        # would add every page of them to the process's resident memory, doubling it.
        keys, out = [], None
        for block_keys, block in _scp_vector_blocks(path, 1 << 14, whole=True):
            keys += block_keys
            out = block.base
        check_unique_keys(keys, rspecifier)
        if out is None:
            return keys, np.zeros((0, 0), dtype=np.float32)
        return keys, out[:len(keys)]
    # Archives (files, pipes) are parsed a few MB at a time straight into the result, so the
    # archive's bytes are never held beside it: a pipe stage needs about the table's size, as Kaldi.
    return stack_vector_blocks(iter_vector_blocks(rspecifier), rspecifier)


def stack_vector_blocks(blocks: Iterable[tuple[list[str], np.ndarray]], rspecifier: str) -> tuple[list[str], np.ndarray]:
    """``(keys, float32 matrix)`` of a table's blocks (``iter_vector_blocks``, perhaps each
    transformed on the way), copied into one matrix as they come, so neither the blocks nor a
    list of them is held beside it; duplicate keys and dimension mismatches are errors."""
    keys: list[str] = []
    out = None
    n = 0
    for block_keys, block in blocks:
        if out is None or n + len(block) > len(out) or block.shape[1:] != out.shape[1:]:
            if out is not None and block.shape[1:] != out.shape[1:]:
                raise SidError(f"{rspecifier}: key '{block_keys[0]}' has dimension {block.shape[1]}, "
                               f"expected {out.shape[1]} like '{keys[0]}'")
            # Room for 2^31 bytes of rows at first: pages never written take no memory.
            grown = np.empty((max(2 * n, n + len(block), (1 << 31) // max(4 * block.shape[1], 1)),
                              block.shape[1]), dtype=np.float32)
            if out is not None:
                grown[:n] = out[:n]
            out = grown
        out[n:n + len(block)] = block
        n += len(block)
        keys += block_keys
    check_unique_keys(keys, rspecifier)
    if out is None:
        return keys, np.zeros((0, 0), dtype=np.float32)
    return keys, out[:n]


def vector_passes(rspecifier: str, rows: int = 16384) -> Callable[[], Iterator[tuple[list[str], np.ndarray]]]:
    """A function giving a table's vectors as ``iter_vector_blocks`` does, anew at each call, for a
    tool that passes over a table several times without holding it (train_backend): scp and
    archive files are read again (from the page cache: a memory map, no copy by the kernel), a
    pipe or stdin once into memory. The caller may overwrite each block."""
    opts, path = split_specifier(rspecifier)
    if "scp" in opts:
        parsed: list = []  # the scp's lines, parsed once
        return lambda: _scp_vector_blocks(path, rows, parsed=parsed)
    if _is_file(path):
        return lambda: iter_vector_blocks(rspecifier, rows)
    keys, x = stack_vector_blocks(iter_vector_blocks(rspecifier), rspecifier)
    return memory_passes(keys, x, rows)


def memory_passes(keys: list[str], x: np.ndarray, rows: int = 16384) -> Callable[[], Iterator[tuple[list[str], np.ndarray]]]:
    """``vector_passes`` of a table in memory: copies of its blocks, which the caller may overwrite."""
    return lambda: ((keys[s:s + rows], x[s:s + rows].copy()) for s in range(0, len(keys), rows))


def _read_vectors_general(opts: set[str], path: str, rspecifier: str, data: bytes | None) -> tuple[list[str], np.ndarray]:
    """Any table of vectors (text, double, compressed, mixed) held in memory, one key at a time."""
    items = list(_locate(opts, path, rspecifier, data))
    keys = [k for k, _, _, _ in items]
    check_unique_keys(keys, rspecifier)
    if not items:
        return keys, np.zeros((0, 0), dtype=np.float32)
    first_key, data0, pos0, _ = items[0]
    head = data0[pos0:pos0 + 10]
    if head[:5] == b"\0BFV " and len(head) == 10:
        dim = struct.unpack_from("<i", head, 6)[0]
        out = np.empty((len(items), dim), dtype=np.float32)
        dst = memoryview(out).cast("B")
        nbytes = 4 * dim
        for i, (key, data, pos, where) in enumerate(items):
            if data[pos:pos + 6] == head[:6] and data[pos + 6:pos + 10] == head[6:]:
                if pos + 10 + nbytes > len(data):
                    raise SidError(f"{where}: truncated Kaldi object (expected {dim} values)")
                dst[i * nbytes:(i + 1) * nbytes] = memoryview(data)[pos + 10:pos + 10 + nbytes]
            else:
                out[i] = _vector_row(key, data, pos, where, dim, first_key, rspecifier)
        return keys, out
    rows = [decode(data, pos, where)[0] for _, data, pos, where in items]
    dim = rows[0].shape[0] if rows[0].ndim == 1 else -1
    out = np.empty((len(rows), max(dim, 0)), dtype=np.float32)
    for i, (row, (key, data, pos, where)) in enumerate(zip(rows, items)):
        out[i] = _vector_row(key, data, pos, where, dim, first_key, rspecifier, row)
    return keys, out


def iter_vector_blocks(rspecifier: str, rows: int = 4096) -> Iterator[tuple[list[str], np.ndarray]]:
    """The vectors of a table in order, as ``(keys, float32 [n, dim])`` blocks of at most ``rows``,
    holding one block at a time as Kaldi's sequential readers hold one vector: for the tools that
    stream (ivector-mean's global mean, subtract / transform / normalize). Binary float vector
    archives (what every tool of a pipe writes; files are memory-mapped) and scp files onto them
    are read a block at a time; anything else is read whole and cut into blocks. Keys are not
    checked for duplicates here (nor do Kaldi's sequential readers). A block's buffer may be
    reused for the next: a consumer is done with it (or copies it) before asking for more."""
    opts, path = split_specifier(rspecifier)
    if "scp" in opts:
        yield from _scp_vector_blocks(path, rows)
        return
    with open_input(path) as f:
        buf = bytearray()
        done = 0  # bytes of the stream before buf
        eof = False
        while True:
            if not eof and len(buf) < (1 << 22):
                chunk = f.read(1 << 22)
                eof = not chunk
                buf += chunk
            parsed = _split_float_vectors(buf, rows)
            if parsed is None:  # not (or no longer) plain binary float vectors: the general reader
                rest = bytes(buf) + (b"" if eof else f.read())
                keys, x = _read_vectors_general({"ark"}, path, rspecifier, rest)
                for start in range(0, len(keys), rows):
                    yield keys[start:start + rows], x[start:start + rows]
                return
            keys, block, used = parsed
            if keys:
                yield keys, block
                del buf[:used]
                done += used
                continue
            if eof:
                if buf.strip():
                    key = bytes(buf[:buf.find(b" ")] if b" " in buf else buf[:50]).decode(errors="replace")
                    raise SidError(f"{rspecifier}: key '{key}' at byte {done}: truncated Kaldi object "
                                   f"(the archive ends {len(buf)} bytes later)")
                return
            if len(buf) >= (1 << 22):  # one item larger than the buffer: read more first
                chunk = f.read(len(buf))
                eof = not chunk
                buf += chunk


def _split_float_vectors(buf: bytearray, rows: int) -> tuple[list[str], np.ndarray, int] | None:
    """The whole ``key \\0BFV <dim> values`` items at the start of ``buf`` (at most ``rows``), the block of
    their values and the bytes they take; None when an item there is of another kind."""
    n = len(buf)
    pos = 0
    while pos < n and buf[pos] in b" \t\n\r":
        pos += 1
    space = buf.find(b" ", pos)
    if space < 0 or space + 11 > n:
        return [], np.zeros((0, 0), np.float32), 0
    head = bytes(buf[space + 1:space + 11])
    if head[:6] != b"\0BFV \x04":
        return None
    nbytes = 4 * struct.unpack_from("<i", head, 6)[0]
    find = buf.find
    keys, starts = [], []
    while len(keys) < rows:
        while pos < n and buf[pos] in b" \t\n\r":
            pos += 1
        space = find(b" ", pos)
        if space < 0 or space + 11 + nbytes > n:
            break
        if buf[space + 1:space + 11] != head:
            if not keys:
                return None
            break
        keys.append(bytes(buf[pos:space]))
        starts.append(space + 11)
        pos = space + 11 + nbytes
    out = np.empty((len(keys), nbytes // 4), dtype=np.float32)
    if out.size:
        dst = memoryview(out).cast("B")
        with memoryview(buf) as src:
            for i, start in enumerate(starts):
                dst[i * nbytes:(i + 1) * nbytes] = src[start:start + nbytes]
    try:
        return [k.decode() for k in keys], out, (starts[-1] + nbytes if starts else 0)
    except UnicodeDecodeError:
        return None


def check_unique_keys(keys: list[str], rspecifier: str) -> None:
    """A key given twice in a table is an error naming it."""
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise SidError(f"{rspecifier}: duplicate key '{dup}'")


def _scp_vector_blocks(path: str, rows: int, whole: bool = False,
                       parsed: list | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
    """``(keys, float32 block)`` of at most ``rows`` for an scp of vectors, in scp order.

    The common case, ``key ark:offset`` lines onto binary float vectors of one dimension laid
    out in order, is parsed with numpy and copied from one memory map of the span each block
    covers, headers checked and rows copied with no per-line Python work (Vox1-scale tables
    have 10^5 lines); any other entry (another order, double or text vectors, pipes) is read on
    its own through ``RandomAccessReader``. Dimensions must agree. The scp's lines are parsed a
    block at a time, so a streaming reader's memory does not grow with the table. With
    ``whole``, the blocks are consecutive views of one matrix of the whole table (its
    ``.base``, whose first rows they are), written once; otherwise one block buffer is reused
    for every block. ``parsed``: a list to keep the parsed scp lines in (ending with None once all
    are read), or the list of a whole earlier pass, read again instead of the scp.
    """
    reader = RandomAccessReader()
    table = dim = None

    def entry(lineno: int, key: str, value: str) -> np.ndarray:
        try:
            row = reader.read(value, key)
        except SidError as err:
            raise SidError(f"{path}:{lineno} ({err})") from None
        if row.ndim != 1:
            raise SidError(f"{path}:{lineno}: key '{key}' holds a matrix, expected a vector")
        if dim is not None and row.shape[0] != dim:
            raise SidError(f"{path}:{lineno}: key '{key}' has dimension {row.shape[0]}, expected {dim} like "
                           f"'{first_key}'")
        return row

    try:
        stack = contextlib.ExitStack()
        if parsed and parsed[-1] is None:  # an earlier pass's lines
            chunks = iter(parsed[:-1])
        else:
            if whole:  # the number of entries sizes the table first
                data = read_bytes(path)
                lines = io.BytesIO(data)
            else:  # streamed: memory does not grow with the scp
                lines = stack.enter_context(open_input(path))
            chunks = _scp_chunks(lines, path, rows)
            if parsed is not None:
                parsed.clear()
                chunks = _recorded(chunks, parsed)
        done_rows = 0
        for linenos, keys, values, (fname, offsets) in chunks:
            if dim is None:
                first_key = keys[0]
                dim = entry(linenos[0], keys[0], values[0]).shape[0]
                head = np.frombuffer(b"\0BFV \x04" + struct.pack("<i", dim), dtype=np.uint8)
                if whole:  # room for one row a line; pages of rows never written take no memory
                    table = np.empty((data.count(b"\n") + 1, dim), dtype=np.float32)
                else:
                    table = np.empty((rows, dim), dtype=np.float32)
            if whole:
                out = table[done_rows:done_rows + len(keys)]
            else:
                out = table[:len(keys)]
            done = _fill_from_span(reader, fname, offsets, out, dim, head)
            for i in np.flatnonzero(~done).tolist():
                out[i] = entry(linenos[i], keys[i], values[i])
            done_rows += len(keys)
            yield keys, out
    finally:
        reader.close()
        stack.close()


def _recorded(items: Iterator, into: list) -> Iterator:
    """``items``, each also appended to ``into``, then None once all were given."""
    for item in items:
        into.append(item)
        yield item
    into.append(None)


def _archive_offsets(values: list[str]) -> tuple[str, np.ndarray]:
    """The archive of the first ``file:offset`` value and each value's offset into it; -1 where a
    value is anything else (another archive, a pipe, a range)."""
    fname, _, first = values[0].rpartition(":")
    # The usual case, every value "fname:digits", told and parsed with a few string operations
    # over all of them (values hold no whitespace: each follows its own newline here).
    joined = "\n" + "\n".join(values)
    prefix = "\n" + fname + ":"
    if first.isascii() and first.isdigit() and joined.count(prefix) == len(values):
        tails = joined.replace(prefix, " ").split()
        digits = "".join(tails)
        if len(tails) == len(values) and digits.isascii() and digits.isdigit() and max(map(len, tails)) <= 18:
            return fname, np.array(tails, dtype=np.int64)  # 18 digits fit an int64
    parts = [v.rpartition(":") for v in values]
    return fname, np.array([int(p[2]) if p[0] == fname and p[2].isascii() and p[2].isdigit() else -1
                            for p in parts], dtype=np.int64)


class _ArchiveValues:
    """The values ``fname:offset`` of a chunk of scp lines parsed by numpy, as text when asked for
    (the fallback reads and error messages need a few; 10^5 strings would cost more than the parse)."""

    def __init__(self, fname: str, offsets: np.ndarray):
        self.fname, self.offsets = fname, offsets

    def __getitem__(self, i: int) -> str:
        return f"{self.fname}:{self.offsets[i]}"

    def __len__(self) -> int:
        return len(self.offsets)


def _scp_chunks(stream, path: str, rows: int) -> Iterator[tuple[list[int], list[str], object, tuple[str, np.ndarray]]]:
    """``(line numbers, keys, values, (archive, offsets))`` of the entries of an scp (a binary
    stream), ``rows`` at a time (a key without a value is an error naming the line); the offsets
    are ``_archive_offsets``'. Read 256 kB at a time; a block of ``key fname:offset`` lines onto one
    archive (the usual scp) is parsed by numpy (``_parse_scp_block``), any other line by line.
    Lines parsed by numpy are carried over to the next read until ``rows`` of them are there,
    so the blocks of a table are whole (``rows``, the size its consumers' products are tuned to)."""
    first = 1  # line number of the first line of the next read
    rest = b""
    held = None  # (first line number, keys, archive, offsets) of numpy-parsed lines not yet given
    while True:
        data = stream.read(1 << 18)
        block = rest + data
        if data:
            cut = block.rfind(b"\n") + 1
            block, rest = block[:cut], block[cut:]
            if not block:  # a line longer than the read: read on
                continue
        elif not block:
            break
        parsed = _parse_scp_block(block)
        if parsed is not None and held is not None and held[2] == parsed[1]:
            held = (held[0], held[1] + parsed[0], held[2], np.concatenate([held[3], parsed[2]]))
        else:
            if held is not None:
                yield from _held_chunks(held, rows, len(held[1]))
                held = None
            if parsed is not None:
                held = (first, *parsed)
        if held is not None:
            whole = len(held[1]) - len(held[1]) % rows
            yield from _held_chunks(held, rows, whole)
            held = (held[0] + whole, held[1][whole:], held[2], held[3][whole:]) if whole < len(held[1]) else None
        if parsed is None:
            lines = block.splitlines(keepends=True)
            for s in range(0, len(lines), rows):
                chunk = lines[s:s + rows]
                text = b"".join(chunk).decode()
                tokens = text.split()
                if len(tokens) == 2 * len(chunk):  # one "key value" per line, none blank
                    entries = list(zip(range(first + s, first + s + len(chunk)), tokens[0::2], tokens[1::2]))
                else:
                    entries = list(_scp_lines(text, path, first + s))
                if entries:
                    values = [e[2] for e in entries]
                    yield [e[0] for e in entries], [e[1] for e in entries], values, _archive_offsets(values)
        first += block.count(b"\n") + (not block.endswith(b"\n"))
        if not data:
            break
    if held is not None:
        yield from _held_chunks(held, rows, len(held[1]))


def _held_chunks(held: tuple, rows: int, count: int) -> Iterator:
    """The chunks of ``rows`` (the last one shorter) of the first ``count`` held lines."""
    first, keys, fname, offsets = held
    for s in range(0, count, rows):
        part = offsets[s:min(s + rows, count)]
        yield range(first + s, first + s + len(part)), keys[s:s + len(part)], _ArchiveValues(fname, part), (fname, part)


def single_spaced_lines(data: bytes, spaces_per_line: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(starts, spaces, ends)`` of the lines of ``data`` when it holds no tab, CR, VT, FF or NUL
    and exactly ``spaces_per_line`` spaces a line (``spaces``: shape lines x spaces_per_line; a
    line spans ``starts[i]:ends[i]``), found by numpy over the bytes; None otherwise. Callers
    check where the spaces fall."""
    if any(c in data for c in (b"\t", b"\r", b"\x0b", b"\x0c", b"\0")):
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    spaces = np.flatnonzero(buf == 32)
    n = len(ends)
    if n == 0 or len(spaces) != spaces_per_line * n:
        return None
    starts = np.empty(n, dtype=np.int64)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    return starts, spaces.reshape(n, spaces_per_line), ends


def byte_fields(data: bytes, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The fields ``data[lo[i]:hi[i]]`` as one numpy ``S`` array: each as the widest field's
    bytes from its start (a strided view of the data, one record a byte), then the bytes past its
    end zeroed, since ``S`` arrays are NUL-padded."""
    size = int((hi - lo).max())
    padded = np.frombuffer(data + bytes(size), dtype=np.uint8)
    fields = np.ndarray((len(data) + 1,), dtype=f"S{size}", buffer=padded, strides=(1,))[lo]
    short = np.flatnonzero(hi - lo < size)
    if len(short):
        chars = fields.view(np.uint8).reshape(len(fields), size)
        chars[short] *= np.arange(size) < (hi - lo)[short, None]
    return fields


def _parse_scp_block(block: bytes) -> tuple[list[str], str, np.ndarray] | None:
    """``(keys, archive, offsets)`` of a block of whole scp lines when every one is ``key
    archive:offset`` (ASCII, single-spaced, one archive, offsets without leading zeros), found by
    numpy over the bytes; None otherwise."""
    lines = single_spaced_lines(block, 1) if block.isascii() else None
    if lines is None:
        return None
    starts, spaces, ends = lines
    spaces = spaces[:, 0]
    buf = np.frombuffer(block, dtype=np.uint8)
    n = len(ends)
    if np.any(spaces <= starts) or np.any(spaces >= ends - 1):  # one space a line, inside it
        return None
    fname, sep, _ = block[spaces[0] + 1:ends[0]].rpartition(b":")
    # Every value starts with "fname:" when " fname:" occurs once a line (lines have one space).
    if not sep or not fname or fname.endswith(b"|") or block.count(b" " + fname + b":") != n:
        return None
    num_digits = ends - (spaces + 2 + len(fname))
    width = int(num_digits.max())
    if num_digits.min() < 1 or width > 18:  # 18 digits fit an int64
        return None
    # Offsets: each line's digits right-aligned in ``width`` columns, NUL-padded on the left.
    cols = np.arange(width)
    used = cols >= width - num_digits[:, None]
    digits = buf[np.maximum(ends[:, None] - width + cols, 0)] - np.uint8(ord("0"))
    digits[~used] = 0
    if digits.max() > 9 or np.any((digits[np.arange(n), width - num_digits] == 0) & (num_digits > 1)):
        return None  # not digits, or a leading zero (the text would not be str(offset))
    offsets = digits.astype(np.int64) @ 10 ** (width - 1 - cols)
    keys = byte_fields(block, starts, spaces)
    return list(map(bytes.decode, keys.tolist())), fname.decode(), offsets


def _fill_from_span(reader: RandomAccessReader, fname: str, offsets: np.ndarray, out: np.ndarray, dim: int,
                    head: np.ndarray) -> np.ndarray:
    """Fill the rows of ``out`` (one per entry of ``offsets``: offsets into archive ``fname``, -1 for
    another) that are plain float vectors of ``dim``, in increasing order, from one memory map of
    the bytes they span (the archive opened through ``reader``). Returns which rows were filled.

    Mapped, not read: on these VMs a read() copying from the page cache costs 1-3 s of system
    time a GB, a map of the same pages about 0.3 s (the rows are copied once either way). The
    map is closed before the next block, so its pages leave the resident set with it."""
    done = np.zeros(len(offsets), dtype=bool)
    offs = offsets
    mine = offs >= 0
    if fname.endswith("|") or "[" in fname or not mine.any():
        return done
    idx = np.flatnonzero(mine)
    offs = offs[idx]
    nbytes = 10 + 4 * dim
    if len(offs) > 1 and np.any(np.diff(offs) < nbytes):
        return done  # not laid out in order: the entries are read one by one
    lo, hi = int(offs[0]), int(offs[-1]) + nbytes
    if hi - lo > 4 * nbytes * len(offs) + (1 << 20):
        return done  # too sparse to map as one span
    start = lo - lo % mmap.ALLOCATIONGRANULARITY
    try:
        f = reader._file(fname)  # kept open from block to block
        if os.fstat(f.fileno()).st_size < hi:
            return done  # truncated: the one-by-one reads report it with the entry
        span = mmap.mmap(f.fileno(), hi - start, offset=start, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return done  # the one-by-one reads report it with the entry
    _copy_rows(span, offs - start, idx, out, dim, head, done)  # its views of the map end with it
    span.close()
    return done


def _copy_rows(span: mmap.mmap, rel: np.ndarray, idx: np.ndarray, out: np.ndarray, dim: int, head: np.ndarray,
               done: np.ndarray) -> None:
    """Rows ``idx`` of ``out`` from the float vectors at ``rel`` in ``span`` whose headers are ``head``."""
    buf = np.frombuffer(span, dtype=np.uint8)
    good = np.all(buf[rel[:, None] + np.arange(10)] == head, axis=1)
    step = np.diff(rel)
    if good.all() and (len(rel) == 1 or np.all(step == step[0])):
        # Equally spaced (keys of one length, the usual case): one strided copy.
        # Copied as one opaque record per row (a memcpy each): the rows need not be 4-byte
        # aligned in the span, and numpy's unaligned float or byte-by-byte copies are 10x slower.
        stride = int(step[0]) if len(rel) > 1 else 10 + 4 * dim
        row = np.dtype((np.void, 4 * dim))
        src = np.ndarray((len(rel),), dtype=row, buffer=span, offset=int(rel[0]) + 10, strides=(stride,))
        dst = out.view(row)[:, 0]
        if idx[-1] - idx[0] == len(idx) - 1:
            dst[idx[0]:idx[-1] + 1] = src
        else:
            dst[idx] = src
    else:
        for i, r in zip(idx[good].tolist(), rel[good].tolist()):
            out[i] = np.frombuffer(span, dtype="<f4", count=dim, offset=r + 10)
    done[idx[good]] = True


def _vector_row(key, data, pos, where, dim, first_key, rspecifier, row=None) -> np.ndarray:
    row = decode(data, pos, where)[0] if row is None else row
    if row.ndim != 1:
        raise SidError(f"{rspecifier}: key '{key}' holds a matrix, expected a vector")
    if row.shape[0] != dim:
        raise SidError(f"{rspecifier}: key '{key}' has dimension {row.shape[0]}, expected {dim} like '{first_key}'")
    return row


# ---------------------------------------------------------------- writing tables

class TableWriter:
    """Writes a Kaldi table: ``ark:``, ``ark,t:``, ``ark,scp:a.ark,a.scp``, ``ark:-``, ``ark:| cmd``.

    Use as a context manager. Files appear on a successful exit, the archive renamed into
    place before its scp; on an exception (or ``close(False)``) the temporary files are
    removed and earlier outputs stay as they were. ``write`` stores float32 objects, as
    Kaldi's tools do (BaseFloat); ``compression_method`` (Kaldi's numbering, 1 = automatic)
    compresses binary matrices. ``expected_items``, when known, lets a full disk be reported
    with an estimate of the archive's whole size.
    """

    def __init__(self, wspecifier: str, compression_method: int | None = None, expected_items: int | None = None):
        opts, path = split_specifier(wspecifier)
        if "ark" not in opts:
            raise SidError(f"bad wspecifier '{wspecifier}': writing needs ark (ark:..., ark,scp:...)")
        self.binary = "t" not in opts
        self.compression_method = compression_method
        self.scp_path = None
        if "scp" in opts:
            if path.count(",") != 1:
                raise SidError(f"bad wspecifier '{wspecifier}': ark,scp needs 'ark-file,scp-file'")
            path, self.scp_path = path.split(",")
            if not (_is_file(path) and _is_file(self.scp_path)):
                raise SidError(f"bad wspecifier '{wspecifier}': ark,scp needs two file names")
        self.path = path
        self._ark = _Output(path)
        try:
            self._scp = _Output(self.scp_path) if self.scp_path else None
        except BaseException:
            self._ark.discard()
            raise
        self._offset = 0
        self.count = 0
        if expected_items:
            self._ark.sink.estimate = lambda done: int(done / self.count * expected_items) if self.count else None

    def write(self, key: str, array: np.ndarray) -> None:
        array = np.asarray(array, dtype=np.float32)
        if self.compression_method is not None and self.binary and array.ndim == 2:
            body = (encode_compressed(array, self.compression_method),)
        elif self.binary:
            body = binary_parts(array)
        else:
            body = (encode(array, False),)
        self.write_encoded([key], [body])

    def write_encoded(self, keys: list[str], bodies: list[tuple]) -> None:
        """Write items whose objects are already encoded, each as a tuple of bytes-like parts, in one write."""
        parts, scp, pos = [], [], self._offset
        for key, body in zip(keys, bodies):
            if not key or any(c.isspace() for c in key):
                raise SidError(f"invalid key '{key}': keys must be non-empty and contain no whitespace")
            head = key.encode() + b" "
            parts.append(head)
            parts += body
            if self._scp is not None:
                scp.append(f"{key} {self.path}:{pos + len(head)}\n")
            pos += len(head) + sum(map(len, body))
        if len(keys) > 1 or pos - self._offset < 1 << 16:
            # A block of vectors in one write: a write per part (three a vector) cost a pipe
            # stage of 203,796 vectors 0.3 s of CPU and as much system time.
            self._ark.write(b"".join(parts))
        else:  # a feature matrix goes out as it is: joining would copy it once more
            for part in parts:
                self._ark.write(part)
        if scp:
            self._scp.write("".join(scp).encode())
        self._offset = pos
        self.count += len(keys)

    def close(self, ok: bool = True) -> None:
        outputs = [o for o in (self._ark, self._scp) if o is not None]
        if not ok:
            for o in outputs:
                o.discard()
            return
        try:
            for o in outputs:  # the archive first: a present scp always points into a whole archive
                o.commit()
        except BaseException:
            for o in outputs:
                o.discard()
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(exc_type is None)
        return False


def write_vectors(wspecifier: str, keys, matrix: np.ndarray, batch: int = 4096) -> None:
    """Write the rows of ``matrix`` as a vector table (float64 rows as Kaldi's DV). Binary rows are
    sliced straight from the matrix bytes and written a batch at a time (Vox1-scale tables have 10^5 rows)."""
    keys = list(keys)
    with TableWriter(wspecifier) as w:
        for start in range(0, len(keys), batch):
            write_vector_block(w, keys[start:start + batch], matrix[start:start + batch])


def write_vector_block(w: "TableWriter", keys: list[str], matrix: np.ndarray) -> None:
    """Write the rows of ``matrix`` (float32, or float64 as Kaldi's DV) to an open writer in one write."""
    if not w.binary:
        for key, row in zip(keys, matrix):
            w.write_encoded([key], [(encode(row, False),)])
        return
    matrix = np.ascontiguousarray(matrix, dtype=np.float64 if matrix.dtype == np.float64 else np.float32)
    dim = matrix.shape[1] if matrix.ndim == 2 else 0
    head = b"\0B" + (b"DV " if matrix.dtype == np.float64 else b"FV ") + struct.pack("<bi", 4, dim)
    nbytes = dim * matrix.itemsize
    block = memoryview(matrix).cast("B")
    w.write_encoded(keys, [(head, block[i * nbytes:(i + 1) * nbytes]) for i in range(len(keys))])


class ScalarWriter:
    """``key value`` lines (utt2dur, utt2num_frames) to an ``ark,t:`` wspecifier, renamed into place on success."""

    def __init__(self, wspecifier: str):
        opts, path = split_specifier(wspecifier)
        if "t" not in opts or "scp" in opts:
            raise SidError(f"wspecifier '{wspecifier}': scalar tables are written as text, e.g. ark,t:utt2dur")
        self._out = _Output(path)

    def write(self, key: str, value) -> None:
        self._out.write(f"{key} {value}\n".encode())

    def __enter__(self) -> "ScalarWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._out.commit()
        else:
            self._out.discard()


# ---------------------------------------------------------------- int32 and token tables

def read_int_table(rspecifier: str) -> dict[str, int]:
    """An int32 table (``num_utts.ark``): text ``key n`` lines or Kaldi binary."""
    opts, path = split_specifier(rspecifier)
    if "scp" in opts:
        raise SidError(f"{rspecifier}: int32 tables are read from archives only")
    data = read_bytes(path)
    out: dict[str, int] = {}
    pos, n = 0, len(data)
    while True:
        while pos < n and data[pos] in b" \t\n\r":
            pos += 1
        if pos >= n:
            return out
        space = data.find(b" ", pos)
        key = data[pos:space if space >= 0 else n].decode()
        if space < 0:
            raise SidError(f"{rspecifier}: key '{key}' has no value")
        if data[space + 1:space + 3] == b"\0B":
            if data[space + 3:space + 4] != b"\4" or space + 8 > n:
                raise SidError(f"{rspecifier}: key '{key}' at byte {space + 1}: not a whole int32 value")
            value = struct.unpack_from("<i", data, space + 4)[0]
            pos = space + 8
        else:
            eol = data.find(b"\n", space)
            eol = n if eol < 0 else eol
            try:
                value = int(data[space + 1:eol])
            except ValueError:
                raise SidError(f"{rspecifier}: key '{key}': expected an integer, "
                               f"got '{data[space + 1:eol].decode(errors='replace').strip()}'") from None
            pos = eol
        if key in out:
            raise SidError(f"{rspecifier}: duplicate key '{key}'")
        out[key] = value


def write_int_table(wspecifier: str, items: Iterable[tuple[str, int]]) -> None:
    """Write ``key -> int`` as Kaldi's int32 table (text ``key n `` lines like Kaldi, or binary)."""
    opts, path = split_specifier(wspecifier)
    if "scp" in opts or "ark" not in opts:
        raise SidError(f"bad wspecifier '{wspecifier}' for an int32 table (use ark: or ark,t:)")
    binary = "t" not in opts
    with open_output(path) as f:
        for key, value in items:
            if binary:
                f.write(key.encode() + b" \0B" + struct.pack("<bi", 4, int(value)))
            else:
                f.write(f"{key} {int(value)} \n".encode())


def _table_text(rspecifier_or_file: str) -> tuple[str, str]:
    if ":" in rspecifier_or_file.split(" ", 1)[0] and not os.path.exists(rspecifier_or_file):
        opts, path = split_specifier(rspecifier_or_file)
    else:
        path = rspecifier_or_file
    return path, read_bytes(path).decode()


def read_token_map(rspecifier_or_file: str) -> dict[str, str]:
    """``utt2spk``-like tables as a dict key -> first token (``ark:f``, ``ark,t:f`` or a plain path).
    A file of exactly two tokens a line (the usual case) is split in one go: 10^5 lines in 0.05 s."""
    path, text = _table_text(rspecifier_or_file)
    tokens = text.split()
    if len(tokens) == 2 * (text.count("\n") + (not text.endswith("\n"))):
        return dict(zip(tokens[0::2], tokens[1::2]))
    return {k: v[0] for k, v in _pairs(path, text)}


def read_pairs(rspecifier_or_file: str) -> list[tuple[str, list[str]]]:
    """A text table of tokens (``spk2utt``, ``utt2spk``) given as ``ark:f``, ``ark,t:f`` or a plain path."""
    return _pairs(*_table_text(rspecifier_or_file))


def _pairs(path: str, text: str) -> list[tuple[str, list[str]]]:
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise SidError(f"{path}:{lineno}: key '{fields[0]}' has no value")
        out.append((fields[0], fields[1:]))
    return out
