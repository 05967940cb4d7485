"""Energy VAD (Kaldi's ivector/voice-activity-detection.cc) and voiced-frame selection.

A frame is voiced when at least ``--vad-proportion-threshold`` of the frames within
``--vad-frames-context`` of it (clipped at the edges) have log-energy (column 0 of
MFCCs with ``--use-energy=true``) above ``vad-energy-threshold + vad-energy-mean-scale
* mean log-energy``. Comparisons are made in single precision, as Kaldi makes them.
"""

from __future__ import annotations

import numpy as np

from sid.errors import SidError
from sid.features.options import VadEnergyOptions


def compute_vad(feats: np.ndarray, opts: VadEnergyOptions | None = None) -> np.ndarray:
    """0/1 float32 decision per frame of ``feats[T, D]`` (empty for ``T == 0``)."""
    opts = opts or VadEnergyOptions()
    feats = np.asarray(feats, dtype=np.float32)
    num = feats.shape[0]
    if num == 0:
        return np.zeros(0, dtype=np.float32)
    log_energy = feats[:, 0]
    threshold = np.float32(opts.vad_energy_threshold)
    if opts.vad_energy_mean_scale != 0.0:
        mean = np.float32(log_energy.sum(dtype=np.float64)) / np.float32(num)
        threshold = threshold + np.float32(opts.vad_energy_mean_scale) * mean
    above = (log_energy > threshold).astype(np.int64)
    context = opts.vad_frames_context
    # Counts over [t - context, t + context] clipped to [0, T) from a cumulative sum.
    cum = np.concatenate([[0], np.cumsum(above)])
    t = np.arange(num)
    lo, hi = np.maximum(t - context, 0), np.minimum(t + context + 1, num)
    num_count = cum[hi] - cum[lo]
    den_count = hi - lo
    voiced = num_count >= den_count * np.float32(opts.vad_proportion_threshold)
    return voiced.astype(np.float32)


def select_voiced_frames(feats: np.ndarray, vad: np.ndarray, select_unvoiced: bool = False, utt: str = "") -> np.ndarray:
    """Rows of ``feats`` whose VAD value is 1 (0 with ``select_unvoiced``); frame counts must match."""
    vad = np.asarray(vad).reshape(-1)
    if len(vad) != feats.shape[0]:
        raise SidError(f"utterance '{utt}': mismatch in number of frames: {feats.shape[0]} in features "
                       f"vs. {len(vad)} in VAD")
    keep = vad == 0.0 if select_unvoiced else vad != 0.0
    return feats[keep]
