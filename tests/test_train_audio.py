"""Training from audio (sid.train.audio): seeking reads, augmentation at the configured rate,
speed perturbation as new speakers, clean chunks equal to the samples, and kill -9 + rerun
ending with the weights of an uninterrupted run (augmentation on)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from sid.config import DataConfig
from sid.train.audio import (SPEED_FACTORS, AudioChunkDataset, AudioReader, AudioSpan, Augmenter, FbankFrontend,
                             fbank_options, read_audio_training_set, samples_for_frames)
from sid.train.data import plan_epoch

sys.path.insert(0, str(Path(__file__).parent))
from training_data import NUM_AUDIO_SPK as NUM_SPK  # noqa: E402
from training_data import audio_data_dir, kill_after_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def audio_data(corpus, tmp_path_factory):
    return audio_data_dir(corpus, tmp_path_factory.mktemp("audio"))


def _dataset(audio_data, aug_prob=0.0, speed="none", seed=3):
    opts = fbank_options(audio_data["conf"])
    front = FbankFrontend(opts)
    data = read_audio_training_set(audio_data["train"], opts.frame_opts)
    aug = Augmenter.from_config(16000, DataConfig(), [audio_data["rir_list"]], audio_data["noises"]) if aug_prob else None
    ds = AudioChunkDataset(data, seed, front, augmenter=aug, aug_prob=aug_prob, speed_perturb=speed)
    ds.set_plan(0, plan_epoch(data, seed, 0, 8, 100, 300, chunks_per_utt=2))
    return ds


def test_reader_seeks_exact_samples_and_wraps(audio_data):
    wav = dict(line.split(maxsplit=1) for line in (audio_data["train"] / "wav.scp").read_text().splitlines())
    reader = AudioReader({u: AudioSpan(p) for u, p in wav.items()}, 16000)
    for utt in sorted(wav)[:6]:  # wav, flac and ogg
        full = sf.read(wav[utt], dtype="float32")[0] * 32768.0
        assert np.array_equal(reader.read(utt, 1234, 5000), full[1234:6234])
        tail = reader.read(utt, len(full) - 100, 300)
        assert np.array_equal(tail[:100], full[-100:]) and np.array_equal(tail[100:200], full[-100:])
    # A segment: samples [int(start * sr), int(end * sr)) of the recording.
    utt = sorted(wav)[0]
    full = sf.read(wav[utt], dtype="float32")[0] * 32768.0
    seg = AudioReader({"s": AudioSpan(wav[utt], 0.5, 1.0)}, 16000)
    assert np.array_equal(seg.read("s", 0, 8000), full[8000:16000])
    assert np.array_equal(seg.read("s", 7000, 2000)[:1000], full[15000:16000])


def test_clean_chunks_equal_the_samples(audio_data):
    ds = _dataset(audio_data, aug_prob=0.0)
    wav = {u: s.spec for u, s in ds.data.feats.items()}
    opts = ds.frontend.frame_opts
    for b in range(3):
        batch = ds.batches[b]
        need = samples_for_frames(batch.length, opts)
        for j in range(len(batch.utt_index)):
            x, choice = ds.chunk_audio(b, j)
            assert choice.aug is None and choice.speed == 0
            utt = ds.data.utts[batch.utt_index[j]]
            full = sf.read(wav[utt], dtype="float32")[0] * 32768.0
            first = int(batch.start[j]) * opts.window_shift
            piece = full[first:first + need]
            assert np.array_equal(x, np.pad(piece, (0, need - len(piece)), mode="wrap"))
    feats, labels, _ = ds[0]
    assert feats.shape == (8, ds.batches[0].length, 30)
    # Per-chunk mean normalisation.
    assert torch.allclose(feats.mean(dim=1), torch.zeros(8, 30), atol=1e-3)


def test_augmentation_rate_kinds_and_determinism(audio_data):
    ds = _dataset(audio_data, aug_prob=0.4)
    draws = [ds.draw(b, j, 32000) for b in range(len(ds.batches)) for j in range(8)]
    n_aug = sum(d.aug is not None for d in draws)
    n = len(draws)
    # Binomial(n, 0.4) within 4 standard deviations.
    assert abs(n_aug - 0.4 * n) < 4 * np.sqrt(n * 0.4 * 0.6), (n_aug, n)
    kinds = {d.aug["kind"] for d in draws if d.aug}
    assert kinds == {"reverb", "noise", "music", "babble"}
    for d in draws:
        if d.aug and d.aug["kind"] == "babble":
            assert 3 <= len(d.aug["additive"]) <= 7 and all(13 <= a["snr"] <= 20 for a in d.aug["additive"])
        if d.aug and d.aug["kind"] == "noise":
            assert 0 <= d.aug["additive"][0]["snr"] <= 15
    # Augmented chunks differ from the clean ones; the same draw gives the same audio.
    clean = _dataset(audio_data, aug_prob=0.0)
    changed = 0
    for b in range(2):
        for j in range(8):
            x, choice = ds.chunk_audio(b, j)
            y, _ = clean.chunk_audio(b, j)
            if choice.aug is not None:
                assert np.abs(x - y).mean() > 1.0
                changed += 1
            else:
                assert np.array_equal(x, y)
    assert changed > 0
    assert torch.equal(ds[1][0], _dataset(audio_data, aug_prob=0.4)[1][0])


def test_speed_perturbation_as_new_speakers(audio_data):
    ds = _dataset(audio_data, speed="speakers")
    base = _dataset(audio_data)
    num = len(ds.data.spk2id)
    _, labels, _ = ds[0]
    _, clean_labels, _ = base[0]
    speeds = [ds.draw(0, j, 0).speed for j in range(8)]
    assert labels.tolist() == [int(c) + s * num for c, s in zip(clean_labels, speeds)]
    assert set(speeds) == {0, 1, 2} or len(set(speeds)) > 1
    b, j = next((b, j) for b in range(len(ds.batches)) for j in range(8) if ds.draw(b, j, 0).speed == 1)
    x, _ = ds.chunk_audio(b, j)
    y, _ = base.chunk_audio(b, j)
    assert len(x) == len(y) and not np.array_equal(x, y)
    assert SPEED_FACTORS[1] == 0.9


def test_missing_sources_are_clear_errors(audio_data, tmp_path):
    from sid.errors import SidError

    with pytest.raises(SidError, match="--music-dir"):
        Augmenter.from_config(16000, DataConfig(aug_kinds=["music"]), [], {})
    with pytest.raises(SidError, match="rir"):
        Augmenter.from_config(16000, DataConfig(aug_kinds=["reverb"]), [], {})
    with pytest.raises(SidError, match="babble_snr"):
        Augmenter.from_config(16000, DataConfig(babble_snr=[20.0, 13.0]), [audio_data["rir_list"]], audio_data["noises"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "wav.scp").write_text("u1 /x.wav\n")
    (bad / "utt2spk").write_text("u1 s1\n")
    with pytest.raises(SidError, match="utt2dur"):
        read_audio_training_set(bad, fbank_options(audio_data["conf"]).frame_opts)


def test_fbank_on_device_equals_the_workers_fbank(audio_data, tmp_path):
    """data.fbank_on: device: the raw chunks the workers deliver (augmented, speed-perturbed),
    turned into features in batches by torch, equal the per-chunk worker features (SpecAugment's
    masks included; without dither, whose noise comes from another generator)."""
    from sid.config import SpecAugConfig
    from sid.train.audio import BatchFbankFrontend
    from sid.train.specaug import SpecAugment

    conf = tmp_path / "fbank.conf"
    conf.write_text(audio_data["conf"].read_text() + "--dither=0\n")
    opts = fbank_options(conf)
    data = read_audio_training_set(audio_data["train"], opts.frame_opts)
    aug = Augmenter.from_config(16000, DataConfig(), [audio_data["rir_list"]], audio_data["noises"])
    specaug = SpecAugment(SpecAugConfig(prob=1.0))
    plan = plan_epoch(data, 3, 0, 8, 100, 300, chunks_per_utt=2)
    worker = AudioChunkDataset(data, 3, FbankFrontend(opts), specaug, aug, 0.5, "speakers")
    device = AudioChunkDataset(data, 3, BatchFbankFrontend(opts, 3, specaug), None, aug, 0.5, "speakers")
    for ds in (worker, device):
        ds.set_plan(0, plan)
    for b in range(3):
        feats, labels, _ = worker[b]
        samples, raw_labels, _ = device[b]
        assert samples.shape == (8, samples_for_frames(plan[b].length, opts.frame_opts))
        got = device.frontend.features(samples, 0, b)
        assert torch.equal(labels, raw_labels) and got.shape == feats.shape
        assert (feats == 0).any() and torch.equal(got == 0, feats == 0)   # the same masks
        torch.testing.assert_close(got, feats, rtol=1e-4, atol=2e-3)
    # With dither, a pure function of (seed, epoch, batch).
    dithered = BatchFbankFrontend(fbank_options(audio_data["conf"]), 3)
    x = device[0][0]
    assert torch.equal(dithered.features(x, 0, 0), dithered.features(x, 0, 0))
    assert not torch.equal(dithered.features(x, 0, 0), dithered.features(x, 0, 1))


# -- end to end ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def audio_config(repo, tmp_path_factory):
    cfg = yaml.safe_load((repo / "conf" / "xvector_small.yaml").read_text())
    cfg["model"].update(channels=32, stats_channels=64, embed_dim=16, hidden_dim=16)
    cfg["data"].update(source="audio", batch_size=8, min_frames=100, max_frames=150, chunks_per_utt=1,
                       aug_prob=0.5, speed_perturb="speakers")
    cfg["training"].update(epochs=1, num_avg=1)
    path = tmp_path_factory.mktemp("cfg") / "audio.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cmd(cfg, audio_data, exp, *extra):
    n = audio_data["noises"]
    return [sys.executable, "-m", "sid.bin.train_xvector", f"--model-config={cfg}", "--progress=false",
            "--tensorboard=false", f"--fbank-config={audio_data['conf']}", f"--rir-list={audio_data['rir_list']}",
            f"--noise-dir={n['noise']}", f"--music-dir={n['music']}", f"--babble-dir={n['babble']}",
            *extra, str(audio_data["train"]), str(exp)]


def _env(sid_env):
    return {**sid_env, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("fbank_on", ["worker", "device"])
def test_kill9_resume_from_audio_equals_uninterrupted(audio_config, audio_data, sid_env, repo, tmp_path, fbank_on):
    if fbank_on == "device":
        cfg = yaml.safe_load(audio_config.read_text())
        cfg["data"]["fbank_on"] = "device"
        audio_config = tmp_path / "device.yaml"
        audio_config.write_text(yaml.safe_dump(cfg))
    full = tmp_path / "full"
    res = subprocess.run(_cmd(audio_config, audio_data, full, "--num-workers=0", "--write-chunk-lists=true"),
                         env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    saved = yaml.safe_load((full / "config.yaml").read_text())
    assert saved["num_classes"] == 3 * NUM_SPK and saved["features"]["config"] == audio_data["conf"].read_text()
    chunks = (full / "log" / "chunks" / "epoch1.rank0.txt").read_text().splitlines()
    augs = [re.search(r"aug=(\w+)", line).group(1) for line in chunks]
    assert 0 < augs.count("none") < len(augs)

    exp = tmp_path / "killed"
    cmd = _cmd(audio_config, audio_data, exp, "--num-workers=2", "--checkpoint-steps=2")
    kill_after_checkpoint(cmd, _env(sid_env), repo, exp, epoch=1)
    res = subprocess.run(cmd, env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r"Resuming from .*last.pt: epoch 1, batch [1-9]", res.stderr)
    ref = torch.load(full / "final.pt", weights_only=True)
    got = torch.load(exp / "final.pt", weights_only=True)
    for part in ("model", "head"):
        for k, v in ref[part].items():
            assert torch.allclose(got[part][k].float(), v.float(), rtol=1e-5, atol=1e-6), f"{part}.{k} differs"


@pytest.mark.parametrize("frontend", [{"type": "waveform", "frame_samples": 160}, {"type": "vt_mel", "num_mel_bins": 40}])
def test_model_frontend_chunks_are_the_extracted_features(audio_data, frontend):
    """A config's own front-end from audio chunks (ConvGRU's raw waveform rows, voxceleb_trainer's
    log-mel) gives the rows compute_frontend_feats writes for the whole utterance (which
    extraction reads), but for the STFT frames that reach past the chunk's edges."""
    from sid.config import FrontendConfig
    from sid.features.frontends import build_frontend, frontend_features
    from sid.train.audio import ModelFrontend

    cfg = FrontendConfig(**frontend)
    front = ModelFrontend(cfg, cmn=False)
    data = read_audio_training_set(audio_data["train"], front.frame_opts)
    ds = AudioChunkDataset(data, 3, front)
    ds.set_plan(0, plan_epoch(data, 3, 0, 4, 100, 150, chunks_per_utt=1))
    batch = ds.batches[0]
    feats, _, _ = ds[0]
    assert feats.shape == (4, batch.length, front.dim)
    edge = 0 if cfg.type == "waveform" else 3
    for j in range(4):
        utt = ds.data.utts[batch.utt_index[j]]
        full = frontend_features(build_frontend(cfg), sf.read(ds.data.feats[utt].spec, dtype="float32")[0] * 32768.0)
        start = int(batch.start[j])
        rows = full[start:start + batch.length]
        n = min(len(rows), batch.length) - edge   # a chunk past the end wraps the audio round
        np.testing.assert_allclose(feats[j, edge:n].numpy(), rows[edge:n], rtol=1e-4, atol=1e-3)


def test_convgru_trains_from_raw_audio(audio_data, sid_env, repo, tmp_path):
    """A config with a 'frontend' section trains from audio on that front-end (ConvGRU on the raw
    waveform) and records it as steps/make_frontend_feats.sh records its features, so extraction
    accepts exactly those; --fbank-config beside it is refused."""
    from sid.provenance import frontend_text, options_md5

    cfg = yaml.safe_load((repo / "conf" / "convgru_embedder.yaml").read_text())
    cfg["model"].update(conv_channels=16, hidden=16, num_layers=1, embed_dim=8)
    cfg["data"].update(source="audio", speakers_per_batch=4, utts_per_speaker=2, min_frames=50, max_frames=60)
    cfg["training"].update(epochs=1)
    path = tmp_path / "convgru.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "sid.bin.train_xvector", f"--model-config={path}", "--progress=false",
           "--tensorboard=false", "--num-workers=0", str(audio_data["train"])]
    res = subprocess.run(cmd + [str(tmp_path / "exp")], env=_env(sid_env), capture_output=True, text=True, cwd=repo,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    record = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())["features"]
    assert record["type"] == "frontend" and record["checksum"] == options_md5(frontend_text(path))
    res = subprocess.run(cmd[:3] + [f"--fbank-config={audio_data['conf']}"] + cmd[3:] + [str(tmp_path / "exp2")],
                         env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode != 0 and "says what the model reads from audio; drop the option" in res.stderr
    assert "Traceback" not in res.stderr



@pytest.mark.parametrize("cmvn_opts", ["none", ""])
def test_finetuning_from_audio_follows_the_exps_cmvn_opts(audio_data, tmp_path, cmvn_opts):
    """Fine-tuning from audio (--init-model) an exp whose features.cmvn_opts is none (an import
    that normalises by itself: voxceleb_trainer, Resemblyzer) trains on the rows extraction
    computes, nothing subtracted (but for the STFT frames past the chunk's edges), and records
    none; from an exp that subtracts the utterance's mean, each chunk's mean is subtracted."""
    import logging

    from sid.config import FeaturesRecord, load_config, load_finetune_config, parse_config
    from sid.extract import Extractor
    from sid.models import build_model
    from sid.provenance import frontend_record_text, options_md5
    from sid.train import checkpoint
    from sid.train.trainer import TrainOptions, Trainer

    src = tmp_path / "imported"
    src.mkdir()
    cfg = parse_config({"model": {"type": "dvector", "feat_dim": 40, "hidden": 8, "num_layers": 1, "embed_dim": 8},
                        "frontend": {"type": "vt_mel", "num_mel_bins": 40}})
    text = frontend_record_text(cfg.frontend)
    cfg.features = FeaturesRecord("frontend", text, options_md5(text), cmvn_opts, source="audio")
    cfg.dump(src / "config.yaml")
    checkpoint.save_atomic({"model": build_model(cfg.model).state_dict()}, src / "final.pt")
    (tmp_path / "finetune.yaml").write_text(yaml.safe_dump(
        {"loss": {"type": "ge2e"}, "data": {"source": "audio", "sampler": "speaker_balanced", "speakers_per_batch": 2,
                                            "utts_per_speaker": 2, "min_frames": 100, "max_frames": 100}}))
    settings = load_finetune_config(tmp_path / "finetune.yaml", load_config(src / "config.yaml", recorded=True),
                                    str(src / "config.yaml"))
    trainer = Trainer(str(audio_data["train"]), str(tmp_path / "exp"), settings,
                      TrainOptions(num_workers=0, progress=False, tensorboard=False, init_model=str(src)))
    logging.getLogger().removeHandler(trainer._log_handler)
    trainer._log_handler.close()
    assert yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())["features"]["cmvn_opts"] == cmvn_opts
    ds = trainer._dataset(trainer.train_set, trainer.cfg.data, train=True)
    ds.set_plan(0, plan_epoch(trainer.train_set, 3, 0, 4, 100, 100, chunks_per_utt=1))
    batch = ds.batches[0]
    feats = ds[0][0].numpy()
    if cmvn_opts == "":
        np.testing.assert_allclose(feats.mean(axis=1), 0.0, atol=1e-4)
        return
    extractor = Extractor(src, torch.device("cpu"))
    edge, compared = 3, 0
    for j in range(4):
        utt = ds.data.utts[batch.utt_index[j]]
        full = extractor.prepare_audio(utt, sf.read(ds.data.feats[utt].spec, dtype="float32")[0] * 32768.0)
        start = int(batch.start[j])
        if start + batch.length <= len(full):   # (a chunk past the end wraps the audio round)
            np.testing.assert_allclose(feats[j, edge:-edge], full[start + edge:start + batch.length - edge],
                                       rtol=1e-4, atol=1e-3)
            compared += 1
    assert compared
