"""Training throughput per model: data pipeline, model alone, and both together.

Usage: python bench/train_throughput.py [--models xvector_kaldi,xvector,ecapa_c512,ecapa_c1024,resnet34]
           [--data DATA_DIR] [--batch-size N] [--steps N] [--workers N] [--device auto|cpu|cuda]
           [--audio-only] [--audio-batches N]

For each conf/<model>.yaml it prints, in chunks (training examples) per second:
  (a) data pipeline, per worker: ChunkDataset batches (random-access kaldiio reads of
      real arks, chunk cutting, SpecAugment when the config enables it) in one process,
      measured in CPU time (the figure a worker delivers on one core);
  (b) model alone: forward + backward + optimiser step on synthetic batches on the
      device (bf16 autocast on a GPU, fp32 on CPU), after warm-up;
  (c) both: the DataLoader with --workers workers (pinned memory, prefetch) feeding the
      same training step; and (c)/(b), the share of the model-alone rate kept.
On a GPU (b) and (c) are wall-clock rates. On CPU, where this 2-core machine is shared
and workers would compete with the model for the same cores, the model runs on one
thread, rates are per CPU second of this process and (c) loads the data in-line (no
workers), so every CPU second is counted once: per-core figures undisturbed by other load.
Without --data it computes log-mel filterbanks (30-dim for x-vector Kaldi, 80 for the
rest) of the shared speechocean762 corpus (../shared), applies sliding CMN and keeps
voiced frames, into a temporary data dir of real arks. On CPU the batch and step
counts default small; the device (GPU model or CPU) is printed with every figure.

Then the audio source (data.source: audio, sid.train.audio), per worker in CPU time:
2-s chunks (200 frames, 80-dim fbank) read from wav or flac copies of the corpus, as
loose files or from tar shards, without augmentation and with aug_prob 0.6 and speed
perturbation (RIR: a synthetic 0.25-s room response; noises: corpus utterances), with
the fbank computed in the worker (data.fbank_on: worker) and without it (the raw chunks
fbank_on: device delivers), then the batched torch fbank's own CPU rate. With
--audio-only on CPU, the model-alone training rate of each model on one CPU thread.
Last, per model, the chunks/s a GPU of 100 TFLOP/s would train at (3x the forward
multiply-adds of model_info, 2 FLOPs each) and the workers it needs at the augmented
flac-shard rate, with the fbank in the workers and on the device.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import kaldiio
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sid.losses import build_head  # noqa: E402
from sid.config import load_config  # noqa: E402
from sid.models import build_model  # noqa: E402
from sid.train.data import ChunkDataset, ShardSampler, plan_epoch, read_training_set, worker_init  # noqa: E402
from sid.train.specaug import SpecAugment  # noqa: E402


def make_data(dim: int, root: Path, corpus: Path, max_utts: int = 400) -> Path:
    import kaldi_native_fbank as knf
    import soundfile as sf

    from sid.features.cmvn import apply_cmvn_sliding

    out = root / f"fbank{dim}"
    if (out / "feats.scp").exists():
        return out
    out.mkdir(parents=True)
    wav = dict(line.split(maxsplit=1) for line in (corpus / "train" / "wav.scp").read_text().splitlines())
    utt2spk = dict(line.split() for line in (corpus / "train" / "utt2spk").read_text().splitlines())
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = dim
    feats = {}
    for utt in sorted(wav)[:max_utts]:
        samples, sr = sf.read(str(corpus / wav[utt]), dtype="float32")
        fb = knf.OnlineFbank(opts)
        fb.accept_waveform(sr, (samples * 32768).tolist())
        fb.input_finished()
        x = np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])
        energy = x.mean(1)
        feats[utt] = apply_cmvn_sliding(x, window=300, center=True)[energy > energy.mean() - 0.5 * energy.std()]
    kaldiio.save_ark(str(out / "feats.ark"), feats, scp=str(out / "feats.scp"))
    (out / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in sorted(feats)))
    (out / "utt2num_frames").write_text("".join(f"{u} {feats[u].shape[0]}\n" for u in sorted(feats)))
    return out


def train_step_fn(model, head, device, amp):
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    def step(x, y):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = head(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss
    return step


def cpu_seconds() -> float:
    """CPU time of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_model(name: str, data_dir: Path, args, device) -> None:
    cfg = load_config(REPO / "conf" / f"{name}.yaml")
    bs = args.batch_size or (cfg.data.batch_size if device.type == "cuda" else 16)
    lo, hi = cfg.data.min_frames, cfg.data.max_frames
    data = read_training_set(data_dir)
    num_classes = 5994
    data.labels = data.labels % num_classes
    ds = ChunkDataset(data, seed=1, specaug=SpecAugment.from_config(cfg.data.specaug))
    batches = plan_epoch(data, 1, 0, bs, lo, hi, chunks_per_utt=max(1, (bs * 40) // len(data.utts) + 1))
    ds.set_plan(0, batches)

    # (a) data pipeline, one process, CPU time.
    n = min(len(batches), 40)
    t = time.process_time()
    for b in range(n):
        ds[b]
    data_rate = n * bs / max(time.process_time() - t, 1e-9)

    # (b) model alone on synthetic batches.
    model = build_model(cfg.model).to(device).train()
    head = build_head(cfg.loss, model.output_dim, num_classes).to(device)
    step = train_step_fn(model, head, device, device.type == "cuda")
    length = (lo + hi) // 2
    x = torch.randn(bs, length, model.feat_dim, device=device)
    y = torch.randint(0, num_classes, (bs,), device=device)
    for _ in range(2):
        step(x, y)
    sync(device)
    clock = time.perf_counter if device.type == "cuda" else cpu_seconds
    t = clock()
    for _ in range(args.steps):
        step(x, y)
    sync(device)
    model_rate = args.steps * bs / (clock() - t)

    # (c) the DataLoader feeding the training step.
    workers = args.workers if device.type == "cuda" else 0
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=ShardSampler(len(batches)),
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         worker_init_fn=worker_init if workers else None,
                                         prefetch_factor=4 if workers else None)
    it = iter(loader)
    for _ in range(2):
        xb, yb, _ = next(it)
        step(xb, yb)
    sync(device)
    t = clock()
    done = 0
    for _ in range(args.steps):
        try:
            xb, yb, _ = next(it)
        except StopIteration:
            break
        step(xb, yb)
        done += len(yb)
    sync(device)
    both_rate = done / (clock() - t)
    del it
    print(f"{name:<14} {bs:>5} {hi if lo == hi else f'{lo}-{hi}':>8} {data_rate:>12.0f} {model_rate:>12.1f} "
          f"{both_rate:>12.1f} {100 * both_rate / model_rate:>7.0f}%", flush=True)


def make_audio_data(root: Path, corpus: Path, fmt: str, max_utts: int = 120, name: str = "") -> Path:
    """A data dir of ``max_utts`` corpus utterances re-encoded as ``fmt`` (wav or flac)."""
    import soundfile as sf

    out = root / (name or f"audio_{fmt}")
    if (out / "wav.scp").exists():
        return out
    (out / "audio").mkdir(parents=True)
    wav = dict(line.split(maxsplit=1) for line in (corpus / "train" / "wav.scp").read_text().splitlines())
    utt2spk = dict(line.split() for line in (corpus / "train" / "utt2spk").read_text().splitlines())
    rows = []
    for utt in sorted(wav)[:max_utts]:
        samples, sr = sf.read(str(corpus / wav[utt]), dtype="int16")
        path = out / "audio" / f"{utt}.{fmt}"
        sf.write(str(path), samples, sr)
        rows.append((utt, str(path), len(samples) / sr))
    (out / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p, _ in rows))
    (out / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u, _, _ in rows))
    (out / "utt2dur").write_text("".join(f"{u} {d:.3f}\n" for u, _, d in rows))
    return out


def make_aug_sources(root: Path, corpus: Path) -> tuple[Path, Path]:
    """A synthetic RIR list and a noise dir of corpus utterances (stand-ins for RIRS_NOISES and MUSAN)."""
    import soundfile as sf

    noise = make_audio_data(root, corpus, "wav", max_utts=20, name="noise")
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    rir = (rng.standard_normal(4000) * np.exp(-t / 0.05) * 0.3).astype(np.float32)
    rir[200] = 0.9
    sf.write(str(root / "rir.wav"), rir, 16000)
    (root / "rir_list").write_text(f"--rir-id r --room-id r {root / 'rir.wav'}\n")
    return root / "rir_list", noise


def bench_audio(root: Path, corpus: Path, batches: int) -> tuple[float, float]:
    """Print chunks/s per worker for each audio variant, with the fbank in the worker
    (data.fbank_on: worker) and without it (fbank_on: device: the worker delivers raw chunks);
    returns the augmented flac-shard rates of both."""
    from sid.config import DataConfig
    from sid.data.shards import write_shards
    from sid.train.audio import (AudioChunkDataset, Augmenter, BatchFbankFrontend, FbankFrontend, fbank_options,
                                 read_audio_training_set)

    conf = root / "fbank80.conf"
    conf.write_text("--num-mel-bins=80\n--snip-edges=false\n")
    opts = fbank_options(conf)
    rir_list, noise = make_aug_sources(root, corpus)
    aug = Augmenter.from_config(16000, DataConfig(), [rir_list], {"noise": noise, "music": noise, "babble": noise})
    print(f"\naudio source: 2-s chunks (200 frames), chunks/s per worker (CPU time), {batches} batches of 32 "
          "per variant;\n  fbank in worker: decode + speed + augmentation + 80-dim fbank + chunk CMN "
          "(data.fbank_on: worker);\n  raw: the same without the fbank (fbank_on: device)")
    print(f"{'format':<6} {'storage':<7} {'augmentation':<26} {'fbank in worker':>15} {'raw':>9}")
    rates = (0.0, 0.0)
    for fmt in ("wav", "flac"):
        src = make_audio_data(root, corpus, fmt)
        shards = root / f"shards_{fmt}"
        if not (shards / "shard.list").exists():
            write_shards(src, shards, utts_per_shard=40, progress=False)
        for storage, d in (("loose", src), ("shards", shards)):
            data = read_audio_training_set(d, opts.frame_opts)
            plan = plan_epoch(data, 1, 0, 32, 200, 200, chunks_per_utt=(32 * batches) // len(data.utts) + 1)
            row = []
            for label, prob, speed in (("none", 0.0, "none"), ("aug_prob 0.6 + speed 0.9/1.1", 0.6, "speakers")):
                row = []
                for front in (FbankFrontend(opts), BatchFbankFrontend(opts, 1)):
                    ds = AudioChunkDataset(data, 1, front, None, aug if prob else None, prob, speed)
                    ds.set_plan(0, plan)
                    ds[0]   # warm caches (RIR, noise, scipy import)
                    t = time.process_time()
                    for b in range(1, batches + 1):
                        ds[b]
                    row.append(batches * 32 / max(time.process_time() - t, 1e-9))
                print(f"{fmt:<6} {storage:<7} {label:<26} {row[0]:>15.1f} {row[1]:>9.1f}", flush=True)
            rates = (row[0], row[1])
    return rates


def bench_batch_fbank(batches: int) -> float:
    """The batched torch fbank (data.fbank_on: device) on this CPU, one thread: chunks/s."""
    from sid.features.options import FbankOptions
    from sid.train.audio import BatchFbankFrontend, samples_for_frames

    opts = FbankOptions()
    opts.mel_opts.num_bins = 80
    opts.frame_opts.snip_edges = False
    front = BatchFbankFrontend(opts, 1)
    x = torch.randn(128, samples_for_frames(200, opts.frame_opts)) * 3000
    front.features(x, 0, 0)
    t = time.process_time()
    for b in range(batches):
        front.features(x, 0, b)
    rate = batches * 128 / max(time.process_time() - t, 1e-9)
    print(f"\nbatched torch fbank + chunk CMN (fbank_on: device) on this CPU, one thread, batches of 128: "
          f"{rate:.0f} chunks/s", flush=True)
    return rate


def model_alone_cpu(models: list[str], steps: int) -> None:
    """Model-alone training rate (forward, backward, SGD step) on CPU, one thread, 200-frame chunks."""
    print("\nmodel alone on this CPU (one thread, fp32, batch 16 x 200 frames, softmax head 5994 classes): "
          "training chunks/s per CPU second")
    for name in models:
        cfg = load_config(REPO / "conf" / f"{name}.yaml")
        model = build_model(cfg.model).train()
        head = build_head(cfg.loss, model.output_dim, 5994)
        step = train_step_fn(model, head, torch.device("cpu"), False)
        x = torch.randn(16, 200, model.feat_dim)
        y = torch.randint(0, 5994, (16,))
        step(x, y)
        t = cpu_seconds()
        for _ in range(steps):
            step(x, y)
        print(f"{name:<14} {steps * 16 / (cpu_seconds() - t):>8.2f}", flush=True)


def gpu_workers(models: list[str], worker_rate: float, raw_rate: float) -> None:
    from sid.models.complexity import count_macs

    print(f"\nworkers a 100 TFLOP/s GPU needs at {worker_rate:.0f} (fbank in worker) / {raw_rate:.0f} (raw, "
          "fbank_on: device) augmented flac-shard chunks/s per worker\n(training = 3 x forward multiply-adds "
          "x 2 FLOPs, 2-s chunks)")
    print(f"{'model':<14} {'GMAC/chunk':>10} {'GPU chunks/s':>12} {'workers':>8} {'raw':>5}")
    for name in models:
        cfg = load_config(REPO / "conf" / f"{name}.yaml")
        model = build_model(cfg.model)
        macs = count_macs(model, 200, cfg.model.to_dict()["feat_dim"])
        gpu = 100e12 / (3 * 2 * macs)
        print(f"{name:<14} {macs / 1e9:>10.2f} {gpu:>12.0f} {gpu / worker_rate:>8.0f} {gpu / raw_rate:>5.0f}",
              flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="xvector_kaldi,xvector,ecapa_c512,ecapa_c1024,resnet34")
    p.add_argument("--data", default="", help="data dir with prepared features (default: computed from ../shared)")
    p.add_argument("--corpus", default=str(REPO.parent / "shared" / "corpora" / "speechocean762"))
    p.add_argument("--batch-size", type=int, default=0, help="default: the config's on GPU, 16 on CPU")
    p.add_argument("--steps", type=int, default=0, help="timed steps (default 50 on GPU, 3 on CPU)")
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers for (c) on a GPU")
    p.add_argument("--device", default="auto")
    p.add_argument("--audio-only", action="store_true", help="only the audio-source and GPU-worker tables")
    p.add_argument("--audio-batches", type=int, default=6, help="timed batches of 32 chunks per audio variant")
    args = p.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    args.steps = args.steps or (50 if device.type == "cuda" else 4)
    if device.type == "cpu":
        # One thread: CPU time then equals the work done, without idle threads spinning under load.
        torch.set_num_threads(1)
    # BLAS single-threaded, as sid.train.data.worker_init makes it in DataLoader workers.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    where = (f"GPU {torch.cuda.get_device_name(device)}, bf16 autocast, wall-clock rates" if device.type == "cuda"
             else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads), fp32, "
                  "rates per CPU second")
    feeding = f"{args.workers} DataLoader workers" if device.type == "cuda" else "data loaded in-line"
    print(f"device: {where}; (c) with {feeding}; {args.steps} timed steps")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.audio_only:
            print("(a) data chunks/s per worker (CPU time), (b) model-alone training chunks/s, (c) both, (c)/(b)")
            print(f"{'model':<14} {'batch':>5} {'frames':>8} {'(a) data':>12} {'(b) model':>12} {'(c) both':>12} "
                  f"{'(c)/(b)':>8}")
            for name in args.models.split(","):
                cfg = load_config(REPO / "conf" / f"{name}.yaml")
                dim = cfg.model.to_dict()["feat_dim"]
                data_dir = Path(args.data) if args.data else make_data(dim, Path(tmp), Path(args.corpus))
                bench_model(name, data_dir, args, device)
        rate, raw = bench_audio(Path(tmp), Path(args.corpus), args.audio_batches)
        bench_batch_fbank(args.audio_batches)
        if args.audio_only and device.type == "cpu":
            model_alone_cpu(args.models.split(","), args.steps)
        gpu_workers(args.models.split(","), rate, raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
