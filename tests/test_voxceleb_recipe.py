"""run.sh stages 0-2 end to end on stand-in VoxCeleb1/2, MUSAN and RIRS_NOISES trees
made from speechocean762: every data dir validates, the trials convert, augmented
features differ from the clean ones, and a rerun changes nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sid.data.table import read_dict

LINKED = ("cmd.sh", "path.sh", "utils", "steps", "local", "conf", "run.sh")


@pytest.fixture(scope="module")
def standin(corpus, repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("standin") / "tree"
    r = subprocess.run([sys.executable, str(repo / "local" / "make_standin_voxceleb.py"), str(corpus), str(out)],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(repo)))
    assert r.returncode == 0, r.stderr
    return out


def recipe_dir(repo: Path, where: Path) -> Path:
    """A recipe folder linking the repository's scripts, as egs/<corpus>/ does."""
    where.mkdir()
    for name in LINKED:
        (where / name).symlink_to(repo / name)
    return where


def run_recipe(where, standin, env, *extra):
    cmd = ["./run.sh", "--voxceleb1-root", standin / "voxceleb1", "--voxceleb2-root", standin / "voxceleb2",
           "--musan-root", standin / "musan", "--rirs-root", standin / "RIRS_NOISES", "--trials-dir",
           standin / "lists", "--nj", "2", *extra]
    return subprocess.run(list(map(str, cmd)), cwd=where, env=env, capture_output=True, text=True)


def snapshot(where: Path) -> dict:
    """Outputs by mtime and size (lock files, which name each run that takes them, left out)."""
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size)
            for top in ("data", "exp", "fbank") for p in (where / top).rglob("*")
            if p.is_file() and not p.name.endswith(".lock")}


def data_dirs(where: Path) -> list[Path]:
    return sorted(p.parent for p in (where / "data").glob("*/utt2spk"))


def validate(d: Path, env) -> None:
    opts = [] if (d / "feats.scp").is_file() else ["--no-feats"]
    r = subprocess.run(["utils/validate_data_dir.sh", *opts, str(d)], cwd=d.parent.parent, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, f"{d}: {r.stdout}{r.stderr}"


def test_kaldi_recipe_stages_0_to_2_and_rerun(standin, repo, tmp_path, sid_env):
    where = recipe_dir(repo, tmp_path / "v2")
    r = run_recipe(where, standin, sid_env, "--vox1-meta", standin / "voxceleb1" / "vox1_meta.csv",
                   "--stop-stage", "2", "--num-aug-utts", "20")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = where / "data"
    made = {d.name for d in data_dirs(where)}
    assert {"voxceleb1_dev", "voxceleb1_test", "voxceleb2_dev", "voxceleb2_test", "train", "train_reverb",
            "train_noise", "train_music", "train_babble", "train_aug", "train_aug_subset", "train_combined",
            "musan_noise", "musan_music", "musan_speech"} <= made
    assert not list(data.glob("*.tmp"))
    for d in data_dirs(where):
        validate(d, sid_env)
    # Kaldi v2 training set: VoxCeleb2 dev + test and VoxCeleb1 dev.
    assert len(read_dict(data / "train" / "utt2spk")) == 12 + 4 + 12
    trials = (data / "voxceleb1_test" / "trials_vox1_O").read_text().splitlines()
    assert len(trials) == 66 and trials[0].split()[2] in ("target", "nontarget")
    assert (data / "voxceleb1_test" / "trials_vox1_O_clean").is_file()
    assert read_dict(data / "voxceleb1_test" / "spk2gender")
    # 20 augmented utterances with features (their recipes applied) plus the clean 28.
    combined = read_dict(data / "train_combined" / "utt2spk")
    assert len(combined) == 48 and len(read_dict(data / "train_combined" / "vad.scp")) == 48
    import kaldiio
    import numpy as np

    aug = dict(kaldiio.load_scp(str(data / "train_aug_subset" / "feats.scp")))
    clean = dict(kaldiio.load_scp(str(data / "train" / "feats.scp")))
    for utt, feats in aug.items():
        src = utt.rsplit("-", 1)[0]
        assert feats.shape == clean[src].shape  # reverb and noise keep the length: the clean VAD applies
        assert np.abs(feats - clean[src]).mean() > 0.05
    # Rerun: every stage is complete, nothing is rewritten.
    before = snapshot(where)
    r = run_recipe(where, standin, sid_env, "--vox1-meta", standin / "voxceleb1" / "vox1_meta.csv",
                   "--stop-stage", "2", "--num-aug-utts", "20")
    assert r.returncode == 0, r.stderr[-3000:]
    assert snapshot(where) == before
    # Stages 3-7 with a tiny model: training features, training, embeddings, back-ends, results.
    config = tmp_path / "tiny.yaml"
    config.write_text((repo / "conf/xvector_small.yaml").read_text().replace("epochs: 6", "epochs: 2")
                      .replace("batch_size: 32", "batch_size: 8")
                      .replace("embed_dim: 64", "embed_dim: 8")  # 28 training vectors: LDA needs few dims
                      .replace("type: xvector", "type: xvector\n  feat_dim: 80"))  # run.sh's fbank80 features
    later = ("--stage", "3", "--config", config, "--min-len", "50", "--min-num-utts", "2", "--lda-dim", "2",
             "--cohort-top-n", "2", "--num-workers", "0")
    r = run_recipe(where, standin, sid_env, *later)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    validate(data / "train_combined_no_sil", sid_env)
    exp = where / "exp" / "tiny"
    assert (exp / "final.pt").is_file()
    assert len(read_dict(exp / "embeddings/voxceleb1_test/xvector.scp")) == len(
        read_dict(data / "voxceleb1_test/utt2spk"))
    import json
    import math

    results = json.loads((exp / "results.json").read_text())
    assert set(results) == {"trials_vox1_O", "trials_vox1_O_clean"}
    assert set(results["trials_vox1_O"]) == {"cosine", "cosine_asnorm", "plda"}
    assert all(math.isfinite(v["eer"]) for v in results["trials_vox1_O"].values())
    assert "EER" in r.stdout
    # A finished recipe reruns as a no-op.
    before = snapshot(where)
    r = run_recipe(where, standin, sid_env, *later)
    assert r.returncode == 0, r.stderr[-3000:]
    changed = {k for k, v in snapshot(where).items() if before.get(k) != v}
    rewritten = sorted(k for k in changed if "/log/" not in k and not k.endswith(".png") and "results" not in k)
    assert not rewritten, rewritten

    # Other options make again what they change and what depends on it, nothing else;
    # unusable ones stop before anything is replaced.
    meta = ("--vox1-meta", standin / "voxceleb1" / "vox1_meta.csv")
    before = snapshot(where)
    r = run_recipe(where, standin, sid_env, *meta, "--mfcc-config", "conf/nope.conf")
    assert r.returncode == 1 and "conf/nope.conf" in r.stderr and snapshot(where) == before
    bad = tmp_path / "bad_mfcc.conf"
    bad.write_text((repo / "conf/mfcc.conf").read_text() + "--num-ceps=thirty\n")
    r = run_recipe(where, standin, sid_env, *meta, "--feat-type", "mfcc", "--mfcc-config", bad)
    assert r.returncode == 1 and str(bad) in r.stderr and snapshot(where) == before

    def made_at(name):
        return (data / name / ".made_by").stat().st_mtime_ns

    reverb, no_sil = made_at("train_reverb"), made_at("train_combined_no_sil")
    r = run_recipe(where, standin, sid_env, *meta, *later[2:], "--stage", "2", "--stop-stage", "4",
                   "--num-aug-utts", "10")
    assert r.returncode == 1   # training stops: its data changed (below)
    assert len(read_dict(data / "train_aug_subset" / "utt2spk")) == 10
    assert len(read_dict(data / "train_combined" / "utt2spk")) == 38
    assert made_at("train_reverb") == reverb and made_at("train_combined_no_sil") > no_sil
    assert set(read_dict(data / "train_combined_no_sil" / "utt2spk")) <= set(read_dict(data / "train_combined" / "utt2spk"))
    log = (exp / "log" / "train_job.log").read_text()
    assert "was started with other settings or data" in log and "train_data.num_utts" in log
    # (MUSAN from another root, the same files: its dirs record the root and are made again.)
    musan2 = tmp_path / "musan2"
    musan2.symlink_to(standin / "musan")
    noise = made_at("train_noise")
    r = run_recipe(where, standin, sid_env, *meta, *later[2:], "--stage", "2", "--stop-stage", "3",
                   "--num-aug-utts", "10", "--aug-seed", "7", "--min-len", "80", "--musan-root", musan2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert made_at("train_reverb") > reverb and "--random-seed 7" in (data / "train_reverb" / ".made_by").read_text()
    assert "80 2 data/train_combined_cmn" in (data / "train_combined_no_sil" / ".made_by").read_text()
    assert (data / "musan_noise" / ".made_by").read_text().strip() == f"local/make_musan.py {musan2}"
    assert made_at("train_noise") > noise and "data/rirs " in (data / "train_reverb" / ".made_by").read_text()
    # Another --min-num-utts redoes the speaker selection (and only that, in stage 3).
    cmn = made_at("train_combined_cmn")
    r = run_recipe(where, standin, sid_env, *meta, *later[2:], "--stage", "3", "--stop-stage", "3",
                   "--min-len", "80", "--min-num-utts", "5", "--musan-root", musan2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert made_at("train_combined_cmn") == cmn
    assert "80 5 data/train_combined_cmn" in (data / "train_combined_no_sil" / ".made_by").read_text()
    counts = {}
    for spk in read_dict(data / "train_combined_no_sil" / "utt2spk").values():
        counts[spk] = counts.get(spk, 0) + 1
    assert counts and min(counts.values()) >= 5
    r = run_recipe(where, standin, sid_env, *meta, "--stage", "1", "--stop-stage", "1", "--feat-type", "mfcc")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in ("train", "voxceleb1_test"):
        assert read_dict(data / name / ".feats_done")["feat_type"] == "mfcc"
        assert (data / name / "conf" / "mfcc.conf").is_file()


def test_two_runs_at_once_on_the_same_dirs(standin, repo, tmp_path, sid_env):
    """A second run.sh started while one runs on the same dirs waits for the first (utils/lock_dirs.sh),
    then finds its work done; with SID_LOCK_WAIT=false it stops at once saying why."""
    import time

    import kaldiio

    where = recipe_dir(repo, tmp_path / "twice")
    cmd = ["./run.sh", "--voxceleb1-root", standin / "voxceleb1", "--voxceleb2-root", standin / "voxceleb2",
           "--trials-dir", standin / "lists", "--nj", "2", "--stop-stage", "1"]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(list(map(str, cmd)), cwd=where, env=sid_env, stdout=log, stderr=subprocess.STDOUT)
    lock = where / ".data.lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.stat().st_size) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    second = subprocess.run(list(map(str, cmd)), cwd=where, env=sid_env, capture_output=True, text=True)
    assert first.wait() == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "is in use by another run" in second.stderr and "waiting for it to end" in second.stderr
    # One complete, uncorrupted result: every data dir validates and every feature matrix reads.
    for d in data_dirs(where):
        validate(d, sid_env)
    for name in ("train", "voxceleb1_test"):
        utts = read_dict(where / "data" / name / "utt2spk")
        feats = dict(kaldiio.load_scp(str(where / "data" / name / "feats.scp")))
        assert set(feats) == set(utts) and all(m.shape[1] == 80 for m in feats.values())
    assert not list((where / "data").glob("*.tmp"))

    holder = subprocess.Popen(["flock", str(lock), "sleep", "60"])
    try:
        while subprocess.run(["flock", "-n", str(lock), "true"]).returncode == 0:
            time.sleep(0.05)
        r = subprocess.run(list(map(str, cmd)), cwd=where, env=dict(sid_env, SID_LOCK_WAIT="false"),
                           capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1 and "is in use by another run" in r.stderr and "SID_LOCK_WAIT=false" in r.stderr


def test_wespeaker_recipe_with_speed_perturbation(standin, repo, tmp_path, sid_env):
    where = recipe_dir(repo, tmp_path / "ws")
    # A config training from features: the Kaldi augmentation path on the WeSpeaker sets.
    r = run_recipe(where, standin, sid_env, "--train-set", "wespeaker", "--speed-perturb", "true",
                   "--vox2-meta", standin / "voxceleb2" / "vox2_meta.csv", "--stop-stage", "2",
                   "--num-aug-utts", "8", "--config", "conf/xvector.yaml")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = where / "data"
    for d in data_dirs(where):
        validate(d, sid_env)
    # WeSpeaker: VoxCeleb2 dev only; VoxCeleb1 (dev + test) for Vox1-E/H.
    assert len(read_dict(data / "train" / "utt2spk")) == 12
    assert read_dict(data / "train" / "spk2gender")
    for name in ("vox1_E", "vox1_E_clean", "vox1_H", "vox1_H_clean"):
        assert (data / "voxceleb1" / f"trials_{name}").stat().st_size > 0
    spks = set(read_dict(data / "train_combined" / "utt2spk").values())
    assert {s for s in spks if s.startswith("sp0.9-")} and {s for s in spks if s.startswith("sp1.1-")}
    assert len(read_dict(data / "train_combined" / "utt2spk")) == 36 + 8
    # Copies of speed-perturbed utterances keep the speed in their recipe.
    aug = read_dict(data / "train_aug" / "utt2aug")
    assert all('"speed":0.9' in rec for utt, rec in aug.items() if utt.startswith("sp0.9-"))


def test_wespeaker_recipe_from_audio_end_to_end(standin, repo, tmp_path, sid_env):
    """--train-set wespeaker with a config training from audio: stage 2 makes only the MUSAN/RIR
    dirs, training augments chunks in the loader, large-margin fine-tuning follows, AS-norm
    scores are QMF-calibrated; a rerun changes nothing."""
    import json

    import yaml

    where = recipe_dir(repo, tmp_path / "wsa")
    cfg = yaml.safe_load((repo / "conf/xvector_small.yaml").read_text())
    cfg["model"].update(feat_dim=80, channels=32, stats_channels=64, embed_dim=8, hidden_dim=16)
    cfg["loss"] = {"type": "aam_softmax", "margin": 0.2, "scale": 30.0}
    cfg["data"].update(source="audio", aug_prob=0.5, speed_perturb="speakers", batch_size=4,
                       min_frames=100, max_frames=150, chunks_per_utt=1)
    cfg["training"].update(epochs=1, num_avg=1)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    cfg["loss"]["margin"] = 0.5
    cfg["data"].update(aug_prob=0.0, min_frames=300, max_frames=300)
    cfg["optim"].update(lr=1e-4, final_lr=2.5e-5, warmup_epochs=0)
    (tmp_path / "tiny_lm.yaml").write_text(yaml.safe_dump(cfg))
    args = ("--train-set", "wespeaker", "--config", tmp_path / "tiny.yaml", "--lm-config", tmp_path / "tiny_lm.yaml",
            "--lda-dim", "2", "--cohort-top-n", "2", "--num-workers", "0")
    r = run_recipe(where, standin, sid_env, *args)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data, exp = where / "data", where / "exp"
    assert (data / "musan_noise" / "wav.scp").is_file() and (data / "rirs" / "smallroom" / "rir_list").is_file()
    assert not (data / "train_combined").exists() and not (data / "train_reverb").exists()
    # Nor features or VAD: training and extraction read the audio.
    assert not any((data / d / f).exists() for d in ("train", "voxceleb1", "voxceleb1_test")
                   for f in ("feats.scp", "vad.scp"))
    log = (exp / "tiny" / "log" / "train.log").read_text()
    assert "Epoch 1:" in log and yaml.safe_load((exp / "tiny" / "config.yaml").read_text())["features"]["type"] == "fbank"
    # Extraction computes the fbank from the test sets' audio as training did (no VAD).
    assert yaml.safe_load((exp / "tiny_lm" / "config.yaml").read_text())["features"]["source"] == "audio"
    assert yaml.safe_load((exp / "tiny" / "config.yaml").read_text())["num_classes"] == 3 * len(
        set(read_dict(data / "train" / "utt2spk").values()))
    lm_log = (exp / "tiny_lm" / "log" / "train.log").read_text()
    assert "Initialised model and head from exp/tiny/final.pt" in lm_log and (exp / "tiny_lm" / "final.pt").is_file()
    results = json.loads((exp / "tiny_lm" / "results.json").read_text())
    assert {"cosine", "cosine_asnorm", "cosine_asnorm_qmf", "plda"} <= set(results["trials_vox1_O"])
    assert "actdcf_0.01" in results["trials_vox1_O"]["cosine_asnorm_qmf"]
    assert (exp / "tiny_lm" / "scores" / "trials_vox1_O.cosine_asnorm_qmf.threshold").is_file()
    before = snapshot(where)
    r = run_recipe(where, standin, sid_env, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    changed = {k for k, v in snapshot(where).items() if before.get(k) != v}
    rewritten = sorted(k for k in changed if "/log/" not in k and not k.endswith(".png") and "results" not in k)
    assert not rewritten, rewritten
