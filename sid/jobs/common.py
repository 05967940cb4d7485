"""What run.pl, slurm.pl and queue.pl share: Kaldi's argument syntax, command
quoting, running one job into its log, signal handling and failure reports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from sid.errors import SidError


class JobsError(SidError):
    """A bad runner command line, config file or submission."""


_RANGE = re.compile(r"^([A-Za-z_]\w*)=(\d+):(\d+)$")
_SINGLE = re.compile(r"^([A-Za-z_]\w*)=(\d+)$")

USAGE = """\
Usage: {prog} [options] [JOB=1:N] <log-file> <command> [<args>...]
 e.g.: {prog} --max-jobs-run 4 JOB=1:10 exp/log/extract.JOB.log sid-tool --opt data/split10/JOB
Runs the command once per job, JOB replaced by the job number in the log name
and the command; waits for all; exits 1 naming each failed job's log.
Options:
  --max-jobs-run N   at most N jobs at once
  --mem M            memory per thread (e.g. 4G)
  --num-threads N    threads per job
  --gpu N            GPUs per job
  --time T           time limit per job (cluster runners)
  --num-nodes N      one job spanning N nodes, the command run on each (cluster runners)
  --config FILE      Kaldi-format config (slurm.pl: conf/slurm.conf, queue.pl: conf/queue.conf)
Words of the command without whitespace are passed unquoted (\\| makes a pipe)."""


@dataclass
class JobArgs:
    """A parsed runner command line."""

    options: dict[str, str] = field(default_factory=dict)  # --num-threads 2 -> {"num_threads": "2"}
    raw_opts: list[str] = field(default_factory=list)  # single-dash scheduler options, passed through
    jobname: str | None = None
    start: int = 1
    end: int = 1
    logfile: str = ""
    command: str = ""

    @property
    def tasks(self) -> range:
        return range(self.start, self.end + 1)

    def _sub(self, text: str, task: int) -> str:
        return text.replace(self.jobname, str(task)) if self.jobname else text

    def log_for(self, task: int) -> str:
        return self._sub(self.logfile, task)

    def command_for(self, task: int) -> str:
        return self._sub(self.command, task)

    def int_option(self, name: str, default: int, minimum: int) -> int:
        raw = self.options.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            flag = "--" + name.replace("_", "-")
            raise JobsError(f"invalid option {flag} {raw}: expected an integer >= {minimum}")
        return value


def quote_command(words: list[str]) -> str:
    """Join command words as Kaldi's run.pl does: bare if free of whitespace
    (so ``|``, ``>`` or ``\\|`` keep their shell meaning), else quoted."""
    out = []
    for w in words:
        if re.fullmatch(r"\S+", w):
            out.append(w)
        elif '"' in w:
            out.append(f"'{w}'")
        else:
            out.append(f'"{w}"')
    return " ".join(out)


def parse_args(argv: list[str], prog: str) -> JobArgs:
    """Parse ``[options] [JOB=a:b] [options] <log> <command...>`` like Kaldi's runners.

    Options are ``--name value`` (``--name=value`` too); ``-tc N`` is
    ``--max-jobs-run N``; other single-dash options (``-l x``, ``-pe smp 4``,
    ``-V``) are scheduler options passed through by the cluster runners.
    """
    args = list(argv)
    if args in ([], ["--help"], ["-h"]):
        print(USAGE.format(prog=prog), file=sys.stdout if args else sys.stderr)
        raise SystemExit(0 if args else 1)
    out = JobArgs()
    warned = False
    # Two rounds: options may come before and after the JOB=a:b range, as in Kaldi.
    for _ in range(2):
        while len(args) >= 2 and args[0].startswith("-"):
            switch = args.pop(0)
            if switch == "-V":
                out.raw_opts.append(switch)
            elif switch.startswith("--"):
                name, eq, value = switch[2:].partition("=")
                if not eq:
                    value = args.pop(0)
                out.options[name.replace("-", "_")] = value
            elif switch == "-tc":
                out.options["max_jobs_run"] = args.pop(0)
            elif switch == "-pe" and len(args) >= 2:  # -pe smp 4: SGE's threads
                env, slots = args.pop(0), args.pop(0)
                out.raw_opts += [switch, env, slots]
                out.options.setdefault("num_threads", slots)
            else:
                out.raw_opts += [switch, args.pop(0)]
        if not args:
            break
        m = _RANGE.match(args[0]) or _SINGLE.match(args[0])
        if m:
            if out.jobname is not None:
                raise JobsError(f"two job ranges given ({out.jobname}=... and {args[0]})")
            out.jobname = m.group(1)
            out.start = int(m.group(2))
            out.end = int(m.group(3)) if m.lastindex == 3 else out.start
            if out.start <= 0:
                raise JobsError(f"invalid job range {args[0]}: jobs are numbered from 1")
            if out.start > out.end:
                raise JobsError(f"invalid job range {args[0]}: start > end")
            args.pop(0)
        elif re.match(r".+=.*:.*$", args[0]) and not warned:
            warned = True
            print(f"{prog}: WARNING: suspicious first argument {args[0]} (not NAME=a:b)", file=sys.stderr)
    if len(args) < 2:
        raise JobsError("expected a log file and a command\n" + USAGE.format(prog=prog))
    if re.match(r"^[A-Za-z_]\w*=", args[0]):
        raise JobsError(f"'{args[0]}' is neither a job range (JOB=1:N) nor a plausible log file name")
    out.logfile = args[0]
    out.command = quote_command(args[1:])
    if out.jobname and out.end > out.start and out.jobname not in out.logfile:
        raise JobsError(f"{out.end - out.start + 1} jobs would all write one log file "
                        f"({out.logfile}): put {out.jobname} in its name")
    return out


def format_date() -> str:
    """The date as `date` prints it in the C locale (Kaldi's logs)."""
    return time.strftime("%a %b %e %H:%M:%S %Z %Y")


def describe(returncode: int) -> str:
    """Exit status for the log footer; a signal shows as 128+N like the shell's ``$?``."""
    if returncode < 0:
        return f"code {128 - returncode}; signal {-returncode}"
    return f"code {returncode}"


def failure_reason(returncode: int | None) -> str:
    if returncode is None:
        return "vanished from the queue without finishing (killed by the scheduler?)"
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class Interrupt:
    """Ctrl-C, SIGTERM or SIGHUP: stop starting jobs and kill the running ones
    (each runs in its own process group, so pipelines die whole)."""

    def __init__(self) -> None:
        self.signum = 0
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        self.signum = signum
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def add(self, p: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(p)
        if self.signum:  # the signal came while this job was starting
            self._handle(self.signum, None)

    def discard(self, p: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(p)


def run_logged(command: str, logfile: str, *, threads: int = 1, interrupt: Interrupt | None = None,
               show_host: bool = False) -> int:
    """Run ``command`` with bash, its stdout and stderr appended to ``logfile``
    between Kaldi's header and footer. Returns the exit status (negative: signal).
    ``pipefail``: a job ``a | b | c`` fails when any of its commands fails, not only the last."""
    start = time.time()
    try:
        os.makedirs(os.path.dirname(logfile) or ".", exist_ok=True)
        with open(logfile, "w", encoding="utf-8") as log:
            log.write(f"# {command}\n# Started at {format_date()}\n")
            if show_host:
                log.write(f"# Running on {socket.gethostname()}\n")
            log.write("#\n")
    except OSError as err:
        raise JobsError(f"cannot write log file {logfile}: {err.strerror}") from None
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(["bash", "-o", "pipefail", "-c", command], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    if interrupt is not None:
        interrupt.add(proc)
    try:
        returncode = proc.wait()
    finally:
        if interrupt is not None:
            interrupt.discard(proc)
    elapsed = int(round(time.time() - start))
    with open(logfile, "a", encoding="utf-8") as log:
        log.write(f"# Accounting: time={elapsed} threads={threads}\n"
                  f"# Ended ({describe(returncode)}) at {format_date()}, elapsed time {elapsed} seconds\n")
    return returncode


def guarded(prog: str, body) -> int:
    """Run ``body()``; a user error is printed as ``<prog>: ERROR: ...`` with exit status 1."""
    try:
        return body()
    except SidError as err:
        print(f"{prog}: ERROR: {err}", file=sys.stderr)
        return 1


def report(prog: str, args: JobArgs, results: dict[int, int | None], details: dict[int, str] | None = None) -> int:
    """Print one line per failed job naming its log (Kaldi's summary after them); return the exit status.

    ``results`` maps each job to its exit status (negative: signal; None: vanished);
    ``details`` adds a note to a job's line (where the scheduler's own output is)."""
    failed = {t: rc for t, rc in results.items() if rc != 0}
    if not failed:
        return 0
    njobs = len(args.tasks)
    for task, rc in sorted(failed.items()):
        which = f"job {task}" if args.jobname else "job"
        note = f"; {details[task]}" if details and task in details else ""
        print(f"{prog}: {which} failed ({failure_reason(rc)}), log is in {args.log_for(task)}{note}",
              file=sys.stderr)
    if njobs > 1:
        pattern = args.logfile.replace(args.jobname, "*") if args.jobname else args.logfile
        print(f"{prog}: {len(failed)} / {njobs} failed, log is in {pattern}", file=sys.stderr)
    elif "JOB" in args.logfile and not args.jobname:
        print(f"{prog}: probably you forgot to put JOB=1:$nj in your script", file=sys.stderr)
    return 1
