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


def _exp(root, name, config, record, results):
    (root / name / "xvector").mkdir(parents=True)
    (root / name / "xvector" / "config.yaml").write_text(config)
    (root / name / "xvector" / "training.json").write_text(json.dumps(record))
    (root / name / "results.json").write_text(json.dumps({"test": results}))
    return str(root / name)


def test_per_exp_table_one_row_per_exp(tmp_path, sid_env, repo):
    xvector = ("model: {type: xvector}\nfeatures: {type: mfcc, config: '--num-ceps=30', checksum: c, "
               "cmvn_opts: '--norm-vars=false'}\n")
    ge2e = ("frontend: {type: fbank, num_mel_bins: 40}\nmodel: {type: dvector, hidden: 256}\nloss: {type: ge2e}\n"
            "data: {sampler: speaker_balanced, speakers_per_batch: 8, utts_per_speaker: 8, source: audio}\n")
    scores = {"cosine": {"eer": 10.631, "mindcf_0.01": 0.83456, "mindcf_0.001": 0.9},
              "cosine_asnorm": {"eer": 9.5, "mindcf_0.01": 0.85, "mindcf_0.001": 0.9},
              "plda": {"eer": 7.477, "mindcf_0.01": 0.7455, "mindcf_0.001": 0.9},
              "resemblyzer_cosine": {"eer": 4.0, "mindcf_0.01": 0.34}}
    a = _exp(tmp_path, "xvector_small", xvector, {"parameters": 204416, "loss": "softmax", "batch_size": 32,
                                                  "steps": 744, "first_loss": 4.7, "epoch_losses": [4.2, 2.01234],
                                                  "cpu_seconds": 102.0, "commit": "1a2b3c4"}, scores)
    b = _exp(tmp_path, "dvector_small_cpu", ge2e, {"parameters": 1423616, "loss": "ge2e", "batch_size": 64,
                                                   "steps": 200, "first_loss": 2.0791, "epoch_losses": [2.0, 1.5],
                                                   "cpu_seconds": 183.0},
             {k: {**v, "eer": v["eer"] * 2} for k, v in scores.items()})
    doc = tmp_path / "R.md"
    doc.write_text("<!-- results: families -->\n<!-- /results: families -->\n")
    r = run(["--per-exp=true", f"--update={doc}", "--name=families", "--commit=abc", "--date=d", a, b], sid_env, repo)
    assert r.returncode == 0, r.stderr
    assert doc.read_text().splitlines()[1:5] == [
        "| exp | model | input | params | loss | batch | steps | loss: step 1 -> last epoch | train CPU (min) | trained at "
        "| EER cosine | EER cosine + AS-norm | EER LDA + PLDA "
        "| minDCF0.01 cosine | minDCF0.01 cosine + AS-norm | minDCF0.01 LDA + PLDA |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| `xvector_small` | xvector | mfcc (features) | 204,416 | softmax | 32 | 744 | 4.700 -> 2.012 | 1.7 | 1a2b3c4 "
        "| 10.63 | 9.5 | 7.477 | 0.8346 | 0.8500 | 0.7455 |",
        "| `dvector_small_cpu` | dvector | fbank 40 (audio) | 1,423,616 | ge2e | 8 x 8 | 200 | 2.079 -> 1.500 | 3.0 | not recorded "
        "| 21.26 | 19 | 14.95 | 0.8346 | 0.8500 | 0.7455 |"]
    # An exp without the record (trained before it was kept) is named, not skipped.
    (tmp_path / "dvector_small_cpu" / "xvector" / "training.json").unlink()
    r = run(["--per-exp=true", "--commit=abc", "--date=d", a, b], sid_env, repo)
    assert r.returncode == 1 and "dvector_small_cpu/xvector/training.json: cannot read training record" in r.stderr
    # Several files without --per-exp are refused.
    r = run(["--commit=abc", a, b], sid_env, repo)
    assert r.returncode == 1 and "--per-exp=true" in r.stderr
