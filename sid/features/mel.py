"""Mel filterbank, DCT and lifter as Kaldi's mel-computations.cc / feature-mfcc.cc define them.

The triangular bins are equally spaced on Kaldi's mel scale
``1127 ln(1 + f / 700)`` between ``--low-freq`` and ``--high-freq`` (``<= 0``
means Nyquist plus that value) and weight FFT bins ``0 .. N/2 - 1`` (Kaldi leaves
out the Nyquist bin). Weights are computed in single precision like Kaldi's.
"""

from __future__ import annotations

import numpy as np

from sid.errors import SidError
from sid.features.options import FrameExtractionOptions, MelBanksOptions


def mel_scale(freq):
    return np.float32(1127.0) * np.log(np.float32(1.0) + np.asarray(freq, dtype=np.float32) / np.float32(700.0))


def mel_banks(mel_opts: MelBanksOptions, frame_opts: FrameExtractionOptions) -> np.ndarray:
    """Weights ``[num_fft_bins, num_bins]`` (float32) mapping a power spectrum to mel energies."""
    num_bins = mel_opts.num_bins
    padded = frame_opts.padded_window_size
    num_fft_bins = padded // 2
    nyquist = 0.5 * frame_opts.samp_freq
    low = mel_opts.low_freq
    high = mel_opts.high_freq if mel_opts.high_freq > 0.0 else nyquist + mel_opts.high_freq
    if not (0.0 <= low < nyquist and 0.0 < high <= nyquist and low < high):
        raise SidError(f"bad values in options: --low-freq={mel_opts.low_freq} and --high-freq="
                       f"{mel_opts.high_freq} vs. nyquist {nyquist}")
    f32 = np.float32
    fft_bin_width = f32(frame_opts.samp_freq) / f32(padded)
    mel_low, mel_high = mel_scale(low), mel_scale(high)
    delta = (mel_high - mel_low) / f32(num_bins + 1)
    bins = np.arange(num_bins, dtype=f32)
    left = (mel_low + bins * delta)[None, :]
    center = (mel_low + (bins + f32(1)) * delta)[None, :]
    right = (mel_low + (bins + f32(2)) * delta)[None, :]
    mel = mel_scale(fft_bin_width * np.arange(num_fft_bins, dtype=f32))[:, None]
    rising = (mel - left) / (center - left)
    falling = (right - mel) / (right - center)
    weights = np.where(mel <= center, rising, falling)
    weights = np.where((mel > left) & (mel < right), weights, f32(0))
    empty = np.flatnonzero(~(weights > 0).any(axis=0))
    if len(empty):
        raise SidError(f"mel bin {empty[0]} is empty: too many mel bins ({num_bins}) for the FFT size "
                       f"{padded}; reduce --num-mel-bins or raise --frame-length")
    return weights.astype(f32)


def dct_matrix(num_ceps: int, num_bins: int) -> np.ndarray:
    """First ``num_ceps`` rows of Kaldi's orthonormal DCT-II ``[num_bins, num_bins]`` matrix."""
    n = np.arange(num_bins, dtype=np.float64)
    k = np.arange(num_ceps, dtype=np.float64)[:, None]
    m = np.sqrt(2.0 / num_bins) * np.cos(np.pi / num_bins * (n + 0.5) * k)
    m[0, :] = np.sqrt(1.0 / num_bins)
    return m.astype(np.float32)


def lifter_coeffs(num_ceps: int, lifter: float) -> np.ndarray:
    i = np.arange(num_ceps, dtype=np.float64)
    return (1.0 + 0.5 * lifter * np.sin(np.pi * i / lifter)).astype(np.float32)
