"""Units of the training package: epoch plans, sharding, held-out split, SpecAugment,
LR schedule, checkpoint averaging and RNG state, L2-SP's penalty, data-dir errors."""

from __future__ import annotations

import random

import kaldiio
import numpy as np
import pytest
import torch

from sid.config import SpecAugConfig, parse_config
from sid.errors import DataDirError, DiskFullError, SidError
from sid.train import checkpoint
from sid.train.data import (ChunkDataset, ShardSampler, TrainingSet, plan_epoch, plan_epoch_balanced, read_training_set,
                            split_validation)
from sid.train.schedule import LRSchedule
from sid.train.specaug import SpecAugment
from sid.train.trainer import l2sp_penalty


@pytest.fixture()
def data_dir(tmp_path):
    rng = np.random.default_rng(0)
    feats = {f"s{s}-u{u}": rng.standard_normal((40 + 7 * u, 5)).astype(np.float32) for s in range(4) for u in range(5)}
    kaldiio.save_ark(str(tmp_path / "feats.ark"), feats, scp=str(tmp_path / "feats.scp"))
    (tmp_path / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in sorted(feats)))
    return tmp_path


def test_plan_is_a_function_of_seed_and_epoch(data_dir):
    data = read_training_set(data_dir)
    assert data.spk2id == {"s0": 0, "s1": 1, "s2": 2, "s3": 3}
    a = plan_epoch(data, 7, 3, 4, 30, 60, chunks_per_utt=2)
    b = plan_epoch(data, 7, 3, 4, 30, 60, chunks_per_utt=2)
    c = plan_epoch(data, 7, 4, 4, 30, 60, chunks_per_utt=2)
    assert [(x.length, x.utt_index.tolist(), x.start.tolist()) for x in a] == \
        [(x.length, x.utt_index.tolist(), x.start.tolist()) for x in b]
    assert [x.utt_index.tolist() for x in a] != [x.utt_index.tolist() for x in c]
    assert len(a) == 10   # 20 utterances x 2 chunks / batch 4
    counts = np.bincount(np.concatenate([x.utt_index for x in a]))
    assert counts.tolist() == [2] * 20
    for x in a:
        assert 30 <= x.length <= 60
        assert np.all(x.start + x.length <= np.maximum(data.lengths[x.utt_index], x.length))
    # Three ranks: the count is cut to a multiple of 3.
    assert len(plan_epoch(data, 7, 3, 4, 30, 60, chunks_per_utt=2, world_size=3)) == 9


def _uneven_set() -> TrainingSet:
    """7 speakers with 9, 8, 7, 6, 5, 4 and 1 utterances of 50..90 frames."""
    counts = [9, 8, 7, 6, 5, 4, 1]
    labels = np.repeat(np.arange(len(counts)), counts)
    utts = [f"u{i}" for i in range(len(labels))]
    lengths = 50 + (np.arange(len(labels)) * 7) % 41
    return TrainingSet(utts, {u: "" for u in utts}, labels, lengths, {f"s{i}": i for i in range(len(counts))})


def test_speaker_balanced_plan_covers_each_speaker_as_planned():
    data = _uneven_set()
    n, m = 3, 2
    plan = plan_epoch_balanced(data, 5, 0, n, m, 30, 60)
    # Groups of 2 per speaker: 4, 4, 3, 3, 2, 2, 0 = 18 groups = 6 batches of 3 speakers, all used.
    assert len(plan) == 6
    rows = np.concatenate([b.utt_index for b in plan])
    assert len(rows) == len(set(rows.tolist()))              # without replacement
    spk_counts = np.bincount(data.labels[rows], minlength=7) // m
    assert spk_counts.tolist() == [c // m for c in (9, 8, 7, 6, 5, 4, 1)]
    for b in plan:
        lab = data.labels[b.utt_index].reshape(n, m)
        assert (lab == lab[:, :1]).all() and len(set(lab[:, 0].tolist())) == n   # N distinct speakers x M
        assert 30 <= b.length <= 60
        assert np.all(b.start + b.length <= np.maximum(data.lengths[b.utt_index], b.length))
    same = plan_epoch_balanced(data, 5, 0, n, m, 30, 60)
    assert all(np.array_equal(a.utt_index, b.utt_index) and np.array_equal(a.start, b.start) and a.length == b.length
               for a, b in zip(plan, same))
    other = plan_epoch_balanced(data, 5, 1, n, m, 30, 60)
    assert [b.utt_index.tolist() for b in other] != [b.utt_index.tolist() for b in plan]
    assert len(other) == len(plan)                           # the same number of steps every epoch
    # Two ranks take disjoint halves of an even count; four ranks cut it to a multiple of 4.
    assert len(plan_epoch_balanced(data, 5, 0, n, m, 30, 60, world_size=4)) == 4


def test_speaker_balanced_plan_leaves_out_what_cannot_fill_a_batch():
    data = _uneven_set()
    plan = plan_epoch_balanced(data, 3, 0, 4, 3, 30, 60)
    # Groups of 3: 3, 2, 2, 2, 1, 1, 0 = 11; batches of 4 distinct speakers: 2 (8 groups), 3 left over.
    assert len(plan) == 2
    spk = [set(data.labels[b.utt_index].tolist()) for b in plan]
    assert all(len(s) == 4 for s in spk) and 0 in spk[0] and 0 in spk[1]   # the richest speaker is always drawn


def test_shard_sampler_disjoint_and_resumable():
    r0, r1 = list(ShardSampler(10, 0, 2)), list(ShardSampler(10, 1, 2))
    assert r0 == [0, 2, 4, 6, 8] and r1 == [1, 3, 5, 7, 9]
    assert list(ShardSampler(10, 1, 2, start=3)) == [7, 9]


def test_dataset_batches_and_wrap_padding(data_dir):
    data = read_training_set(data_dir)
    ds = ChunkDataset(data, seed=1, specaug=SpecAugment(SpecAugConfig(prob=1.0, freq_width=2, time_width=5)))
    ds.set_plan(0, plan_epoch(data, 1, 0, 4, 60, 80))
    x, y, b = ds[2]
    assert b == 2 and x.shape[0] == 4 and x.shape[2] == 5 and x.dtype == torch.float32
    assert torch.equal(x, ds[2][0])   # masks are a function of (seed, epoch, batch)
    short = data.utts.index("s0-u0")   # 40 frames, chunk of 60: repeated
    piece = ds.chunk(short, 0, 60)
    assert np.array_equal(piece[40:], piece[:20])


def test_split_validation_keeps_every_speaker(data_dir):
    data = read_training_set(data_dir)
    train, valid = split_validation(data, 6, seed=3)
    assert len(valid.utts) == 6 and len(train.utts) == 14
    assert not set(train.utts) & set(valid.utts)
    assert set(train.labels.tolist()) == {0, 1, 2, 3}
    assert split_validation(data, 0, 3)[1] is None


def test_specaug_masks_bands_and_spans():
    x = np.ones((8, 50, 20), dtype=np.float32)
    SpecAugment(SpecAugConfig(freq_masks=1, freq_width=4, time_masks=1, time_width=10, prob=1.0))(x, np.random.default_rng(0))
    assert (x == 0).any()
    for chunk in x:
        zero_cols = np.all(chunk == 0, axis=0).sum()
        zero_rows = np.all(chunk == 0, axis=1).sum()
        assert zero_cols <= 4 and zero_rows <= 10
    y = np.ones((2, 50, 20), dtype=np.float32)
    SpecAugment(SpecAugConfig(prob=0.0))(y, np.random.default_rng(0))
    assert (y == 1).all()


def test_l2sp_pulls_towards_the_initial_weights_not_zero():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    init = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    net[0].weight.requires_grad_(False)   # frozen: no pull either
    anchor = list(zip(net.parameters(), init))
    (torch.zeros(()) + l2sp_penalty(anchor, 0.5)).backward()   # a zero task loss: the pull alone
    assert net[0].weight.grad is None
    for p, p0 in anchor[1:]:
        torch.testing.assert_close(p.grad, 0.5 * (p.detach() - p0))
    # At the initial weights there is nothing to pull, whatever they are (weight decay would pull to 0).
    assert float(l2sp_penalty([(p0.clone().requires_grad_(), p0) for p0 in init], 0.5)) == 0.0
    with pytest.raises(SidError, match="training.l2sp"):
        parse_config({"model": {"type": "xvector"}, "training": {"l2sp": -1.0}})


def test_lr_schedule_warmup_then_decay():
    s = LRSchedule(0.1, total_steps=100, warmup_steps=10, decay="exponential", final_lr=0.001, warmup_start_lr=0.0)
    assert s(0) == 0.0 and s(5) == pytest.approx(0.05) and s(10) == pytest.approx(0.1)
    assert s(100) == pytest.approx(0.001) and s(55) == pytest.approx(0.01)
    c = LRSchedule(0.1, 100, 0, "cosine", 0.0, 0.0)
    assert c(0) == pytest.approx(0.1) and c(50) == pytest.approx(0.05) and c(100) == pytest.approx(0.0)
    with pytest.raises(SidError):
        LRSchedule(0.1, 100, 0, "step", None, 0.0)


def test_average_and_rng_state_roundtrip(tmp_path):
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(5)}
    avg = checkpoint.average_state_dicts([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and int(avg["n"]) == 5
    state = checkpoint.rng_state()
    checkpoint.save_atomic({"rng": state}, tmp_path / "s.pt")
    expect = (random.random(), np.random.random(), torch.rand(1).item())
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "s.pt")["rng"])
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expect
    assert not list(tmp_path.glob(".*tmp"))
    with pytest.raises(SidError, match="no checkpoint for epoch"):
        checkpoint.average_epochs(tmp_path, [1])


def test_checkpoint_on_a_full_disk_says_how_much_it_needs(tiny_disk):
    checkpoint.save_atomic({"w": torch.zeros(1000)}, tiny_disk / "last.pt")
    before = (tiny_disk / "last.pt").read_bytes()
    with pytest.raises(DiskFullError, match=rf"writing {tiny_disk}/last.pt: {tiny_disk} \(tmpfs.*2.0 MiB is needed"):
        checkpoint.save_atomic({"w": torch.zeros(512 * 1024)}, tiny_disk / "last.pt")
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["last.pt"]   # the temporary file is gone
    assert (tiny_disk / "last.pt").read_bytes() == before                # the last good checkpoint stays


def test_data_dir_errors_name_the_file(data_dir):
    (data_dir / "utt2spk").write_text("s0-u0 s0\n")
    with pytest.raises(DataDirError, match="utt2spk has no speaker"):
        read_training_set(data_dir)
    (data_dir / "utt2spk").unlink()
    with pytest.raises(DataDirError, match="utt2spk not found"):
        read_training_set(data_dir)


def test_truncated_archive_in_a_loader_worker_is_one_clear_error(tmp_path, sid_env, repo):
    """A feature archive cut short, read by a DataLoader worker during training: the run stops
    (status 1) with the error naming the archive and the utterance, not the worker's traceback."""
    import subprocess
    import sys

    import yaml

    from sid import provenance

    rng = np.random.default_rng(0)
    train = tmp_path / "train"
    train.mkdir()
    feats = {f"s{s}-u{u}": (rng.standard_normal((150, 20)) + s).astype(np.float32) for s in range(4) for u in range(4)}
    kaldiio.save_ark(str(train / "feats.ark"), feats, scp=str(train / "feats.scp"))
    (train / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in sorted(feats)))
    (train / "utt2num_frames").write_text("".join(f"{u} 150\n" for u in sorted(feats)))
    conf = tmp_path / "fbank.conf"
    conf.write_text("--num-mel-bins=20\n")
    provenance.write_record(train, "fbank", conf)
    (train / "cmvn_opts").write_text("--norm-vars=false --center=true --cmn-window=300\n")
    ark = (train / "feats.ark").read_bytes()
    (train / "feats.ark").write_bytes(ark[:-3000])   # the last utterance loses its end
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"type": "xvector", "channels": 16, "stats_channels": 32, "embed_dim": 8, "hidden_dim": 8},
        "data": {"batch_size": 4, "min_frames": 50, "max_frames": 60, "chunks_per_utt": 1},
        "training": {"epochs": 1, "num_avg": 1}}))
    r = subprocess.run([sys.executable, "-m", "sid.bin.train_xvector", f"--model-config={cfg}", "--progress=false",
                        "--tensorboard=false", "--num-workers=1", "--valid-utts=0", str(train), str(tmp_path / "exp")],
                       env=sid_env, cwd=repo, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert f"{train / 'feats.ark'}: truncated archive: entry 's3-u3'" in r.stderr
    assert "DataLoader worker process 0" in r.stderr and "Traceback" not in r.stderr
