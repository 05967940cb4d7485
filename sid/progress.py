"""Progress of long work, the one place tqdm is set up.

On a terminal it is tqdm's live bar. Anywhere else (a job log, a pipe) a redrawn bar
would fill the file with carriage-return lines, so it is one plain line per interval
(``LOG_INTERVAL`` seconds, and one at the end): ``desc: 40% 500/1250 [00:30<00:45, 16.6utt/s]``.
"""

from __future__ import annotations

import sys
from typing import Iterable, TextIO

LOG_INTERVAL = 30.0


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into whole lines."""

    def __init__(self, out: TextIO):
        self.out = out

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text:
            self.out.write(text + "\n")

    def flush(self) -> None:
        self.out.flush()


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, unit: str = "it",
             disable: bool = False, file: TextIO | None = None, interval: float = LOG_INTERVAL, **kwargs):
    """A tqdm over ``iterable`` (or a manual one, with ``update``): a live bar on a terminal,
    a line per ``interval`` seconds elsewhere. ``kwargs`` go to tqdm (``initial``, ``leave``, ...)."""
    from tqdm import tqdm

    out = file if file is not None else sys.stderr
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    try:
        live = out.isatty()
    except (AttributeError, ValueError):
        live = False
    if live:
        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, file=out, mininterval=0.5,
                    dynamic_ncols=True, **kwargs)
    fmt = ("{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]" if total
           else "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]")
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, file=_Lines(out), mininterval=interval,
                maxinterval=interval, bar_format=fmt, ascii=True, **kwargs)
