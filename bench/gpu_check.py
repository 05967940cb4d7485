"""The GPU check behind bench/gpu_check.sh: one table of the figures the README and
configs promise, in about five minutes on one node.

Usage: python bench/gpu_check.py [--models resnet34,ecapa_c512] [--steps N] [--corpus DIR]
       (torchrun ... bench/gpu_check.py --ddp-worker MODEL: one rank of the DDP row)
       python bench/gpu_check.py --device cpu --steps 1 --batch-size 4 --extract-utts 4: the same code on
       CPU (2 gloo ranks for DDP), a smoke test of the script where no GPU is lent

Per model (conf/<model>.yaml, bf16 autocast, the config's batch and chunk sizes):
  model     training chunks/s of the model alone on synthetic batches (one GPU);
  feats 4w / 8w   the features loader (ChunkDataset on real arks computed from
            ../shared's speechocean762, else synthetic features) with 4 and 8 DataLoader
            workers feeding the same step, as % of model-alone;
  audio     the audio loader likewise where this checkout has one (else n/a);
  DDP       chunks/s of DistributedDataParallel training over all visible GPUs
            (torchrun, NCCL) and its scaling efficiency against N x model-alone;
  extract   embedding extraction of 4-20 s utterances (fp32, padded batches):
            utterances/s, and the minutes VoxCeleb1 (153,516 utterances) would take;
  peak      peak GPU memory of the training step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from extract_throughput import VOX1_SECONDS, VOX1_UTTS, measure  # noqa: E402
from train_throughput import make_data, train_step_fn  # noqa: E402

from sid.config import load_config  # noqa: E402
from sid.losses import build_head  # noqa: E402
from sid.models import build_model  # noqa: E402
from sid.train.data import ChunkDataset, ShardSampler, plan_epoch, read_training_set, worker_init  # noqa: E402
from sid.train.specaug import SpecAugment  # noqa: E402

NUM_CLASSES = 5994


def _setup(name: str, device, batch_size: int = 0):
    cfg = load_config(REPO / "conf" / f"{name}.yaml")
    if batch_size:
        cfg.data.batch_size = batch_size
    model = build_model(cfg.model).to(device).train()
    head = build_head(cfg.loss, model.output_dim, NUM_CLASSES).to(device)
    return cfg, model, head


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(step, batches, steps: int) -> float:
    """Chunks/s of ``step`` over ``steps`` batches from the iterator, after 3 warm-up steps."""
    for _ in range(3):
        step(*next(batches))
    _sync()
    t, n = time.perf_counter(), 0
    for _ in range(steps):
        x, y = next(batches)
        step(x, y)
        n += len(y)
    _sync()
    return n / (time.perf_counter() - t)


def _synthetic(cfg, model, device):
    length = (cfg.data.min_frames + cfg.data.max_frames) // 2
    x = torch.randn(cfg.data.batch_size, length, model.feat_dim, device=device)
    y = torch.randint(0, NUM_CLASSES, (cfg.data.batch_size,), device=device)
    while True:
        yield x, y


def _loader(cfg, data_dir: Path, workers: int):
    data = read_training_set(data_dir)
    data.labels = data.labels % NUM_CLASSES
    ds = ChunkDataset(data, seed=1, specaug=SpecAugment.from_config(cfg.data.specaug))
    bs = cfg.data.batch_size
    ds.set_plan(0, plan_epoch(data, 1, 0, bs, cfg.data.min_frames, cfg.data.max_frames,
                              chunks_per_utt=max(1, (bs * 200) // len(data.utts) + 1)))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=ShardSampler(len(ds)), num_workers=workers,
                                         pin_memory=torch.cuda.is_available(), worker_init_fn=worker_init, prefetch_factor=4,
                                         persistent_workers=False)
    return ((x, y) for x, y, _ in loader)


class _Net(torch.nn.Module):
    """Model and loss head as one module, so DDP's forward sees (and synchronises) both."""

    def __init__(self, model, head):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x, y):
        return self.head(self.model(x), y)


def ddp_worker(name: str, steps: int, batch_size: int) -> int:
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    local = int(os.environ["LOCAL_RANK"])
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    cfg, model, head = _setup(name, device, batch_size)
    net = torch.nn.parallel.DistributedDataParallel(_Net(model, head), device_ids=[local] if cuda else None)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step(x, y):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss, _ = net(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rate = _timed(step, _synthetic(cfg, model, device), steps)
    total = torch.tensor([rate], device=device)
    dist.all_reduce(total)
    if dist.get_rank() == 0:
        print(json.dumps({"ddp": float(total), "gpus": dist.get_world_size()}), flush=True)
    dist.destroy_process_group()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet34,ecapa_c512")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--extract-utts", type=int, default=1000)
    p.add_argument("--corpus", default=str(REPO.parent / "shared" / "corpora" / "speechocean762"))
    p.add_argument("--ddp-worker", default="")
    p.add_argument("--batch-size", type=int, default=0, help="default: the config's")
    p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test of this script")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device visible to torch {torch.__version__} "
              f"(CUDA build: {torch.version.cuda or 'none'}); this check needs a GPU", file=sys.stderr)
        return 1
    if args.ddp_worker:
        return ddp_worker(args.ddp_worker, args.steps, args.batch_size)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    ngpu = torch.cuda.device_count() if device.type == "cuda" else 2
    audio = None  # no audio loader in this checkout: its column reads n/a
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            cfg, model, head = _setup(name, device, args.batch_size)
            step = train_step_fn(model, head, device, device.type == "cuda")
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            alone = _timed(step, _synthetic(cfg, model, device), args.steps)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
            corpus = Path(args.corpus)
            data_dir = make_data(model.feat_dim, Path(tmp), corpus) if corpus.is_dir() else None
            loaders = {}
            for w in (4, 8):
                loaders[w] = (100 * _timed(step, _loader(cfg, data_dir, w), args.steps) / alone
                              if data_dir else float("nan"))
            ddp = subprocess.run(["torchrun", f"--nproc-per-node={ngpu}", "--master-port=29433", __file__,
                                  "--ddp-worker", name, "--steps", str(args.steps), "--device", args.device,
                                  "--batch-size", str(args.batch_size)],
                                 capture_output=True, text=True, timeout=240)
            ddp_rate = next((json.loads(line)["ddp"] for line in ddp.stdout.splitlines() if line.startswith("{")), None)
            if ddp_rate is None:
                print(f"gpu_check: the DDP run of {name} failed:\n{ddp.stderr[-2000:]}", file=sys.stderr)
            model.eval()
            rng = np.random.default_rng(0)
            items = [(f"u{i}", rng.standard_normal((int(rng.integers(400, 2001)), model.feat_dim)).astype(np.float32))
                     for i in range(args.extract_utts)]
            with torch.no_grad():
                utt_rate, audio_rate = measure(model, items, device, 0)
            rows.append((name, alone, loaders, ddp_rate, utt_rate, VOX1_SECONDS / audio_rate / 60, peak))
            del model, head, step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU smoke test, not a GPU figure:"
    print(f"gpu_check {time.strftime('%Y-%m-%d')}: {what} x {ngpu}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}; training bf16; VoxCeleb1 = {VOX1_UTTS} utterances")
    print(f"| model | model alone chunks/s | feats loader 4 workers | 8 workers | audio loader | DDP x{ngpu} chunks/s "
          "(efficiency) | extraction utt/s (VoxCeleb1) | peak GPU memory |")
    print("|---|---|---|---|---|---|---|---|")
    for name, alone, loaders, ddp_rate, utt_rate, vox_min, peak in rows:
        ddp_txt = "failed" if ddp_rate is None else f"{ddp_rate:.0f} ({100 * ddp_rate / (ngpu * alone):.0f}%)"
        print(f"| {name} | {alone:.0f} | {loaders[4]:.0f}% | {loaders[8]:.0f}% | {audio or 'n/a'} | {ddp_txt} | "
              f"{utt_rate:.0f} ({vox_min:.1f} min) | {peak:.1f} GiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
