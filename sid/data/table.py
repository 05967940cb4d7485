"""Kaldi table files: one ``key value`` line each (utt2spk, wav.scp, spk2utt, ...).

Files are read with their line numbers so every error names ``file:line``, and
written atomically (temporary name, then rename) so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from sid.errors import DataDirError, DiskFullError

_UMASK = os.umask(0)
os.umask(_UMASK)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str, str]]:
    """Yield ``(lineno, key, rest)`` for each non-empty line; ``rest`` may be empty."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            # Kaldi separates the key from the value by any whitespace (spaces or tabs).
            parts = line.split(None, 1)
            if not parts:
                raise DataDirError(f"{path}:{lineno}: empty line")
            yield lineno, parts[0], parts[1].strip() if len(parts) > 1 else ""


def read_table(path: str | os.PathLike) -> list[tuple[str, str]]:
    """All ``(key, value)`` pairs in file order."""
    return [(key, rest) for _, key, rest in iter_lines(path)]


def read_dict(path: str | os.PathLike, allow_empty_value: bool = False) -> dict[str, str]:
    """``key -> value``; a duplicate key or (by default) a missing value is an error naming both lines."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for lineno, key, rest in iter_lines(path):
        if key in seen:
            raise DataDirError(f"{path}:{lineno}: duplicate key '{key}' (first at line {seen[key]})")
        if not rest and not allow_empty_value:
            raise DataDirError(f"{path}:{lineno}: key '{key}' has no value")
        seen[key] = lineno
        out[key] = rest
    return out


def read_list_dict(path: str | os.PathLike) -> dict[str, list[str]]:
    """``key -> value tokens`` (spk2utt: speaker -> utterances)."""
    return {k: v.split() for k, v in read_dict(path).items()}


def read_keys(path: str | os.PathLike) -> list[str]:
    """First field of each line (an utterance list, or any table's keys)."""
    return [key for _, key, _ in iter_lines(path)]


class PendingFile:
    """A file written under a unique temporary name beside ``path`` (so concurrent writers never
    share one) that becomes ``path`` on ``commit()`` (a rename) or vanishes on ``discard()``.
    An existing special file (/dev/null, a FIFO) is written in place: renaming over it would
    replace it with a file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            self.tmp = self.path
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        # mkstemp makes the file private (0600); the result should get the umask's mode like any file.
        os.chmod(tmp, 0o666 & ~_UMASK)

    def commit(self) -> None:
        if self.tmp != self.path:
            os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.tmp != self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.
    A full disk inside the block is reported as ``disk_full`` (temporary file removed), with
    ``size``, the bytes the block writes, when the caller knows it."""
    pending = PendingFile(path)
    try:
        yield pending.tmp
        pending.commit()
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            written = pending.tmp.stat().st_size if pending.tmp.is_file() else 0
            pending.discard()
            raise disk_full(path, written, size) from None
        raise
    finally:
        pending.discard()


def _mount_of(path: Path) -> tuple[str, str]:
    """``(mount point, device)`` of the file system holding ``path``."""
    path = path.resolve()
    while not path.exists() or not os.path.ismount(path):
        path = path.parent
    device = "?"
    with contextlib.suppress(OSError), open("/proc/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[1].encode().decode("unicode_escape") == str(path):
                device = f"{fields[2]} on {fields[0]}"
    return str(path), device


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def disk_full(path: str | os.PathLike | None, written: int, needed: int | None = None,
              estimated: bool = False) -> DiskFullError:
    """The error for a write that found no space: which file system, what it has left, and how
    much was needed (``needed`` when the writer knows or ``estimated`` it, else more than was written)."""
    where = Path(path).parent if path else Path.cwd()
    mount, device = _mount_of(where if str(where) else Path("."))
    try:
        st = os.statvfs(mount)
        free = f"{_size(st.f_bavail * st.f_frsize)} free of {_size(st.f_blocks * st.f_frsize)}"
    except OSError:
        free = "free space unknown"
    if needed and needed > written:
        need = (f"about {_size(needed)} is needed (estimated from what was written)" if estimated
                else f"{_size(needed)} is needed")
    elif written:
        need = f"more than the {_size(written)} written so far is needed"
    else:
        need = "the write needed more"
    return DiskFullError(f"no space left on device writing {path or 'a file'}: {mount} ({device}) has {free}; "
                         f"{need}. The unfinished file was removed; free space there (or write elsewhere) and rerun.")


def write_table(path: str | os.PathLike, items: Iterable[tuple[str, str]] | dict) -> None:
    """Write ``key value`` lines atomically, in the order given."""
    if isinstance(items, dict):
        items = items.items()
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for key, value in items:
            if isinstance(value, (list, tuple)):
                value = " ".join(map(str, value))
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")


def write_sorted(path: str | os.PathLike, items: Iterable[tuple[str, str]] | dict) -> None:
    """Write ``key value`` lines sorted bytewise by key (Kaldi's C-locale order)."""
    if isinstance(items, dict):
        items = items.items()
    write_table(path, sorted(items, key=lambda kv: kv[0].encode()))
