"""Embedding extraction throughput: utterances and seconds of audio per second.

Usage: python bench/extract_throughput.py [--models xvector,ecapa_c512,resnet34] [--device auto|cpu|cuda]
           [--batch-frames N] [--utts N]

For each conf/<model>.yaml (random weights, eval mode: speed does not depend on them)
it runs ``sid.extract.embed_utterances`` (the code behind extract_embeddings) on
prepared features (100 frames per second) of
  4 s     utterances of 4 s each;
  mixed   utterances of 4 to 20 s (uniform, seeded), VoxCeleb1's range, batched with
          padding (``--batch-frames``) and, for comparison, one utterance at a time.
On CPU the model runs on one thread and rates are per CPU second of this process
(per core, undisturbed by other load on a shared machine); on a GPU they are
wall-clock rates (fp32, as extraction runs). The last column is the time VoxCeleb1
(153,516 utterances, 352 h) would take at the mixed-length rate. Features (fbank)
are not included: bench/vs_kaldi.py measures them beside Kaldi's own binaries.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sid.config import load_config  # noqa: E402
from sid.extract import DEFAULT_BATCH_FRAMES, embed_utterances  # noqa: E402
from sid.models import build_model  # noqa: E402

VOX1_UTTS, VOX1_SECONDS = 153516, 352 * 3600


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class OneAtATime(torch.nn.Module):
    """The model without ``lengths``: the extractor then batches equal lengths only."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.min_frames = model.min_frames

    def embed(self, x):
        return self.model.embed(x)


def measure(model, items, device, batch_frames) -> tuple[float, float]:
    """(utterances/s, audio seconds/s) of extracting ``items``."""
    clock = time.perf_counter if device.type == "cuda" else cpu_seconds
    list(embed_utterances(model, items[:4], device, batch_frames=batch_frames))  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = clock()
    n = sum(1 for _ in embed_utterances(model, items, device, batch_frames=batch_frames))
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = clock() - t
    return n / dt, sum(x.shape[0] for _, x in items) / 100 / dt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="xvector,ecapa_c512,resnet34")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-frames", type=int, default=0,
                   help="as extract_embeddings --batch-frames (0: its default for the device)")
    p.add_argument("--utts", type=int, default=0, help="utterances per measurement (default 2000 on GPU, 24 on CPU)")
    args = p.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    n = args.utts or (2000 if device.type == "cuda" else 24)
    if device.type == "cpu":
        torch.set_num_threads(1)
        where = f"CPU ({os.cpu_count()} cores), 1 torch thread, rates per CPU second (per core)"
    else:
        torch.backends.cudnn.benchmark = True
        where = f"GPU {torch.cuda.get_device_name(device)}, fp32, wall-clock rates"
    frames = args.batch_frames or DEFAULT_BATCH_FRAMES[device.type]
    print(f"device: {where}; {n} utterances per row; --batch-frames {frames}")
    print(f"{'model':<11} {'utterances':<22} {'utt/s':>8} {'audio s/s':>10} {'x real time':>12} {'VoxCeleb1':>10}")
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        cfg = load_config(REPO / "conf" / f"{name}.yaml")
        torch.manual_seed(0)
        model = build_model(cfg.model).to(device).eval()
        dim = model.feat_dim
        fixed = [(f"u{i}", rng.standard_normal((400, dim)).astype(np.float32)) for i in range(n)]
        mixed = [(f"u{i}", rng.standard_normal((int(rng.integers(400, 2001)), dim)).astype(np.float32))
                 for i in range(n)]
        for label, m, items in (("4 s, batched", model, fixed), ("4-20 s, batched", model, mixed),
                                ("4-20 s, one at a time", OneAtATime(model), mixed)):
            utt_rate, audio_rate = measure(m, items, device, args.batch_frames)
            vox = "" if "4 s" in label else f"{VOX1_SECONDS / audio_rate / 60:.0f} min"
            print(f"{name:<11} {label:<22} {utt_rate:>8.1f} {audio_rate:>10.0f} {audio_rate:>11.0f}x {vox:>10}",
                  flush=True)
        if device.type == "cuda":
            print(f"{name:<11} peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB", flush=True)
            torch.cuda.reset_peak_memory_stats(device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
