"""slurm.pl and queue.pl: submit the jobs as one array job, wait for every task.

Options map to scheduler options through a config file in Kaldi's format
(``--config FILE``, else ``conf/slurm.conf`` / ``conf/queue.conf`` in the
current directory, else the built-in default below)::

    command sbatch --export=PATH --ntasks-per-node=1   # the submit command
    option mem=* --mem-per-cpu $0                      # any value: $0 is replaced by it
    option mem=0                                       # this value: add nothing
    default gpu=0                                      # value when not on the command line

An option given on the command line (or by ``default``) that the config does
not describe is an error, as in Kaldi. ``--max-jobs-run M`` becomes Slurm's
``--array=1-N%M`` / SGE's ``-tc M``. Single-dash options (``-l h=node1``) go to
the submit command as they are.

``--num-nodes N`` (N > 1) submits one job spanning N nodes through the config's
``num_nodes`` option (Slurm: ``--nodes $0`` with one task per node; SGE: a
parallel environment with one slot per host); the command runs once on every
node (see ``sid.jobs.nodes``) and logs into the one log. A job range is refused.

Files go beside the logs, in ``<log-dir>/q/``: the job script ``<name>.sh``,
``<name>.json`` (what ``sid.jobs.task`` runs on the node), the scheduler's own
output ``<name>.<n>.out`` and ``<name>.<n>.status`` (the exit status, written
by the task when it ends). The runner polls for the status files; a task that
leaves the queue without writing one (killed by the scheduler, node failure)
is reported as failed after ``$SID_JOBS_GRACE`` seconds (default 30: shared
file systems may show a new file late).

The job script ``cd``s to the submitting directory and exports the submitter's
PATH, PYTHONPATH, VIRTUAL_ENV, LD_LIBRARY_PATH, HOME, USER, locale, thread-count
and ``SID_*`` variables, whatever the submit command exports (Kaldi's default
``--export=PATH`` / ``-v PATH`` pass little), then runs the task with this Python.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from sid.data.table import atomic_path
from sid.jobs.common import Interrupt, JobArgs, JobsError, guarded, parse_args, report

DEFAULT_SLURM_CONF = """\
command sbatch --export=PATH --ntasks-per-node=1
option time=* --time $0
option mem=* --mem-per-cpu $0
option mem=0
option num_threads=* --cpus-per-task $0
option num_threads=1 --cpus-per-task 1
option gpu=* --gres=gpu:$0
option gpu=0
default gpu=0
option num_nodes=* --nodes $0
"""

DEFAULT_QUEUE_CONF = """\
command qsub -v PATH -cwd -S /bin/bash -j y -l arch=*64*
option time=* -l h_rt=$0
option mem=* -l mem_free=$0,ram_free=$0
option mem=0
option num_threads=* -pe smp $0
option num_threads=1
option max_jobs_run=* -tc $0
option gpu=* -l gpu=$0 -q g.q
option gpu=0
default gpu=0
option num_nodes=* -pe node $0
"""

_ENV_KEEP = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "LC_ALL", "LANG", "PYTHONUNBUFFERED",
             "HOME", "USER", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class Config:
    """A Kaldi-format runner config: the submit command and option rules."""

    source: str
    command: list[str] = field(default_factory=list)
    wildcard: dict[str, str] = field(default_factory=dict)  # option -> args with $0
    exact: dict[tuple[str, str], str] = field(default_factory=dict)  # (option, value) -> args
    defaults: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, source: str) -> "Config":
        conf = cls(source)
        for lineno, line in enumerate(text.splitlines(), 1):
            body = re.sub(r"\s*#.*", "", line).strip()
            if not body:
                continue
            where = f"{source}:{lineno}"
            if m := re.fullmatch(r"command\s+(.+)", body):
                conf.command = shlex.split(m.group(1))
            elif m := re.fullmatch(r"option\s+([^=\s]+)=\*\s+(.+)", body):
                if "$0" not in m.group(2):
                    raise JobsError(f"{where}: 'option {m.group(1)}=*' needs $0 in its arguments: '{line}'")
                conf.wildcard[m.group(1)] = m.group(2)
            elif m := re.fullmatch(r"option\s+([^=\s]+)=(\S+)\s*(.*)", body):
                conf.exact[(m.group(1), m.group(2))] = m.group(3)
            elif m := re.fullmatch(r"default\s+([^=\s]+)=(\S+)", body):
                conf.defaults[m.group(1)] = m.group(2)
            else:
                raise JobsError(f"{where}: cannot parse '{line}' (expected 'command ...', "
                                "'option name=value args', 'option name=* args-with-$0' or 'default name=value')")
        if not conf.command:
            raise JobsError(f"{source} has no 'command ...' line")
        return conf

    def describes(self, name: str) -> bool:
        return name in self.wildcard or any(opt == name for opt, _ in self.exact)

    def scheduler_args(self, options: dict[str, str], skip: set[str]) -> list[str]:
        """Submit-command arguments for the runner options (after defaults), in the config's terms."""
        merged = dict(options)
        for name, value in self.defaults.items():
            merged.setdefault(name, value)
        out: list[str] = []
        for name, value in merged.items():
            if name in skip:
                continue
            if (name, value) in self.exact:
                text = self.exact[(name, value)]
            elif name in self.wildcard:
                text = self.wildcard[name].replace("$0", value)
            else:
                flag = "--" + name.replace("_", "-")
                raise JobsError(f"option {flag} {value} is not described in {self.source} "
                                f"(add 'option {name}=* <scheduler options with $0>')")
            out += shlex.split(text)
        return out


def load_config(args: JobArgs, conf_name: str, default_text: str) -> Config:
    path = args.options.get("config")
    if path is None and os.path.exists(conf_name):
        path = conf_name
    if path is None:
        return Config.parse(default_text, "the built-in default config")
    try:
        with open(path, encoding="utf-8") as f:
            return Config.parse(f.read(), path)
    except OSError as err:
        raise JobsError(f"cannot read config file {path}: {err.strerror}") from None


class Scheduler(ABC):
    """What differs between Slurm and SGE."""

    prog = ""
    conf_name = ""
    default_conf = ""
    task_env = ""  # where the job script finds its array task number
    launch = ""  # how a multi-node job starts the command on every node (sid.jobs.nodes)

    @abstractmethod
    def submit_args(self, config: Config, args: JobArgs, name: str, stem: str) -> list[str]:
        """The submit command for job script ``<stem>.sh``, scheduler output to ``<stem>.<task>.out``."""

    @abstractmethod
    def job_id(self, stdout: str) -> str:
        """The job id in the submit command's output."""

    @abstractmethod
    def alive(self, job_id: str) -> set[int] | None:
        """Tasks the scheduler still has (pending or running); None when it cannot tell."""

    @abstractmethod
    def cancel(self, job_id: str) -> list[str]:
        """The command that cancels the whole job."""


def _query(argv: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None


class Slurm(Scheduler):
    prog = "slurm.pl"
    conf_name = "conf/slurm.conf"
    default_conf = DEFAULT_SLURM_CONF
    task_env = "SLURM_ARRAY_TASK_ID"
    launch = "srun"

    def submit_args(self, config, args, name, stem):
        array = f"{args.start}-{args.end}"
        if "max_jobs_run" in args.options:
            array += f"%{args.int_option('max_jobs_run', 1, 1)}"
        return (config.command + config.scheduler_args(args.options, {"config", "max_jobs_run"}) + args.raw_opts
                + ["--parsable", f"--array={array}", f"--job-name={name}",
                   f"--output={stem}.%a.out", f"{stem}.sh"])

    def job_id(self, stdout):
        m = re.match(r"\s*(\d+)", stdout)  # --parsable: "<id>[;cluster]"
        if not m:
            raise JobsError(f"cannot find a job id in sbatch's output: {stdout.strip()!r}")
        return m.group(1)

    def alive(self, job_id):
        res = _query(["squeue", "--noheader", "--array", f"--jobs={job_id}", "--format=%K"])
        if res is None:
            return None
        if res.returncode != 0:
            # A job purged from the controller is no longer valid: every task has left.
            return set() if "Invalid job id" in res.stderr else None
        return {int(t) for t in res.stdout.split() if t.isdigit()}

    def cancel(self, job_id):
        return ["scancel", job_id]


class GridEngine(Scheduler):
    prog = "queue.pl"
    conf_name = "conf/queue.conf"
    default_conf = DEFAULT_QUEUE_CONF
    task_env = "SGE_TASK_ID"
    launch = "qrsh"

    def submit_args(self, config, args, name, stem):
        skip = {"config"}
        extra = []
        if not config.describes("max_jobs_run"):
            skip.add("max_jobs_run")
            if "max_jobs_run" in args.options:
                extra = ["-tc", str(args.int_option("max_jobs_run", 1, 1))]
        return (config.command + config.scheduler_args(args.options, skip) + args.raw_opts
                + ["-N", name, "-o", f"{stem}.$TASK_ID.out",  # SGE expands $TASK_ID
                   "-t", f"{args.start}:{args.end}"] + extra + [f"{stem}.sh"])

    def job_id(self, stdout):
        m = re.search(r"Your job(?:-array)? (\d+)", stdout) or re.match(r"\s*(\d+)", stdout)  # or -terse
        if not m:
            raise JobsError(f"cannot find a job id in qsub's output: {stdout.strip()!r}")
        return m.group(1)

    def alive(self, job_id):
        # -g d lists each array task on its own line, its number in the last column.
        res = _query(["qstat", "-g", "d"])
        if res is None or res.returncode != 0:
            return None
        rows = (line.split() for line in res.stdout.splitlines())
        return {int(r[-1]) for r in rows if len(r) > 2 and r[0] == job_id and r[-1].isdigit()}

    def cancel(self, job_id):
        return ["qdel", job_id]


def _job_name(args: JobArgs) -> str:
    base = os.path.basename(args.logfile)
    if args.jobname:
        base = base.replace(f".{args.jobname}", "").replace(args.jobname, "")
    base = re.sub(r"\.log$", "", base) or "job"
    base = re.sub(r"[^\w.-]", "_", base)
    return base if base[0].isalpha() else f"j{base}"  # SGE wants a letter first


def _write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, mode)


def _script(prog: str, command: str, body: str) -> str:
    """A bash script in the submitting directory and environment (see the module doc) that runs ``body``."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP or k.startswith("SID_")}
    lines = ["#!/usr/bin/env bash", f"# Written by {prog} for: {command}", f"cd {shlex.quote(os.getcwd())} || exit 1"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines.append(body)
    return "\n".join(lines) + "\n"


def _read_status(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def run_array(sched: Scheduler, args: JobArgs) -> int:
    config = load_config(args, sched.conf_name, sched.default_conf)
    for name, lo in (("max_jobs_run", 1), ("num_threads", 1), ("gpu", 0)):
        args.int_option(name, lo, lo)  # validates
    num_nodes = args.int_option("num_nodes", 1, 1)
    if num_nodes == 1:
        args.options.pop("num_nodes", None)
    elif len(args.tasks) > 1:
        raise JobsError(f"--num-nodes {num_nodes} submits one job spanning {num_nodes} nodes; "
                        f"drop the job range {args.jobname}={args.start}:{args.end}")
    name = _job_name(args)
    qdir = os.path.abspath(os.path.join(os.path.dirname(args.logfile) or ".", "q"))
    os.makedirs(qdir, exist_ok=True)
    stem = os.path.join(qdir, name)
    status = {t: f"{stem}.{t}.status" for t in args.tasks}
    for path in status.values():  # an earlier run's status must not count for this one
        if os.path.exists(path):
            os.unlink(path)
        if os.path.exists(path[:-len(".status")] + ".failures"):
            os.unlink(path[:-len(".status")] + ".failures")
    spec = {"command": args.command, "jobname": args.jobname, "logfile": args.logfile,
            "threads": args.int_option("num_threads", 1, 1), "stem": stem,
            "task_env": sched.task_env, "num_nodes": num_nodes, "launch": sched.launch}
    _write_atomic(f"{stem}.json", json.dumps(spec, indent=1) + "\n")
    task_cmd = f"exec {shlex.quote(sys.executable)} -m sid.jobs.task {shlex.quote(stem + '.json')}"
    _write_atomic(f"{stem}.sh", _script(sched.prog, args.command, task_cmd), 0o755)
    if num_nodes > 1 and sched.launch == "qrsh":
        # What qrsh -inherit runs on each host: the job's directory and environment, then the command.
        _write_atomic(f"{stem}.node.sh", _script(sched.prog, args.command, args.command_for(args.start)), 0o755)

    argv = sched.submit_args(config, args, name, stem)
    # From here on Ctrl-C cancels the job (once it has an id) rather than leave it running.
    interrupt = Interrupt()
    interrupt.install()
    try:
        res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as err:
        raise JobsError(f"cannot run {argv[0]}: {err.strerror} (is this a {sched.prog[:-3]} submit host?)") from None
    if res.returncode != 0:
        raise JobsError(f"submitting failed (exit code {res.returncode}): {shlex.join(argv)}\n"
                        f"{(res.stdout + res.stderr).strip()}")
    job_id = sched.job_id(res.stdout)

    grace = float(os.environ.get("SID_JOBS_GRACE", "30"))
    pending = set(args.tasks)
    results: dict[int, int | None] = {}
    gone_since: dict[int, float] = {}
    started = last_query = time.monotonic()
    while pending:
        if interrupt.signum:
            subprocess.run(sched.cancel(job_id), capture_output=True)
            print(f"{sched.prog}: interrupted by signal {interrupt.signum}; cancelled job {job_id}", file=sys.stderr)
            sys.exit(128 + interrupt.signum)
        os.listdir(qdir)  # refreshes a shared file system's view of the directory
        for t in sorted(pending):
            rc = _read_status(status[t])
            if rc is not None:
                results[t] = rc
        pending -= results.keys()
        if not pending:
            break
        now = time.monotonic()
        # The scheduler is asked less often as the wait grows (every 2 s at first, 30 s at most).
        alive = None
        if now - last_query >= min(2 + (now - started) / 30, 30):
            alive = sched.alive(job_id)
            last_query = now
        if alive is not None:
            for t in sorted(pending):
                if t in alive:
                    gone_since.pop(t, None)
                elif now - gone_since.setdefault(t, now) >= grace and _read_status(status[t]) is None:
                    results[t] = None
            pending -= results.keys()
        # Status files are cheap to look at: every 0.2 s at first, every 3 s after a few minutes.
        time.sleep(min(0.2 + (now - started) / 60, 3.0))
    details = {t: f"the scheduler's output is in {stem}.{t}.out" for t, rc in results.items() if rc is None}
    for t, rc in results.items():
        if rc and (first := first_rank_failure(f"{stem}.{t}.failures")):
            details[t] = first
    return report(sched.prog, args, results, details)


def first_rank_failure(path: str) -> str | None:
    """The line to report from the ranks' failure claims (``sid.jobs.rank``): a rank
    killed by a signal is the likelier cause of the others' errors, else the first."""
    try:
        with open(path, encoding="utf-8") as f:
            claims = [line.strip() for line in f if line.strip()]
    except OSError:
        return None
    killed = [c for c in claims if "killed by signal" in c]
    return (killed or claims or [None])[0]


def main(sched: Scheduler, argv: list[str] | None = None) -> int:
    return guarded(sched.prog, lambda: run_array(sched, parse_args(sys.argv[1:] if argv is None else argv,
                                                                    sched.prog)))
