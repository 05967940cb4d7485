"""sid.bin.results_table: RESULTS.md's tables come from a run's results.json."""

import json
import subprocess
import sys


def run(args, env, repo):
    return subprocess.run([sys.executable, "-m", "sid.bin.results_table", *args], capture_output=True, text=True,
                          env=env, cwd=repo)


def test_tables_replace_the_marked_block(tmp_path, sid_env, repo):
    results = {"test": {"plda": {"eer": 6.2261, "mindcf_0.01": 0.78912, "mindcf_0.001": 0.99, "mindcf_0.05": 0.5,
                                 "num_trials": 8618},
                        "cosine": {"eer": 11.0876, "mindcf_0.01": 0.8, "mindcf_0.001": 0.9, "mindcf_0.05": 0.6,
                                   "num_trials": 8618},
                        "cosine_asnorm": {"eer": 8.9991, "mindcf_0.01": 0.7, "mindcf_0.001": 0.95,
                                          "mindcf_0.05": 0.55, "num_trials": 8618}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    doc = tmp_path / "R.md"
    doc.write_text("intro\n<!-- results: so -->\nold table\n<!-- /results: so -->\noutro\n")
    r = run([f"--update={doc}", "--name=so", "--commit=abc1234", "--date=2026-12-02",
             str(tmp_path / "results.json")], sid_env, repo)
    assert r.returncode == 0, r.stderr
    assert doc.read_text() == (
        "intro\n<!-- results: so -->\n"
        "| back-end | EER (%) | minDCF p=0.01 | minDCF p=0.001 | minDCF p=0.05 |\n"
        "|---|---|---|---|---|\n"
        "| cosine | 11.09 | 0.8000 | 0.9000 | 0.6000 |\n"
        "| cosine + AS-norm | 8.999 | 0.7000 | 0.9500 | 0.5500 |\n"
        "| LDA + PLDA | 6.226 | 0.7891 | 0.9900 | 0.5000 |\n"
        "\nMeasured at commit abc1234 on 2026-12-02.\n<!-- /results: so -->\noutro\n")
    # Printed without --update; the commit defaults to this checkout's.
    r = run([str(tmp_path / "results.json")], sid_env, repo)
    assert r.returncode == 0 and "| LDA + PLDA | 6.226 |" in r.stdout and "Measured at commit " in r.stdout
    doc.write_text("no block here\n")
    r = run([f"--update={doc}", "--name=so", "--commit=x", str(tmp_path / "results.json")], sid_env, repo)
    assert r.returncode == 1 and "no block '<!-- results: so -->'" in r.stderr and doc.read_text() == "no block here\n"


def test_cllr_and_actual_dcf_columns_where_the_run_has_them(tmp_path, sid_env, repo):
    results = {"test": {"cosine": {"eer": 11.34, "mindcf_0.01": 0.82, "cllr": 0.8083, "num_trials": 10},
                        "cosine_asnorm_qmf": {"eer": 10.63, "mindcf_0.01": 0.86, "cllr": 0.4865,
                                              "actdcf_0.01": 0.9507, "num_trials": 10}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    r = run(["--commit=abc", "--date=d", str(tmp_path / "results.json")], sid_env, repo)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:4] == [
        "| back-end | EER (%) | minDCF p=0.01 | Cllr | actDCF p=0.01 |",
        "|---|---|---|---|---|",
        "| cosine | 11.34 | 0.8200 | 0.8083 |  |",
        "| cosine + AS-norm + QMF | 10.63 | 0.8600 | 0.4865 | 0.9507 |"]
