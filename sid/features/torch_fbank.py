"""Kaldi fbank of a batch of equal-length chunks in torch, on any device.

The numerics of ``sid.features.compute.Fbank`` (framing with Kaldi's edge reflection, dither,
DC removal, raw or windowed log-energy, pre-emphasis, window, power or magnitude spectrum,
mel weights, floored log) as batched tensor work, so that training from audio can turn the
raw chunks the DataLoader workers deliver into features on the GPU
(``data.fbank_on: device``). Equal to ``Fbank`` within float rounding for the same samples
and dither noise; the dither here comes from a torch generator the caller seeds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sid.features.mel import mel_banks
from sid.features.options import FbankOptions
from sid.features.window import EPSILON, _reflect, first_sample_of_frame, num_frames, window_function


class BatchFbank:
    """``fbank(samples[B, N], generator) -> feats[B, frames, dim]`` (float32, on ``samples``' device)."""

    def __init__(self, opts: FbankOptions, device: torch.device | str = "cpu"):
        self.opts = opts
        self.frame_opts = opts.frame_opts
        self.device = torch.device(device)
        weights = mel_banks(opts.mel_opts, opts.frame_opts)
        used = np.flatnonzero(weights.any(axis=1))
        self.lo, self.hi = int(used[0]), int(used[-1]) + 1
        self.weights = torch.from_numpy(np.ascontiguousarray(weights[self.lo:self.hi])).to(self.device)
        self.window = torch.from_numpy(window_function(opts.frame_opts)).to(self.device)
        self.dim = opts.mel_opts.num_bins + (1 if opts.use_energy else 0)
        self._index: dict[int, torch.Tensor] = {}

    def frame_index(self, num_samples: int) -> torch.Tensor:
        """Sample index ``[frames, length]`` of every frame, reflected at the edges as Kaldi does."""
        if num_samples not in self._index:
            opts = self.frame_opts
            frames = num_frames(num_samples, opts)
            starts = np.array([first_sample_of_frame(t, opts) for t in range(frames)], dtype=np.int64)
            idx = _reflect(starts[:, None] + np.arange(opts.window_size, dtype=np.int64)[None, :], num_samples)
            self._index[num_samples] = torch.from_numpy(idx).to(self.device)
        return self._index[num_samples]

    def __call__(self, samples: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        opts, fo = self.opts, self.frame_opts
        idx = self.frame_index(samples.shape[1])
        x = samples.float()[:, idx]   # [B, frames, length]
        if fo.dither != 0.0:
            x = x + fo.dither * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if fo.remove_dc_offset:
            x = x - x.mean(dim=-1, keepdim=True)
        energy = None
        if opts.use_energy and opts.raw_energy:
            energy = (x * x).sum(-1).clamp_min(EPSILON).log()
        c = fo.preemph_coeff
        if c != 0.0:
            x = torch.cat([x[..., :1] * (1.0 - c), x[..., 1:] - c * x[..., :-1]], dim=-1)
        x = x * self.window
        if opts.use_energy and not opts.raw_energy:
            energy = (x * x).sum(-1).clamp_min(EPSILON).log()
        if energy is not None and opts.energy_floor > 0.0:
            energy = energy.clamp_min(math.log(opts.energy_floor))
        spec = torch.fft.rfft(x, n=fo.padded_window_size)[..., self.lo:self.hi]
        power = spec.real.square() + spec.imag.square()
        if not opts.use_power:
            power = power.sqrt()
        mel = power @ self.weights
        if opts.use_log_fbank:
            mel = mel.clamp_min(EPSILON).log()
        if energy is not None:
            mel = torch.cat([energy[..., None], mel], dim=-1)
        return mel
