"""SpecAugment-style masking of training chunks (Park et al. 2019), without time
warping: ``freq_masks`` bands of up to ``freq_width`` feature bins and ``time_masks``
spans of up to ``time_width`` frames are set to zero (the features are mean-normalised,
so zero is the mean), each chunk with probability ``prob``."""

from __future__ import annotations

import numpy as np

from sid.config import SpecAugConfig


class SpecAugment:
    def __init__(self, cfg: SpecAugConfig):
        self.freq_masks = cfg.freq_masks
        self.freq_width = cfg.freq_width
        self.time_masks = cfg.time_masks
        self.time_width = cfg.time_width
        self.prob = cfg.prob

    @classmethod
    def from_config(cls, cfg: SpecAugConfig | None):
        """None where the config has no ``specaug`` section or it is disabled."""
        if cfg is None or not cfg.enabled:
            return None
        return cls(cfg)

    def __call__(self, feats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Mask ``feats`` (batch, frames, dim) in place with generator ``rng``."""
        _, frames, dim = feats.shape
        for chunk in feats:
            if rng.random() >= self.prob:
                continue
            for _ in range(self.freq_masks):
                w = int(rng.integers(0, min(self.freq_width, dim) + 1))
                f0 = int(rng.integers(0, dim - w + 1))
                chunk[:, f0:f0 + w] = 0.0
            for _ in range(self.time_masks):
                w = int(rng.integers(0, min(self.time_width, frames) + 1))
                t0 = int(rng.integers(0, frames - w + 1))
                chunk[t0:t0 + w, :] = 0.0
        return feats
