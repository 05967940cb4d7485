"""Job runners: run.pl locally; queue.pl against a fake qsub/qstat (always) and a
real Grid Engine (tools/start_sge.sh starts a one-node one); slurm.pl against a
real Slurm (tools/start_slurm.sh). The real-cluster tests skip, saying why,
where `qsub`/`sbatch` is absent or no queue/node answers.
In every runner a job array where one job fails must name exactly that job's log."""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sid.jobs.cluster import DEFAULT_QUEUE_CONF, DEFAULT_SLURM_CONF, Config, GridEngine, Slurm
from sid.jobs.common import JobsError, parse_args, quote_command

REPO = Path(__file__).resolve().parent.parent


def runner(name, args, cwd, env, timeout=60):
    return subprocess.run([str(REPO / "utils" / name), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def failed_jobs(stderr, prog):
    """Job numbers the runner reported as failed, with the log each line names."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(rf"^{re.escape(prog)}: job (\d+) failed .*?log is in (\S+?);?(?: |$)",
                                                              stderr, re.M)}


def check_logs(tmp, n, failed, host=False):
    for j in range(1, n + 1):
        text = (tmp / f"log/x.{j}.log").read_text()
        lines = text.splitlines()
        assert lines[0] == f"# echo job {j} ; test {j} != 3", text
        assert lines[1].startswith("# Started at ")
        assert (lines[2].startswith("# Running on ")) == host
        assert f"job {j}" in lines
        assert re.match(r"# Accounting: time=\d+ threads=1$", lines[-2]), text
        code = 1 if j in failed else 0
        assert re.match(rf"# Ended \(code {code}\) at .*, elapsed time \d+ seconds$", lines[-1]), text


# ---------------------------------------------------------------- parsing


def test_quote_command_like_kaldi():
    assert quote_command(["echo", "a  b", "|", "wc", "-l"]) == 'echo "a  b" | wc -l'
    assert quote_command(["sh", "-c", 'echo "x y"', ""]) == "sh -c 'echo \"x y\"' \"\""


def test_parse_args_forms():
    a = parse_args(["--mem", "4G", "SPLIT=2:5", "--num-threads=3", "-tc", "2", "log/a.SPLIT.log", "cmd", "SPLIT"], "run.pl")
    assert (a.jobname, a.start, a.end) == ("SPLIT", 2, 5)
    assert a.options == {"mem": "4G", "num_threads": "3", "max_jobs_run": "2"}
    assert a.log_for(4) == "log/a.4.log" and a.command_for(4) == "cmd 4"
    a = parse_args(["-l", "h=node1", "-pe", "smp", "4", "JOB=7", "log/b.JOB.log", "true"], "queue.pl")
    assert a.raw_opts == ["-l", "h=node1", "-pe", "smp", "4"] and a.options == {"num_threads": "4"}
    assert list(a.tasks) == [7] and a.log_for(7) == "log/b.7.log"
    a = parse_args(["log/c.log", "echo", "JOB"], "run.pl")
    assert a.jobname is None and a.command_for(1) == "echo JOB"
    with pytest.raises(JobsError, match="all write one log file"):
        parse_args(["JOB=1:2", "log/one.log", "true"], "run.pl")
    with pytest.raises(JobsError, match="numbered from 1"):
        parse_args(["JOB=0:2", "log/x.JOB.log", "true"], "run.pl")
    with pytest.raises(JobsError, match="neither a job range"):
        parse_args(["JOB=1-3", "log/x.JOB.log", "true"], "run.pl")
    with pytest.raises(JobsError, match="start > end"):
        parse_args(["JOB=3:2", "log/x.JOB.log", "true"], "run.pl")
    with pytest.raises(JobsError, match="--max-jobs-run 0"):
        parse_args(["--max-jobs-run", "0", "log/x.log", "true"], "run.pl").int_option("max_jobs_run", 1, 1)


def test_config_kaldi_semantics(tmp_path):
    conf = Config.parse("command qsub -q all.q  # the queue\n"
                        "option mem=* -l mem_free=$0\noption mem=0\n"
                        "default gpu=0\noption gpu=0 -q cpu.q\noption gpu=* -l gpu=$0\n", "my.conf")
    assert conf.command == ["qsub", "-q", "all.q"]
    assert conf.scheduler_args({"mem": "2G"}, set()) == ["-l", "mem_free=2G", "-q", "cpu.q"]
    assert conf.scheduler_args({"mem": "0", "gpu": "2"}, set()) == ["-l", "gpu=2"]
    with pytest.raises(JobsError, match=r"--num-threads 2 is not described in my.conf"):
        conf.scheduler_args({"num_threads": "2"}, set())
    with pytest.raises(JobsError, match=r"my.conf:2: cannot parse 'opt mem=1'"):
        Config.parse("command sbatch\nopt mem=1\n", "my.conf")
    with pytest.raises(JobsError, match=r"needs \$0"):
        Config.parse("command sbatch\noption mem=* --mem\n", "my.conf")


def test_conf_files_match_builtin_defaults():
    for name, default in (("slurm.conf", DEFAULT_SLURM_CONF), ("queue.conf", DEFAULT_QUEUE_CONF)):
        path = REPO / "conf" / name
        got = Config.parse(path.read_text(), str(path))
        want = Config.parse(default, "default")
        assert (got.command, got.wildcard, got.exact, got.defaults) == \
               (want.command, want.wildcard, want.exact, want.defaults), name


def test_submit_command_lines():
    args = parse_args(["--mem", "4G", "--num-threads", "2", "--gpu", "1", "--time", "1:00:00", "--max-jobs-run", "3",
                       "JOB=1:8", "exp/log/extract.JOB.log", "true"], "slurm.pl")
    conf = Config.parse(DEFAULT_SLURM_CONF, "default")
    argv = Slurm().submit_args(conf, args, "extract", "/q/extract")
    assert argv[:4] == ["sbatch", "--export=PATH", "--ntasks-per-node=1", "--mem-per-cpu"]
    for want in (["--mem-per-cpu", "4G"], ["--cpus-per-task", "2"], ["--gres=gpu:1"], ["--time", "1:00:00"],
                 ["--array=1-8%3"], ["--output=/q/extract.%a.out", "/q/extract.sh"]):
        assert any(argv[i:i + len(want)] == want for i in range(len(argv))), (want, argv)
    conf = Config.parse(DEFAULT_QUEUE_CONF, "default")
    argv = GridEngine().submit_args(conf, args, "extract", "/q/extract")
    for want in (["-l", "mem_free=4G,ram_free=4G"], ["-pe", "smp", "2"], ["-tc", "3"], ["-t", "1:8"],
                 ["-o", "/q/extract.$TASK_ID.out"]):
        assert any(argv[i:i + len(want)] == want for i in range(len(argv))), (want, argv)
    assert argv[-1] == "/q/extract.sh"


# ---------------------------------------------------------------- run.pl

ARRAY = ["JOB=1:4", "log/x.JOB.log", "echo", "job", "JOB", ";", "test", "JOB", "!=", "3"]


def test_run_pl_array_reports_exactly_the_failed_job(tmp_path, sid_env):
    res = runner("run.pl", ["--mem", "2G", "--max-jobs-run", "2", *ARRAY], tmp_path, sid_env)
    assert res.returncode == 1
    assert failed_jobs(res.stderr, "run.pl") == {3: "log/x.3.log"}
    assert "run.pl: 1 / 4 failed, log is in log/x.*.log" in res.stderr
    check_logs(tmp_path, 4, {3})
    res = runner("run.pl", ["JOB=2", "log/x.JOB.log", "false"], tmp_path, sid_env)
    assert res.returncode == 1 and "run.pl: job 2 failed (exit code 1), log is in log/x.2.log" in res.stderr


def test_run_pl_pipes_quoting_and_job_name(tmp_path, sid_env):
    res = runner("run.pl", ["SPLIT=1:2", "log/p.SPLIT.log", "echo", "a  b", "SPLIT", "|", "tr", "a-z", "A-Z"],
                 tmp_path, sid_env)
    assert res.returncode == 0, res.stderr
    assert "\nA  B 2\n" in (tmp_path / "log/p.2.log").read_text()
    assert (tmp_path / "log/p.2.log").read_text().startswith('# echo "a  b" 2 | tr a-z A-Z\n')
    # A job fails when any command of its pipe fails, not only the last one.
    res = runner("run.pl", ["JOB=1:2", "log/f.JOB.log", "test", "JOB", "=", "1", "|", "cat"], tmp_path, sid_env)
    assert res.returncode == 1 and failed_jobs(res.stderr, "run.pl") == {2: "log/f.2.log"}


def test_run_pl_max_jobs_run(tmp_path, sid_env):
    # Each job holds a lock directory for a while; two at once would fail the mkdir.
    res = runner("run.pl", ["--max-jobs-run", "1", "JOB=1:3", "log/m.JOB.log",
                            "mkdir", "lock", "&&", "sleep", "0.2", "&&", "rmdir", "lock"], tmp_path, sid_env)
    assert res.returncode == 0, res.stderr


def test_run_pl_usage_errors(tmp_path, sid_env):
    res = runner("run.pl", ["JOB=1:2", "log/one.log", "true"], tmp_path, sid_env)
    assert res.returncode == 1 and "put JOB in its name" in res.stderr
    assert not (tmp_path / "log").exists()


def test_run_pl_sigterm_kills_the_jobs(tmp_path, sid_env):
    proc = subprocess.Popen([str(REPO / "utils" / "run.pl"), "JOB=1:2", "log/s.JOB.log",
                             "echo", "$$", ">", "pid.JOB", ";", "exec", "sleep", "60"],
                            cwd=tmp_path, env=sid_env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while not all((tmp_path / f"pid.{j}").is_file() and (tmp_path / f"pid.{j}").read_text().strip()
                      for j in (1, 2)):
            assert time.time() < deadline, "jobs did not start"
            time.sleep(0.05)
        pids = [int((tmp_path / f"pid.{j}").read_text()) for j in (1, 2)]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by signal 15" in err
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for j in (1, 2):
        assert "# Ended (code 143; signal 15)" in (tmp_path / f"log/s.{j}.log").read_text()


# ---------------------------------------------------------------- queue.pl, fake Grid Engine

FAKE_QSUB = r"""#!/usr/bin/env bash
# Fake qsub: records its arguments, runs the array tasks here one by one
# (skipping those in $FAKE_SGE_SKIP, as if the scheduler killed them).
echo "$*" > "$FAKE_SGE_DIR/qsub.args"
args=("$@"); script=${args[-1]}
for ((i = 0; i < ${#args[@]} - 1; i++)); do
  case ${args[i]} in -t) range=${args[i+1]};; -o) out=${args[i+1]};; esac
done
for ((k = ${range%:*}; k <= ${range#*:}; k++)); do
  case " $FAKE_SGE_SKIP " in *" $k "*) continue;; esac
  SGE_TASK_ID=$k bash "$script" > "${out//\$TASK_ID/$k}" 2>&1
done
echo "Your job-array 4242.${range}:1 (\"x\") has been submitted"
"""
FAKE_QSTAT = """#!/usr/bin/env bash
# Fake qstat -g d: the fake qsub has run every task already, so none is listed.
echo "job-ID  prior   name       user         state submit/start at     queue    slots ja-task-ID"
echo "------------------------------------------------------------------------------------------"
"""


@pytest.fixture()
def fake_sge(tmp_path, sid_env):
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    for name, text in (("qsub", FAKE_QSUB), ("qstat", FAKE_QSTAT)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    env = dict(sid_env, PATH=f"{bindir}:{sid_env['PATH']}", FAKE_SGE_DIR=str(bindir))
    return env


def test_queue_pl_fake_sge_reports_exactly_the_failed_job(tmp_path, fake_sge):
    res = runner("queue.pl", ["--mem", "2G", "--max-jobs-run", "2", *ARRAY], tmp_path, fake_sge)
    assert res.returncode == 1, res.stderr
    assert failed_jobs(res.stderr, "queue.pl") == {3: "log/x.3.log"}
    qsub = (tmp_path / "fakebin/qsub.args").read_text()
    for want in ("-l mem_free=2G,ram_free=2G", "-tc 2", "-t 1:4", "-N x", "-S /bin/bash"):
        assert want in qsub, qsub
    check_logs(tmp_path, 4, {3}, host=True)


def test_queue_pl_reports_a_task_that_vanished(tmp_path, fake_sge):
    env = dict(fake_sge, FAKE_SGE_SKIP="2", SID_JOBS_GRACE="0")
    res = runner("queue.pl", ["JOB=1:3", "log/v.JOB.log", "true"], tmp_path, env, timeout=60)
    assert res.returncode == 1
    assert failed_jobs(res.stderr, "queue.pl") == {2: "log/v.2.log"}
    assert "vanished from the queue" in res.stderr and "log/q/v.2.out" in res.stderr


# ---------------------------------------------------------------- queue.pl, real Grid Engine

# Kaldi's default asks for ram_free, a complex each site defines; a fresh Grid Engine has only mem_free.
SGE_CONF = """command qsub -v PATH -cwd -S /bin/bash -j y -l arch=*64*
option mem=* -l mem_free=$0
option mem=0
option num_threads=* -pe smp $0
option num_threads=1
default gpu=0
option gpu=0
"""


@pytest.fixture(scope="module")
def sge():
    if shutil.which("qsub") is None:
        pytest.skip("qsub not on PATH: no Grid Engine here (tools/start_sge.sh installs and starts one, as root)")
    try:
        res = subprocess.run(["qstat", "-f", "-q", "all.q"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.skip("qstat did not answer within 10 s: no qmaster running (tools/start_sge.sh)")
    if not any(line.startswith("all.q@") and len(line.split()) == 5 for line in res.stdout.splitlines()):
        pytest.skip(f"Grid Engine queue all.q is not ready (qstat: {(res.stdout + res.stderr).strip()[-200:]!r}); "
                    "start one with tools/start_sge.sh")


def test_queue_pl_real_sge_reports_exactly_the_failed_job(tmp_path, sid_env, sge):
    (tmp_path / "sge.conf").write_text(SGE_CONF)
    res = runner("queue.pl", ["--config", "sge.conf", "--mem", "50M", "--max-jobs-run", "4", *ARRAY], tmp_path, sid_env)
    assert res.returncode == 1, res.stderr
    assert failed_jobs(res.stderr, "queue.pl") == {3: "log/x.3.log"}
    check_logs(tmp_path, 4, {3}, host=True)


def test_queue_pl_real_sge_reports_a_task_killed_without_status(tmp_path, sid_env, sge):
    (tmp_path / "sge.conf").write_text(SGE_CONF)
    check_task_killed_without_status("queue.pl", ["--config", "sge.conf"], tmp_path, sid_env)


# ---------------------------------------------------------------- slurm.pl, real Slurm


@pytest.fixture(scope="module")
def slurm():
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch not on PATH: no Slurm here (tools/start_slurm.sh installs and starts one, as root)")
    try:
        states = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.skip("sinfo did not answer within 10 s: no Slurm controller running (tools/start_slurm.sh)")
    if not re.search(r"^(idle|mixed|allocated|completing)", states.stdout, re.M):
        pytest.skip(f"no Slurm node ready to run jobs (sinfo: {(states.stdout + states.stderr).strip()!r}); "
                    "start one with tools/start_slurm.sh")


def test_slurm_pl_array_reports_exactly_the_failed_job(tmp_path, sid_env, slurm):
    # The jobs import sid: the job script must carry the submitter's PYTHONPATH and venv.
    args = ["--config", str(REPO / "conf/slurm.conf"), "--mem", "50M", "--num-threads", "1", "--time", "5",
            "--max-jobs-run", "4", *ARRAY, "&&", "python", "-c", "import sid.jobs"]
    res = runner("slurm.pl", args, tmp_path, sid_env)
    assert res.returncode == 1, res.stderr
    assert failed_jobs(res.stderr, "slurm.pl") == {3: "log/x.3.log"}
    assert "slurm.pl: 1 / 4 failed, log is in log/x.*.log" in res.stderr
    for j in (1, 2, 4):
        text = (tmp_path / f"log/x.{j}.log").read_text()
        assert "# Running on " in text and "# Ended (code 0)" in text, text
    assert "# Ended (code 1)" in (tmp_path / "log/x.3.log").read_text()


def check_task_killed_without_status(prog, opts, tmp_path, env):
    """Job 2 SIGKILLs its task process on the node (as the OOM killer would): it
    writes no status, leaves the queue, and must still be reported."""
    (tmp_path / "die.sh").write_text(
        "#!/usr/bin/env bash\np=$PPID\n"
        "while [ $p -gt 1 ] && ! grep -q sid.jobs.task /proc/$p/cmdline; do p=$(awk '{print $4}' /proc/$p/stat); done\n"
        "[ $p -gt 1 ] && kill -9 $p\n")
    (tmp_path / "die.sh").chmod(0o755)
    res = runner(prog, [*opts, "JOB=1:3", "log/k.JOB.log", "test", "JOB", "!=", "2", "||", "./die.sh"],
                 tmp_path, dict(env, SID_JOBS_GRACE="0"))
    assert res.returncode == 1, res.stderr
    assert failed_jobs(res.stderr, prog) == {2: "log/k.2.log"}
    assert "vanished from the queue" in res.stderr and "log/q/k.2.out" in res.stderr


def test_slurm_pl_reports_a_task_killed_without_status(tmp_path, sid_env, slurm):
    check_task_killed_without_status("slurm.pl", [], tmp_path, sid_env)


def test_cmd_sh_picks_the_runner_in_one_place(tmp_path, sid_env):
    script = f". {REPO}/cmd.sh; echo \"$train_cmd|$cuda_cmd\"; $train_cmd JOB=1:2 log/c.JOB.log echo JOB"
    res = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=sid_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[0] == "run.pl --mem 4G|run.pl --mem 8G --gpu 1"
    assert "\n2\n" in (tmp_path / "log/c.2.log").read_text()
    res = subprocess.run(["bash", "-c", f". {REPO}/cmd.sh; echo $train_cmd"], env=dict(sid_env, SID_RUNNER="slurm.pl"),
                         capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "slurm.pl --mem 4G"


def test_slurm_pl_ctrl_c_cancels_the_job(tmp_path, sid_env, slurm):
    proc = subprocess.Popen([str(REPO / "utils" / "slurm.pl"), "JOB=1:2", "log/c.JOB.log", "sleep", "60"],
                            cwd=tmp_path, env=sid_env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 40
        while not (tmp_path / "log/c.1.log").exists():
            assert time.time() < deadline, "job 1 did not start"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    job = re.search(r"cancelled job (\d+)", err).group(1)
    deadline = time.time() + 20
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        assert time.time() < deadline, f"job {job} still queued after Ctrl-C"
        time.sleep(0.5)
