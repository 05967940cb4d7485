"""Training chunks drawn on the fly from a data dir's ``feats.scp`` (Kaldi's egs,
never written to disk).

Every epoch has a *plan*: a list of batches, each a chunk length ``L`` drawn from
``[min_frames, max_frames]`` and ``batch_size`` (utterance, start frame) pairs, where
every training utterance appears ``chunks_per_utt`` times in a random order. The plan
is a pure function of ``(seed, epoch)``, and the SpecAugment masks of batch ``i`` a pure
function of ``(seed, epoch, i)``, so a run resumed at batch ``i`` of an epoch sees
exactly the chunks an uninterrupted run would, whatever the number of DataLoader
workers. Ranks of a distributed job take batches ``rank, rank + world, ...`` of one
shared plan (disjoint shards, equal counts).

``data.sampler: speaker_balanced`` plans batches of ``speakers_per_batch`` (N) speakers
times ``utts_per_speaker`` (M) utterances instead, for the metric-learning losses (GE2E,
prototypical, triplet): each epoch every speaker's utterances are shuffled and cut
into groups of M, used once each (without replacement); batches are filled with the
speakers that have the most groups left, so every speaker appears ``n_utts // M``
times per epoch (less only where too few other speakers are left to fill the last
batches). Within a batch, rows are speaker-major: speaker 0's M chunks, then speaker
1's, and so on. Same purity in ``(seed, epoch)`` and the same sharding as above.

Features are read by random access (``sid.kaldi_io.ScpTable``); each worker process opens
its own files (file handles are not shared across ``fork``). Utterances shorter than a
chunk are repeated to fill it (WeSpeaker's wrap padding).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sid.data.table import read_dict, read_table
from sid.errors import DataDirError
from sid.kaldi_io import ScpTable
from sid.train.specaug import SpecAugment

log = logging.getLogger(__name__)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across runs and platforms."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


@dataclass
class TrainingSet:
    """Utterances of a training data dir with labels and lengths (in frames).

    ``feats`` says where each utterance is: a feats.scp value, a shard member
    (``sid.data.shards.Member``) or audio (``sid.train.audio.AudioSpan``). ``shards``
    (from a shard dir) lists the utterance indices of each tar shard in file order.
    """
    utts: list[str]
    feats: dict
    labels: np.ndarray
    lengths: np.ndarray
    spk2id: dict[str, int]
    shards: list[np.ndarray] | None = None

    def subset(self, idx) -> "TrainingSet":
        idx = np.asarray(idx, dtype=np.int64)
        utts = [self.utts[i] for i in idx]
        shards = None
        if self.shards is not None:
            new = np.full(len(self.utts), -1, dtype=np.int64)
            new[idx] = np.arange(len(idx))
            shards = [new[s][new[s] >= 0] for s in self.shards]
        return TrainingSet(utts, {u: self.feats[u] for u in utts}, self.labels[idx], self.lengths[idx], self.spk2id,
                           shards)


def _num_frames(data_dir: Path, feats: dict[str, str]) -> dict[str, int]:
    path = data_dir / "utt2num_frames"
    if path.exists():
        out = {}
        for utt, value in read_table(path):
            try:
                out[utt] = int(value)
            except ValueError:
                raise DataDirError(f"{path}: utterance '{utt}': frame count '{value}' is not an integer") from None
        return out
    log.warning("%s has no utt2num_frames; reading every matrix to get its length (slow for large sets)", data_dir)
    reader = ScpTable(feats)
    return {utt: reader[utt].shape[0] for utt in feats}


def read_training_set(data_dir: str | Path, spk2id: dict[str, int] | None = None) -> TrainingSet:
    """Read ``feats.scp`` and ``utt2spk`` (and ``utt2num_frames`` when present), or a
    shard dir of features (``sid.data.shards``).

    ``spk2id`` fixes the label map (a resumed run reuses the saved one); otherwise
    speakers are numbered in sorted order.
    """
    data_dir = Path(data_dir)
    from sid.data import shards

    if shards.is_shard_dir(data_dir):
        return read_shard_training_set(data_dir, "features", None, spk2id)
    for name in ("feats.scp", "utt2spk"):
        if not (data_dir / name).exists():
            raise DataDirError(f"{data_dir}/{name} not found: training needs features (steps/prepare_feats_for_egs.sh) and utt2spk")
    feats = read_dict(data_dir / "feats.scp")
    utt2spk = read_dict(data_dir / "utt2spk")
    missing = [u for u in feats if u not in utt2spk]
    if missing:
        raise DataDirError(f"{data_dir}/utt2spk has no speaker for {len(missing)} utterance(s) of feats.scp, e.g. '{missing[0]}' (run utils/fix_data_dir.sh)")
    if spk2id is None:
        spk2id = {s: i for i, s in enumerate(sorted({utt2spk[u] for u in feats}, key=str.encode))}
    utts = sorted(feats, key=str.encode)
    unknown = [u for u in utts if utt2spk[u] not in spk2id]
    if unknown:
        raise DataDirError(f"speaker '{utt2spk[unknown[0]]}' of utterance '{unknown[0]}' is not in the saved label map spk2id")
    nframes = _num_frames(data_dir, feats)
    absent = [u for u in utts if u not in nframes]
    if absent:
        raise DataDirError(f"{data_dir}/utt2num_frames lacks utterance '{absent[0]}' (and {len(absent) - 1} more)")
    labels = np.array([spk2id[utt2spk[u]] for u in utts], dtype=np.int64)
    lengths = np.array([nframes[u] for u in utts], dtype=np.int64)
    if not len(utts):
        raise DataDirError(f"{data_dir}/feats.scp is empty")
    return TrainingSet(utts, feats, labels, lengths, spk2id)


def read_shard_training_set(shard_dir: Path, kind: str, frame_opts, spk2id: dict[str, int] | None) -> TrainingSet:
    """A shard dir (``sid.data.shards``) of ``kind`` (features, or audio with lengths in frames of ``frame_opts``)."""
    from sid.data import shards
    from sid.features.window import num_frames

    made = (shard_dir / "kind").read_text().strip() if (shard_dir / "kind").is_file() else "?"
    if made != kind:
        raise DataDirError(f"{shard_dir} holds shards of {made}, but the config's data.source is {kind}")
    members = shards.read_index(shard_dir)
    utt2spk = read_dict(shard_dir / "utt2spk")
    sizes = read_dict(shard_dir / ("utt2num_frames" if kind == "features" else "utt2dur"))
    utts = sorted(members, key=str.encode)
    if spk2id is None:
        spk2id = {s: i for i, s in enumerate(sorted({utt2spk[u] for u in utts}, key=str.encode))}
    unknown = [u for u in utts if utt2spk.get(u) not in spk2id]
    if unknown:
        raise DataDirError(f"{shard_dir}: speaker of utterance '{unknown[0]}' is not in utt2spk or the saved spk2id")
    if kind == "features":
        lengths = [int(sizes[u]) for u in utts]
        feats = members
    else:
        from sid.train.audio import AudioSpan

        lengths = [num_frames(int(float(sizes[u]) * frame_opts.samp_freq), frame_opts) for u in utts]
        feats = {u: AudioSpan(members[u].path, member=members[u]) for u in utts}
    return TrainingSet(utts, feats, np.array([spk2id[utt2spk[u]] for u in utts], dtype=np.int64),
                       np.array(lengths, dtype=np.int64), spk2id, shards.shard_order(shard_dir, utts, members))


def split_validation(data: TrainingSet, num_valid: int, seed: int) -> tuple[TrainingSet, TrainingSet | None]:
    """Hold out ``num_valid`` utterances (seeded) for validation loss/accuracy, taking
    them only from speakers that keep at least one training utterance."""
    if num_valid <= 0:
        return data, None
    rng = np.random.default_rng(derive_seed(seed, 0x7A11D))
    order = rng.permutation(len(data.utts))
    left = np.bincount(data.labels, minlength=len(data.spk2id))
    valid = []
    for i in order:
        if len(valid) == num_valid:
            break
        if left[data.labels[i]] > 1:
            left[data.labels[i]] -= 1
            valid.append(i)
    keep = np.setdiff1d(np.arange(len(data.utts)), valid)
    return data.subset(keep), data.subset(np.sort(valid))


@dataclass
class Batch:
    length: int
    utt_index: np.ndarray
    start: np.ndarray


def plan_epoch(data: TrainingSet, seed: int, epoch: int, batch_size: int, min_frames: int, max_frames: int,
               chunks_per_utt: int = 1, world_size: int = 1, shuffle_buffer: int = 1000) -> list[Batch]:
    """The epoch's batches; their count is a multiple of ``world_size`` (the last,
    incomplete round is dropped, as each rank must take the same number of steps).

    From shards, the utterances come in the order of the shards (a seeded
    permutation of them), each shard's in file order, through a seeded shuffle
    buffer of ``shuffle_buffer`` chunks: batch after batch the readers move along
    the tar files instead of seeking all over the data.
    """
    rng = np.random.default_rng(derive_seed(seed, epoch))
    if data.shards is not None:
        from sid.data.shards import shuffle_buffer as shuffled

        stream = np.concatenate([data.shards[k] for k in rng.permutation(len(data.shards))])
        idx = shuffled(np.repeat(stream, chunks_per_utt), max(1, shuffle_buffer), rng)
    else:
        idx = rng.permutation(np.repeat(np.arange(len(data.utts)), chunks_per_utt))
    num = len(idx) // batch_size
    num -= num % world_size
    batches = []
    for b in range(num):
        sel = idx[b * batch_size:(b + 1) * batch_size]
        length = int(rng.integers(min_frames, max_frames + 1))
        room = np.maximum(data.lengths[sel] - length, 0)
        start = np.floor(rng.random(len(sel)) * (room + 1)).astype(np.int64)
        batches.append(Batch(length, sel, start))
    return batches


def plan_epoch_balanced(data: TrainingSet, seed: int, epoch: int, speakers_per_batch: int, utts_per_speaker: int,
                        min_frames: int, max_frames: int, world_size: int = 1) -> list[Batch]:
    """The epoch's N x M batches (see the module docstring); their count is a multiple
    of ``world_size``."""
    n, m = speakers_per_batch, utts_per_speaker
    rng = np.random.default_rng(derive_seed(seed, epoch, 0xBA1A))
    groups: dict[int, list[np.ndarray]] = {}
    for spk in np.unique(data.labels):
        utts = rng.permutation(np.flatnonzero(data.labels == spk))
        k = len(utts) // m
        if k:
            groups[int(spk)] = [utts[i * m:(i + 1) * m] for i in range(k)]
    speakers = np.array(sorted(groups), dtype=np.int64)
    left = np.array([len(groups[s]) for s in speakers], dtype=np.int64)
    tie = rng.random(len(speakers))
    chosen = []
    while np.count_nonzero(left) >= n:
        # The n speakers with the most groups left (random among equals): keeps the
        # counts level so no speaker is stranded at the end of the epoch.
        pick = np.lexsort((tie, -left))[:n]
        pick = pick[rng.permutation(n)]
        chosen.append(np.concatenate([groups[int(speakers[j])][len(groups[int(speakers[j])]) - left[j]] for j in pick]))
        left[pick] -= 1
        tie = rng.random(len(speakers))
    num = len(chosen) - len(chosen) % world_size
    order = rng.permutation(len(chosen))[:num]
    batches = []
    for b in order:
        sel = chosen[b]
        length = int(rng.integers(min_frames, max_frames + 1))
        room = np.maximum(data.lengths[sel] - length, 0)
        start = np.floor(rng.random(len(sel)) * (room + 1)).astype(np.int64)
        batches.append(Batch(length, sel, start))
    return batches


class ShardSampler(torch.utils.data.Sampler):
    """Batch indices of one rank's shard, from position ``start`` (batches of this rank
    already done in the epoch) to the end: resuming mid-epoch skips nothing else."""

    def __init__(self, num_batches: int, rank: int = 0, world_size: int = 1, start: int = 0):
        self.indices = list(range(rank, num_batches, world_size))[start:]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class ChunkDataset(torch.utils.data.Dataset):
    """Item ``i`` is batch ``i`` of the current epoch's plan: ``(feats[B,L,D], labels[B], i)``."""

    def __init__(self, data: TrainingSet, seed: int, specaug: SpecAugment | None = None):
        from sid.data.shards import ShardFeatureReader

        self.data = data
        self.reader = ScpTable(data.feats) if data.shards is None else ShardFeatureReader(data.feats)
        self.seed = seed
        self.specaug = specaug
        self.epoch = 0
        self.batches: list[Batch] = []

    def set_plan(self, epoch: int, batches: list[Batch]) -> None:
        self.epoch = epoch
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def chunk(self, i: int, start: int, length: int) -> np.ndarray:
        utt = self.data.utts[i]
        mat = self.reader[utt]
        if mat.ndim != 2:
            raise DataDirError(f"features of utterance '{utt}' ({self.data.feats[utt]}) are not a matrix")
        if mat.shape[0] == 0:
            raise DataDirError(f"utterance '{utt}' has no frames")
        piece = mat[start:start + length]
        if piece.shape[0] < length:
            piece = np.pad(piece, ((0, length - piece.shape[0]), (0, 0)), mode="wrap")
        return piece

    def __getitem__(self, b: int):
        batch = self.batches[b]
        feats = np.stack([self.chunk(i, s, batch.length) for i, s in zip(batch.utt_index, batch.start)]).astype(np.float32)
        if self.specaug is not None:
            self.specaug(feats, np.random.default_rng(derive_seed(self.seed, self.epoch, b, 0x5BEC)))
        return torch.from_numpy(feats), torch.from_numpy(self.data.labels[batch.utt_index]), b


def worker_init(worker_id: int) -> None:
    """Seed a worker's global generators from (seed, epoch, worker id) so anything
    random outside the plan is reproducible too; BLAS single-threaded, as torch makes
    itself in workers: a worker's products are small (a chunk's mel weights), and the
    OMP_NUM_THREADS the trainer has would make every worker spin that many threads
    (15x the CPU time of an fbank on a busy machine, for no gain)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    info = torch.utils.data.get_worker_info()
    ds = info.dataset
    s = derive_seed(ds.seed, ds.epoch, worker_id, 0xC0DE)
    np.random.seed(s % 2 ** 32)
    torch.manual_seed(s)
    import random
    random.seed(s)
