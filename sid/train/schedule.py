"""Learning-rate schedules as pure functions of the optimiser step (so a resumed run
continues exactly): linear warm-up from ``warmup_start_lr`` to ``lr`` over
``warmup_epochs``, then ``exponential`` decay (WeSpeaker's: geometric from ``lr`` to
``final_lr`` at the last step), ``cosine`` annealing to ``final_lr``, or ``constant``."""

from __future__ import annotations

import math

from sid.errors import SidError


class LRSchedule:
    def __init__(self, lr: float, total_steps: int, warmup_steps: int, decay: str, final_lr: float | None,
                 warmup_start_lr: float):
        if decay not in ("exponential", "cosine", "constant"):
            raise SidError(f"lr decay must be exponential, cosine or constant, got '{decay}'")
        self.lr = lr
        self.total = max(total_steps, 1)
        self.warmup = min(warmup_steps, self.total)
        self.decay = decay
        self.final = lr if final_lr is None else final_lr
        self.warmup_start = warmup_start_lr
        if decay == "exponential" and (self.final <= 0 or lr <= 0):
            raise SidError("exponential lr decay needs lr > 0 and final_lr > 0")

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.warmup_start + (self.lr - self.warmup_start) * step / self.warmup
        span = max(self.total - self.warmup, 1)
        ratio = min((step - self.warmup) / span, 1.0)
        if self.decay == "exponential":
            return self.lr * (self.final / self.lr) ** ratio
        if self.decay == "cosine":
            return self.final + 0.5 * (self.lr - self.final) * (1.0 + math.cos(math.pi * ratio))
        return self.lr
