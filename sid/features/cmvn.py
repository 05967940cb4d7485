"""Sliding-window cepstral mean (and variance) normalisation, Kaldi's apply-cmvn-sliding.

For frame ``t`` the window is ``[t - window/2, t - window/2 + window)`` (``center``)
or ``[t - window, t]`` widened to at least ``min_window`` frames (not ``center``),
shifted to lie inside the utterance and clipped to it. Statistics are summed in
double precision from cumulative sums; the frame minus the window mean (divided by
the window standard deviation with ``norm_vars``, variance floored at 1e-10) comes
back as float32.
"""

from __future__ import annotations

import numpy as np


def window_bounds(num_frames: int, window: int, min_window: int, center: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start and one-past-end frame of each frame's normalisation window."""
    t = np.arange(num_frames)
    if center:
        start = t - window // 2
        end = start + window
    else:
        start = t - window
        end = t + 1
    end = np.where(start < 0, end - start, end)
    start = np.maximum(start, 0)
    if not center:
        end = np.where(end > t, np.maximum(t + 1, min_window), end)
    over = np.maximum(end - num_frames, 0)
    start = np.maximum(start - over, 0)
    end = np.minimum(end, num_frames)
    return start, end


def apply_cmvn_sliding(feats: np.ndarray, window: int = 600, min_window: int = 100,
                       center: bool = False, norm_vars: bool = False) -> np.ndarray:
    """Kaldi's sliding CMN of ``feats[T, D]`` with its defaults (the recipes use window 300, center True)."""
    x = np.asarray(feats, dtype=np.float64)
    num = x.shape[0]
    if num == 0:
        return np.asarray(feats, dtype=np.float32).copy()
    start, end = window_bounds(num, window, min_window, center)
    count = (end - start)[:, None].astype(np.float64)
    cum = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    mean = (cum[end] - cum[start]) / count
    out = x - mean
    if norm_vars:
        cum2 = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x * x, axis=0)])
        var = (cum2[end] - cum2[start]) / count - mean * mean
        out *= np.maximum(var, 1e-10) ** -0.5
        out[count[:, 0] == 1] = 0.0  # a one-frame window has no variance: Kaldi outputs zeros
    return out.astype(np.float32)
