"""Kaldi table files: one ``key value`` line each (utt2spk, wav.scp, spk2utt, ...).

Files are read with their line numbers so every error names ``file:line``, and
written atomically (temporary name, then rename) so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from sid.errors import DataDirError


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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    if path.exists() and not path.is_file():
        # /dev/null, a FIFO or a device: renaming over it would replace it with a file.
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); the result should get the umask's mode like any file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
