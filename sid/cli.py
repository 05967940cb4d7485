"""Kaldi-style command-line options and logging for ``sid.bin`` tools.

Kaldi binaries take ``--name=value`` options (``--name`` alone for a true
boolean), an optional ``--config=FILE`` of such lines, and positional
rspecifiers/wspecifiers. ``KaldiOptions`` reproduces that so a Kaldi command
line works with only the binary's name changed::

    po = KaldiOptions("Usage: compute_fbank_feats [options] <wav-rspecifier> <feats-wspecifier>")
    po.register("frame-shift", 10.0, "Frame shift in milliseconds")
    opts, args = po.parse(num_args=2)      # opts.frame_shift
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Sequence

_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no"}


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected true or false, got '{text}'")


class UsageError(Exception):
    """Bad command line: printed with the usage text, exit status 1."""


class KaldiOptions:
    def __init__(self, usage: str):
        self.usage = usage.strip()
        self._opts: dict[str, tuple[type, Any, str]] = {}
        self.register("config", "", "Configuration file to read (this option may be repeated)")
        self.register("verbose", 0, "Verbose level (higher->more logging)")
        self.register("help", False, "Print out usage message")

    def register(self, name: str, default: Any, help: str = "", type_: type | None = None) -> None:
        """Register ``--name`` (dashes or underscores) with a default whose type is the option's."""
        key = name.replace("_", "-")
        typ = type_ or type(default)
        self._opts[key] = (typ, default, help)

    def _convert(self, key: str, raw: str) -> Any:
        typ = self._opts[key][0]
        try:
            if typ is bool:
                return parse_bool(raw)
            if typ is int:
                return int(raw)
            if typ is float:
                return float(raw)
            return raw
        except ValueError as err:
            raise UsageError(f"invalid value for --{key}: {err}") from None

    def _apply(self, values: dict, arg: str, where: str) -> None:
        body = arg[2:]
        key, eq, raw = body.partition("=")
        key = key.replace("_", "-")
        if key not in self._opts:
            raise UsageError(f"invalid option --{key}{where}")
        if not eq:
            if self._opts[key][0] is not bool:
                raise UsageError(f"option --{key} needs a value: --{key}=VALUE{where}")
            raw = "true"
        if key == "config":
            self._read_config(values, raw)
            return
        values[key] = self._convert(key, raw)

    def _read_config(self, values: dict, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except OSError as err:
            raise UsageError(f"cannot read config file {path}: {err.strerror}") from None
        for lineno, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if not line.startswith("--"):
                raise UsageError(f"{path}:{lineno}: expected --name=value, got '{line}'")
            self._apply(values, line, f" ({path}:{lineno})")

    def read_options(self, args: Sequence[str], source: str = "") -> argparse.Namespace:
        """The options as ``--name=value`` arguments (``--config=FILE`` included) set them,
        defaults elsewhere; a bad one is a ``SidError`` (no usage text, no exit)."""
        from sid.errors import SidError

        values = {k: v[1] for k, v in self._opts.items()}
        try:
            for arg in args:
                if not arg.startswith("--"):
                    raise UsageError(f"expected --name=value, got '{arg}'")
                self._apply(values, arg, f" ({source})" if source else "")
        except UsageError as err:
            raise SidError(str(err)) from None
        return argparse.Namespace(**{k.replace("-", "_"): v for k, v in values.items()})

    def help_text(self) -> str:
        """Every tool's help has one form: the Usage line (and its e.g.), the description, Options."""
        usage = self.usage.splitlines()
        first = next((i for i, line in enumerate(usage) if line.startswith("Usage:")), 0)
        if first:  # Kaldi puts the description first; move it after the usage and example lines
            end = first + 1
            while end < len(usage) and usage[end].startswith((" ", "\t")):
                end += 1
            usage = usage[first:end] + usage[:first] + usage[end:]
        lines = ["\n".join(usage), "", "Options:"]
        for key, (typ, default, text) in sorted(self._opts.items()):
            shown = str(default).lower() if typ is bool else default
            lines.append(f"  --{key:<28} : {text} ({typ.__name__}, default = {shown})")
        return "\n".join(lines)

    def parse(self, argv: Sequence[str] | None = None, num_args: int | tuple[int, int] | None = None):
        """Return ``(opts, positional)``; on a bad command line print usage and exit 1.

        ``num_args`` is an exact count or an inclusive ``(min, max)`` range.
        Options may come anywhere before a lone ``--``; Kaldi itself needs them first.
        """
        argv = list(sys.argv[1:] if argv is None else argv)
        values = {k: v[1] for k, v in self._opts.items()}
        positional: list[str] = []
        try:
            only_args = False
            for arg in argv:
                if not only_args and arg == "--":
                    only_args = True
                elif not only_args and arg.startswith("--") and len(arg) > 2:
                    self._apply(values, arg, "")
                else:
                    positional.append(arg)
            if values["help"]:
                print(self.help_text())
                sys.exit(0)
            if num_args is not None:
                lo, hi = (num_args, num_args) if isinstance(num_args, int) else num_args
                if not lo <= len(positional) <= hi:
                    raise UsageError(
                        f"expected {lo if lo == hi else f'{lo} to {hi}'} arguments, got {len(positional)}")
        except UsageError as err:
            print(self.help_text(), file=sys.stderr)
            print(f"\nERROR ({prog_name()}): {err}", file=sys.stderr)
            sys.exit(1)
        setup_logging(values["verbose"])
        opts = argparse.Namespace(**{k.replace("-", "_"): v for k, v in values.items()})
        return opts, positional


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse help in the form of the other tools': ``Usage: ...``, the description, ``Options:``."""

    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, prefix="Usage: ")


def argparser(**kwargs) -> argparse.ArgumentParser:
    """An ``argparse.ArgumentParser`` whose help has the form of the other tools'."""
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, **kwargs)
    ap._positionals.title = "Arguments"
    ap._optionals.title = "Options"
    return ap


def doc_argparser(doc: str, prog: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser for a script whose docstring is its documentation: the first
    line ``Usage: ...`` is the usage, the text after the blank line the description."""
    return argparser(prog=prog, usage=doc.splitlines()[0][len("Usage: "):], description=doc.split("\n", 2)[2])


def prog_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return spec.name.rsplit(".", 1)[-1]
    return os.path.basename(sys.argv[0]) or "sid"


class KaldiFormatter(logging.Formatter):
    LEVELS = {"DEBUG": "VLOG[1]", "INFO": "LOG", "WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "ERROR"}

    def format(self, record: logging.LogRecord) -> str:
        level = self.LEVELS.get(record.levelname, record.levelname)
        return f"{level} ({prog_name()}:{record.funcName}():{record.filename}:{record.lineno}) {record.getMessage()}"


def setup_logging(verbose: int = 0) -> None:
    """Log to stderr the way Kaldi binaries do, so job logs read alike."""
    root = logging.getLogger()
    if not any(getattr(h, "_sid", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(KaldiFormatter())
        handler._sid = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 0 else logging.INFO)


PROGRESS_INTERVAL = 30.0  # seconds between progress lines in a log


def progress(iterable: Any = None, *, desc: str = "", total: int | None = None, unit: str = "it",
             disable: bool = False, file=None, interval: float = PROGRESS_INTERVAL, **kwargs):
    """Progress of long work, the one place it is set up: tqdm's live bar on a terminal; in a
    log or pipe (where a redrawn bar would be carriage-return lines) one plain line per
    ``interval`` seconds and one at the end, ``desc: 40% 500/1250 [0:30<0:45, 16.7 utt/s]``.
    Iterate over it, or call ``update()``/``set_postfix()``/``close()``. tqdm (a tenth of a
    tool's start-up budget to import) is imported only for the live bar. ``kwargs`` go to
    tqdm (``initial``, ``mininterval``, ...); ``initial`` also counts here.
    """
    out = file if file is not None else sys.stderr
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    try:
        live = out.isatty()
    except (AttributeError, ValueError):
        live = False
    if live and not disable:
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, file=out, dynamic_ncols=True, **kwargs)
    return _LogProgress(iterable, desc, total, unit, disable, out, interval, kwargs.get("initial", 0))


class _LogProgress:
    """Progress as whole lines, for logs (see :func:`progress`)."""

    def __init__(self, iterable, desc, total, unit, disable, out, interval, initial):
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.disable, self.out, self.interval = disable, out, interval
        self.n = self.start_n = initial
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False
        self._line()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __len__(self):
        return self.total or 0

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._line()

    def set_postfix(self, **kwargs) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line()

    def _line(self) -> None:
        self.last = now = time.monotonic()
        if self.disable:
            return
        elapsed = now - self.start
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}"
        when = _clock(elapsed)
        if self.total:
            done = f"{100 * self.n / self.total:3.0f}% {self.n}/{self.total}"
            if rate > 0:
                when += f"<{_clock((self.total - self.n) / rate)}"
        extra = f", {self.postfix}" if self.postfix else ""
        self.out.write(f"{self.desc}: {done} [{when}, {rate:.3g} {self.unit}/s{extra}]\n")
        self.out.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _worker_message(msg: str) -> str:
    """A SidError raised in a DataLoader worker reaches the main process with the worker's
    traceback in its message ("Caught SidError in DataLoader worker process 0. Original
    Traceback ..."): keep the error's own message, saying where it came from."""
    if "\nOriginal Traceback (most recent call last):" not in msg:
        return msg
    import re

    where = re.match(r"Caught \w+ (in .*?)\.?\n", msg)
    own = re.split(r"^sid\.errors\.\w+: ", msg, flags=re.M)[-1].strip()
    return f"{own} ({where.group(1)})" if where else own


def run_main(main) -> None:
    """Run ``main()``; a ``SidError`` or ``OSError`` ends the program with its message and status 1,
    no traceback."""
    from sid.errors import SidError

    try:
        status = main()
    except SidError as err:
        print(f"ERROR ({prog_name()}): {_worker_message(str(err))}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(1)
    except OSError as err:
        import errno

        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            # A write outside sid.kaldi_io's writers (a log, a plot): still one clear line.
            from sid.data.table import disk_full

            print(f"ERROR ({prog_name()}): {disk_full(err.filename, 0)}", file=sys.stderr)
        else:
            # The environment (a folder that cannot be written, a vanished file): what and where.
            where = f": {err.filename}" if err.filename else ""
            print(f"ERROR ({prog_name()}): {err.strerror or err}{where}", file=sys.stderr)
        sys.exit(1)
    sys.exit(status or 0)
