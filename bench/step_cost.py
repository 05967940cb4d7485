"""CPU seconds of one training step (forward, loss, backward, optimiser) per model config,
on one thread with synthetic features of the config's batch shape (N x M for the
speaker-balanced sampler, else batch_size; chunks of the mean of min/max_frames): the
figure that sets how many steps fit a CPU budget (RESULTS.md's family table).

Usage: python bench/step_cost.py [config ...]    (default: every conf/*.yaml with a model)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from sid.config import load_config
from sid.losses import build_head
from sid.models import build_model
from sid.train.trainer import _build_optimizer

ROOT = Path(__file__).resolve().parent.parent


def step_seconds(path: Path, repeats: int = 3) -> tuple[int, int, float]:
    cfg = load_config(path)
    model = build_model(cfg.model)
    d = cfg.data
    m = d.utts_per_speaker if d.sampler == "speaker_balanced" else 0
    batch = d.speakers_per_batch * m if m else d.batch_size
    head = build_head(cfg.loss, model.output_dim, 100, m)
    frames = (d.min_frames + d.max_frames) // 2
    x = torch.randn(batch, frames, model.feat_dim)
    y = torch.arange(batch) // max(m, 1)
    opt = _build_optimizer(list(model.parameters()) + list(head.parameters()), cfg.optim)
    times = []
    for _ in range(repeats + 1):   # the first step warms up allocators and kernels
        start = time.process_time()
        loss = head(model(x), y)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.process_time() - start)
    return batch, frames, min(times[1:])


def main() -> None:
    torch.set_num_threads(1)
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "conf").glob("*.yaml"))
    print(f"{'config':<24} {'batch':>5} {'frames':>6} {'CPU s/step':>10}")
    for path in paths:
        batch, frames, sec = step_seconds(path)
        print(f"{path.stem:<24} {batch:>5} {frames:>6} {sec:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
