"""End to end: egs/speechocean762/run.sh on the real shared corpus, reduced
(fewer speakers and epochs), must produce results.json with finite figures
better than chance, the table and the plots; a rerun of the finished recipe
must redo nothing."""

import json
import math
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, repo, corpus):
    work = tmp_path_factory.mktemp("speechocean762")
    cmd = [str(repo / "egs/speechocean762/run.sh"), "--corpus", str(corpus),
           "--data", str(work / "data"), "--exp", str(work / "exp"),
           "--config", "conf/xvector_quick.yaml", "--max-train-speakers", "40",
           "--num-test-speakers", "12", "--lda-dim", "32"]
    # The trials option is exercised with a second copy of the recipe's own list.
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return work, cmd, first


def test_results_better_than_chance(recipe_run):
    work, _, first = recipe_run
    results = json.loads((work / "exp/results.json").read_text())
    assert set(results) == {"test"}
    assert set(results["test"]) == {"cosine", "cosine_asnorm", "cosine_asnorm_qmf", "plda"}
    for backend, figures in results["test"].items():
        for key in ("eer", "mindcf_0.01", "mindcf_0.001", "mindcf_0.05"):
            assert math.isfinite(figures[key]), (backend, key)
        # Chance is 50%; a few epochs on 40 speakers already land far below it.
        assert figures["eer"] < 30, (backend, figures)
        assert figures["mindcf_0.05"] < 1.0, (backend, figures)
        assert figures["num_trials"] > 1000
    assert "EER" in first.stdout
    # QMF-calibrated scores are LLRs: a lower Cllr than raw cosine, and the calibrated
    # threshold's actual DCF near the best (minimum) one.
    qmf = results["test"]["cosine_asnorm_qmf"]
    assert qmf["cllr"] < results["test"]["cosine"]["cllr"]
    assert qmf["actdcf_0.05"] <= 1.1 * qmf["mindcf_0.05"], qmf
    assert "Cllr:" in first.stdout and "actDCF:" in first.stdout
    for png in ("det_test.png", "hist_test_plda.png", "tsne.png"):
        assert (work / "exp" / png).stat().st_size > 10_000, png


def test_rerun_is_a_noop_and_extra_trials_are_scored(recipe_run):
    work, cmd, _ = recipe_run
    model = work / "exp/xvector/final.pt"
    mtime = model.stat().st_mtime_ns
    extra = work / "extra.txt"
    lines = (work / "data/test/test.voxceleb.txt").read_text().splitlines()
    extra.write_text("\n".join(lines[:500]) + "\n")
    again = subprocess.run(cmd + ["--trials", str(extra)], capture_output=True, text=True, cwd=work)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert model.stat().st_mtime_ns == mtime, "finished training was redone"
    results = json.loads((work / "exp/results.json").read_text())
    assert set(results) == {"test", "extra"}
    assert results["extra"]["plda"]["num_trials"] == 500


def test_another_exp_reuses_the_data_stages(recipe_run):
    """The data stages log under --data, not --exp: a run for another model (another --exp, as
    every family of RESULTS.md's table is) keeps the features and VAD made for the first."""
    work, cmd, _ = recipe_run
    arks = sorted((work / "data/mfcc").glob("*.ark"))
    assert arks
    before = {a: a.stat().st_mtime_ns for a in arks}
    other = [str(work / "exp_other") if arg == str(work / "exp") else arg for arg in cmd]
    r = subprocess.run(other + ["--stage", "1", "--stop-stage", "1"], capture_output=True, text=True, cwd=work)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert {a: a.stat().st_mtime_ns for a in arks} == before
    assert "finished before" in r.stdout + r.stderr


def test_trials_naming_unknown_file_fail(tmp_path, recipe_run):
    work, cmd, _ = recipe_run
    bad = tmp_path / "bad.txt"
    bad.write_text("1 WAVE/SPEAKER9999/nope.opus WAVE/SPEAKER9999/nope2.opus\n")
    r = subprocess.run(cmd + ["--stage", "5", "--trials", str(bad)], capture_output=True, text=True, cwd=work)
    assert r.returncode != 0
    assert "WAVE/SPEAKER9999/nope.opus" in r.stderr


def test_figures_do_not_depend_on_the_thread_count(recipe_run):
    """RESULTS.md's figures hold on any machine: the same run from training on (stages 0-2 made
    the same data) with another OMP_NUM_THREADS gives the same results.json, to the last digit.
    (Before the test below, which remakes the training data with another --min-frames.)"""
    work, cmd, _ = recipe_run
    exp = work / "exp_1thread"
    again = [str(exp) if arg == str(work / "exp") else arg for arg in cmd] + ["--stage", "3"]
    r = subprocess.run(again, capture_output=True, text=True, cwd=work, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    one = json.loads((exp / "results.json").read_text())
    two = json.loads((work / "exp/results.json").read_text())
    assert one["test"] == two["test"]


def test_train_source_audio_end_to_end(recipe_run, tmp_path):
    """--train-source audio from stage 3 on the data dirs the run above made: training reads
    chunks of the training audio through the config's front-end (no VAD), extraction the test
    audio, then every back-end scores. A tiny GRU for one epoch of 8 x 2 batches: the plumbing,
    not the accuracy."""
    import yaml

    work, cmd, _ = recipe_run
    cfg = {"frontend": {"type": "fbank", "num_mel_bins": 24},
           "model": {"type": "gru", "feat_dim": 24, "hidden": 16, "num_layers": 1, "embed_dim": 16},
           "loss": {"type": "ge2e"},
           "data": {"sampler": "speaker_balanced", "speakers_per_batch": 8, "utts_per_speaker": 2,
                    "min_frames": 50, "max_frames": 50},
           "optim": {"type": "adam", "lr": 0.01}, "training": {"epochs": 1},
           "extract": {"chunking": "windows", "window_frames": 100, "window_shift": 100}}
    (tmp_path / "gru_tiny.yaml").write_text(yaml.safe_dump(cfg))
    exp = work / "exp_audio"
    again = [str(exp) if arg == str(work / "exp") else arg for arg in cmd]
    again[again.index("--config") + 1] = str(tmp_path / "gru_tiny.yaml")
    r = subprocess.run(again + ["--train-source", "audio", "--lda-dim", "8", "--stage", "3"], capture_output=True,
                       text=True, cwd=work)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    model = yaml.safe_load((exp / "xvector/config.yaml").read_text())
    assert model["data"]["source"] == "audio" and model["features"]["source"] == "audio"
    assert model["features"]["type"] == "frontend" and model["features"]["vad"] is None
    assert model["extract"]["dither"] == 0.0    # (extraction's fbank; training's dithers)
    assert f"{work / 'data/train'} {exp / 'xvector'}" in r.stdout   # the plain data dir's audio
    record = json.loads((exp / "xvector/training.json").read_text())
    assert record["steps"] > 0 and record["loss"] == "ge2e" and record["cpu_seconds"] > 0
    results = json.loads((exp / "results.json").read_text())["test"]
    assert set(results) == {"cosine", "cosine_asnorm", "cosine_asnorm_qmf", "plda"}
    assert all(math.isfinite(v["eer"]) and v["num_trials"] > 1000 for v in results.values())
    # No features of the front-end's were stored: training and extraction read the audio.
    assert not (work / "data/train_fbank24").exists() and not (work / "data/test_fbank24").exists()
    # Without --train-source the config's data.source decides: audio, so stage 1 stores no front-end
    # features; and a config from audio without a front-end of its own stops at once.
    cfg["data"]["source"] = "audio"
    (tmp_path / "gru_audio.yaml").write_text(yaml.safe_dump(cfg))
    again[again.index("--config") + 1] = str(tmp_path / "gru_audio.yaml")
    r = subprocess.run(again + ["--stage", "1", "--stop-stage", "1"], capture_output=True, text=True, cwd=work)
    assert r.returncode == 0 and not (work / "data/train_fbank24").exists(), r.stdout[-2000:] + r.stderr[-2000:]
    again[again.index("--config") + 1] = "conf/ecapa_c512.yaml"
    r = subprocess.run(again + ["--stop-stage", "0"], capture_output=True, text=True, cwd=work)
    assert r.returncode == 1 and "or the config's data.source: audio) needs a config with a 'frontend'" in r.stderr


def test_rerun_with_other_min_frames_redoes_training_features(recipe_run):
    """The training-features marker records --min-frames and the features it read: another
    value makes them again (today's bare marker kept the old ones); training, whose data
    then changed, stops and says so instead of resuming on other data."""
    work, cmd, _ = recipe_run
    no_sil = work / "data/train_no_sil"
    before = len((no_sil / "utt2spk").read_text().splitlines())
    r = subprocess.run(cmd + ["--min-frames", "400", "--stop-stage", "3"], capture_output=True, text=True, cwd=work)
    assert (no_sil / ".done").read_text().split()[0] == "400"
    after = len((no_sil / "utt2spk").read_text().splitlines())
    assert 0 < after < before
    assert r.returncode != 0 and "train_data.num_utts" in r.stdout + r.stderr


def test_training_features_follow_the_vad_the_data_dir_records(recipe_run, tmp_path):
    """Stage 2 keys its marker on the data dir's own VAD record (.vad_done), not on the recipe's
    conf/vad.conf: the VAD made again with other options makes the voiced-frame rows again."""
    work, cmd, _ = recipe_run
    repo_egs = cmd[0].rsplit("/", 1)[0]
    no_sil, train = work / "data/train_no_sil", work / "data/train"
    marker = (no_sil / ".done").read_text()
    frames = (no_sil / "utt2num_frames").read_text()
    vad = tmp_path / "vad.conf"
    vad.write_text("--vad-energy-threshold=8.0\n--vad-energy-mean-scale=0.5\n")
    r = subprocess.run(["steps/compute_vad_decision.sh", "--nj", "2", "--vad-config", str(vad), str(train),
                        str(work / "exp/log/make_vad_other"), str(work / "data/mfcc")],
                       capture_output=True, text=True, cwd=repo_egs)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run(cmd + ["--min-frames", "400", "--stage", "2", "--stop-stage", "2"],
                       capture_output=True, text=True, cwd=work)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (no_sil / ".done").read_text() != marker
    assert (no_sil / "utt2num_frames").read_text() != frames


def test_pretrained_resemblyzer_on_a_tiny_split(tmp_path, repo, corpus):
    """run.sh --pretrained resemblyzer (6 training, 4 held-out speakers): the imported model,
    trained on nothing here, scored with every back-end in rows named after it, far better than
    chance; its calibrated back-end recorded for sid.Embedder; no model trained."""
    from sid.pretrained import resemblyzer_weights

    resemblyzer_weights(install=True)   # as the parity test does (the recipe would install it too)
    cmd = [str(repo / "egs/speechocean762/run.sh"), "--corpus", str(corpus), "--data", str(tmp_path / "data"),
           "--exp", str(tmp_path / "exp"), "--pretrained", "resemblyzer", "--max-train-speakers", "6",
           "--num-test-speakers", "4", "--lda-dim", "4"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "stages 2-3 skipped" in r.stdout
    results = json.loads((tmp_path / "exp/results.json").read_text())["test"]
    assert set(results) == {f"resemblyzer_{b}" for b in ("cosine", "cosine_asnorm", "cosine_asnorm_qmf", "plda")}
    assert results["resemblyzer_cosine"]["eer"] < 10 and results["resemblyzer_cosine"]["num_trials"] > 1000
    backend = (tmp_path / "exp/pretrained_resemblyzer/backend.yaml").read_text()
    assert "kind: cosine_asnorm_qmf" in backend
    assert not (tmp_path / "exp/xvector").exists() and not list((tmp_path / "data").glob("train*_no_sil"))

    # Fine-tuned on the training utterances and their 0.9x and 1.1x copies as new speakers.
    import yaml

    (tmp_path / "ft.yaml").write_text(yaml.safe_dump({
        "loss": {"type": "ge2e"}, "optim": {"type": "adam", "lr": 1e-5},
        "data": {"sampler": "speaker_balanced", "speakers_per_batch": 4, "utts_per_speaker": 2,
                 "min_frames": 140, "max_frames": 160},
        "training": {"epochs": 1, "num_avg": 1, "freeze": ["lstm"], "freeze_epochs": 1, "l2sp": 0.5, "distill": 1.0,
                     "interpolate_init": 0.9}}))
    ft = [*cmd, "--finetune", "true", "--finetune-config", str(tmp_path / "ft.yaml"), "--stop-stage", "3"]
    r = subprocess.run([*ft, "--finetune-speed-perturb", "true"], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    train, sp = tmp_path / "data/train", tmp_path / "data/train_resemblyzer_ft_sp"
    spks = (train / "spk2utt").read_text().split("\n")
    spks = {line.split()[0] for line in spks if line}
    assert {line.split()[0] for line in (sp / "spk2utt").read_text().splitlines()} == \
        {f"{p}{s}" for p in ("", "sp0.9-", "sp1.1-") for s in spks}
    frames = dict(line.split() for line in (sp / "utt2num_frames").read_text().splitlines())
    utts = (train / "utt2spk").read_text().split()[::2]
    # (Resemblyzer's frames end on its partials' grid: slower audio spans at least as many)
    assert all(int(frames[f"sp0.9-{u}"]) >= int(frames[u]) >= int(frames[f"sp1.1-{u}"]) for u in utts)
    assert any(int(frames[f"sp0.9-{u}"]) > int(frames[f"sp1.1-{u}"]) for u in utts)
    from sid.config import load_config

    trained = load_config(tmp_path / "exp/ft_resemblyzer/config.yaml", recorded=True)
    assert trained.train_data.num_speakers == 3 * len(spks) and trained.train_data.num_utts == 3 * len(utts) and (tmp_path / "exp/ft_resemblyzer/final.pt").is_file()
    assert "distillation 1" in (tmp_path / "exp/ft_resemblyzer/log/train.log").read_text()
    # From scratch: the same settings with nothing to start from, so none that needs the import's weights.
    r = subprocess.run([*cmd, "--finetune", "scratch", "--finetune-config", str(tmp_path / "ft.yaml"), "--stop-stage", "3",
                        "--finetune-speed-perturb", "true"],
                       capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    scratch = yaml.safe_load((tmp_path / "exp/scratch_config.yaml").read_text())["training"]
    assert (scratch["freeze"], scratch["freeze_epochs"], scratch["l2sp"], scratch["distill"], scratch["interpolate_init"]) \
        == ([], 0, 0.0, 0.0, 1.0) and scratch["epochs"] == 1
    assert (tmp_path / "exp/scratch_resemblyzer/final.pt").is_file()
    r = subprocess.run([*cmd, "--finetune-speed-perturb", "true"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and "--finetune-speed-perturb goes with --finetune" in r.stderr


def test_dev_speakers_are_training_speakers_held_out(tmp_path, repo, corpus, sid_env):
    """--dev-speakers N: N of the training speakers of the usual split become the held-out set
    (with trials among them) and the test speakers are in neither part; --dev-seed holds out
    others of the same training speakers, --dev-fold K the K-th fold of them."""
    prep = repo / "egs/speechocean762/local/prepare_data.py"
    for name, extra in (("usual", []), ("dev", ["--dev-speakers", "5"]),
                        ("dev2", ["--dev-speakers", "5", "--dev-seed", "1"]),
                        ("devf0", ["--dev-speakers", "5", "--dev-fold", "0"]),
                        ("devf1", ["--dev-speakers", "5", "--dev-fold", "1"])):
        r = subprocess.run([sys.executable, str(prep), "--num-test-speakers", "10", *extra, str(corpus),
                            str(tmp_path / name)], capture_output=True, text=True, env=sid_env)
        assert r.returncode == 0, r.stderr[-2000:]

    def speakers(name, part):
        return {line.split()[0] for line in (tmp_path / name / part / "spk2utt").read_text().splitlines()}

    usual_train, test = speakers("usual", "train"), speakers("usual", "test")
    dev_train, dev = speakers("dev", "train"), speakers("dev", "test")
    assert len(dev) == 5 and dev | dev_train == usual_train and not dev & dev_train and not test & (dev | dev_train)
    trials = (tmp_path / "dev/test/test.voxceleb.txt").read_text().splitlines()
    assert trials and all(p.split("/")[1].removeprefix("SPEAKER") in dev for line in trials for p in line.split()[1:])
    dev2_train, dev2 = speakers("dev2", "train"), speakers("dev2", "test")
    assert len(dev2) == 5 and dev2 != dev and dev2 | dev2_train == usual_train and not dev2 & dev2_train
    # --dev-fold: fold 0 is the --dev-seed split, fold 1 other training speakers, disjoint from it.
    assert speakers("devf0", "test") == dev and speakers("devf0", "train") == dev_train
    devf1 = speakers("devf1", "test")
    assert len(devf1) == 5 and devf1 < usual_train and not devf1 & dev and speakers("devf1", "train") == usual_train - devf1
    folds = len(usual_train) // 5
    r = subprocess.run([sys.executable, str(prep), "--num-test-speakers", "10", "--dev-speakers", "5", "--dev-fold",
                        str(folds), str(corpus), str(tmp_path / "past")], capture_output=True, text=True, env=sid_env)
    assert r.returncode == 1 and f"--dev-fold {folds}: {len(usual_train)} speakers make folds 0-{folds - 1} of 5 " \
        "(--dev-speakers)" in r.stderr


def test_test_folds_partition_the_speakers(tmp_path, repo, corpus, sid_env):
    """--test-fold K: the folds of --num-test-speakers speakers are disjoint, fold 0 is the usual
    held-out set with its trials, each fold's training speakers are all the others; a fold past
    the last is an error naming the range."""
    prep = repo / "egs/speechocean762/local/prepare_data.py"
    all_spks = {line.split()[0] for line in (corpus / "train/spk2utt").read_text().splitlines()}
    n = len(all_spks) // 40
    runs = [("usual", [])] + [(f"f{k}", ["--test-fold", str(k)]) for k in range(n)]
    for name, extra in runs:
        r = subprocess.run([sys.executable, str(prep), "--num-test-speakers", "40", *extra, str(corpus),
                            str(tmp_path / name)], capture_output=True, text=True, env=sid_env)
        assert r.returncode == 0, r.stderr[-2000:]
    folds = []
    for k in range(n):
        test = {line.split()[0] for line in (tmp_path / f"f{k}/test/spk2utt").read_text().splitlines()}
        train = {line.split()[0] for line in (tmp_path / f"f{k}/train/spk2utt").read_text().splitlines()}
        assert len(test) == 40 and test | train == all_spks and not test & train and all(not test & f for f in folds)
        folds.append(test)
    assert (tmp_path / "f0/test/test.voxceleb.txt").read_bytes() == (tmp_path / "usual/test/test.voxceleb.txt").read_bytes()
    assert (tmp_path / "f1/test/test.voxceleb.txt").read_bytes() != (tmp_path / "usual/test/test.voxceleb.txt").read_bytes()
    r = subprocess.run([sys.executable, str(prep), "--num-test-speakers", "40", "--test-fold", str(n), str(corpus),
                        str(tmp_path / "past")], capture_output=True, text=True, env=sid_env)
    assert r.returncode == 1 and f"make folds 0-{n - 1} of 40" in r.stderr
    assert f"--test-fold {n}:" in r.stderr and "(--num-test-speakers)" in r.stderr


THRESHOLD = "0.01 4.595120\n0.05 2.944439\n"   # as steps/score_qmf.sh writes it


def test_pool_folds_concatenates_every_folds_trials_and_scores(tmp_path, repo, sid_env):
    """local/pool_folds.sh: one results.json over the folds' trials, rows named by scores dir
    (scores_x: x_...), equal to the metrics of the concatenated scores; the calibrated threshold
    carried; a fold without a score file the first has is an error naming it, and nothing written."""
    import numpy as np

    from sid.metrics import evaluate

    rng = np.random.default_rng(3)
    scores, labels = {}, []
    for k in range(3):
        data, exp = tmp_path / f"data{k}", tmp_path / f"exp{k}"
        (data / "test/trials").mkdir(parents=True)
        trials = [(f"f{k}u{i}", f"f{k}u{i + 1}", ("target", "nontarget")[i % 3 > 0]) for i in range(60)]
        (data / "test/trials/test").write_text("".join(f"{a} {b} {t}\n" for a, b, t in trials))
        # u(3m) and u(3m+1) are one speaker, u(3m+2) one of its own: the labels above.
        (data / "test/utt2spk").write_text("".join(f"f{k}u{i} f{k}{f's{i // 3}' if i % 3 < 2 else f'x{i}'}\n"
                                                   for i in range(61)))
        labels += [t == "target" for _, _, t in trials]
        for s, backends in (("scores", ("cosine",)), ("scores_x", ("cosine", "cosine_qmf"))):
            (exp / s).mkdir(parents=True)
            for b in backends:
                v = rng.normal(size=len(trials)) + 2.0 * np.array([t == "target" for _, _, t in trials])
                scores.setdefault(f"{s}/{b}", []).extend(v)
                (exp / s / f"test.{b}.score").write_text("".join(f"{a} {c} {x:.6f}\n" for (a, c, _), x in zip(trials, v)))
            if s == "scores_x":
                (exp / s / "test.cosine_qmf.threshold").write_text(THRESHOLD)
    pool = repo / "egs/speechocean762/local/pool_folds.sh"
    args = [str(p) for k in range(3) for p in (tmp_path / f"data{k}", tmp_path / f"exp{k}")]
    r = subprocess.run([str(pool), str(tmp_path / "pooled"), *args], capture_output=True, text=True, env=sid_env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    results = json.loads((tmp_path / "pooled/results.json").read_text())["test"]
    assert set(results) == {"cosine", "x_cosine", "x_cosine_qmf"}
    for row, key in (("cosine", "scores/cosine"), ("x_cosine", "scores_x/cosine"), ("x_cosine_qmf", "scores_x/cosine_qmf")):
        want = evaluate(np.round(np.array(scores[key]), 6), np.array(labels))
        assert results[row]["num_trials"] == 180 and math.isclose(results[row]["eer"], want["eer"], rel_tol=1e-6)
    assert "actdcf_0.01" in results["x_cosine_qmf"] and "actdcf_0.01" not in results["x_cosine"]
    assert (tmp_path / "pooled/utt2spk").read_text() == "".join((tmp_path / f"data{k}/test/utt2spk").read_text()
                                                                 for k in range(3))
    pooled = tmp_path / "pooled"
    r = subprocess.run([sys.executable, "-m", "sid.bin.compare_scores", "--num-resamples=20", str(pooled / "trials/test"),
                        str(pooled / "utt2spk"), str(pooled / "scores/test.cosine.score"),
                        str(pooled / "scores_x/test.cosine.score")], capture_output=True, text=True, env=sid_env)
    assert r.returncode == 0 and "180 trials (60 target) of 123 speakers" in r.stdout, r.stderr
    (tmp_path / "exp2/scores_x/test.cosine.score").unlink()
    r = subprocess.run([str(pool), str(tmp_path / "pooled2"), *args], capture_output=True, text=True, env=sid_env)
    assert r.returncode == 1 and f"{tmp_path}/exp2/scores_x/test.cosine.score is missing" in r.stderr
    assert not (tmp_path / "pooled2").exists()
