"""Framing as Kaldi's feature-window.cc does it, vectorised over frames.

Frame ``t`` starts at ``t * shift`` (``--snip-edges=true``: only whole frames) or
is centred on ``t * shift + shift / 2`` with the signal reflected at both ends
(``--snip-edges=false``: ``(num_samples + shift / 2) // shift`` frames).
Each frame is then processed like Kaldi's ``ProcessWindow``: dither, remove DC,
raw log-energy, pre-emphasis (``x[i] -= c * x[i-1]`` from the end backwards, the
first sample times ``1 - c``), window function; zero-padded to the FFT size.
numpy only (no torch): feature tools start in a fraction of a second.
"""

from __future__ import annotations

import zlib

import numpy as np

from sid.features.options import FrameExtractionOptions

EPSILON = float(np.finfo(np.float32).eps)  # Kaldi's std::numeric_limits<float>::epsilon() floor


def num_frames(num_samples: int, opts: FrameExtractionOptions) -> int:
    shift, length = opts.window_shift, opts.window_size
    if opts.snip_edges:
        return 0 if num_samples < length else 1 + (num_samples - length) // shift
    return (num_samples + shift // 2) // shift


def first_sample_of_frame(frame: int, opts: FrameExtractionOptions) -> int:
    shift = opts.window_shift
    if opts.snip_edges:
        return frame * shift
    return frame * shift + shift // 2 - opts.window_size // 2


def window_function(opts: FrameExtractionOptions) -> np.ndarray:
    """Kaldi's FeatureWindowFunction, computed in double then stored as float like Kaldi."""
    n = opts.window_size
    i = np.arange(n, dtype=np.float64)
    a = 2.0 * np.pi / (n - 1)
    kind = opts.window_type
    if kind == "hanning":
        w = 0.5 - 0.5 * np.cos(a * i)
    elif kind == "sine":
        w = np.sin(0.5 * a * i)
    elif kind == "hamming":
        w = 0.54 - 0.46 * np.cos(a * i)
    elif kind == "povey":
        w = (0.5 - 0.5 * np.cos(a * i)) ** 0.85
    elif kind == "rectangular":
        w = np.ones(n)
    else:  # blackman, the only other type options.check() lets through
        c = opts.blackman_coeff
        w = c - 0.5 * np.cos(a * i) + (0.5 - c) * np.cos(2 * a * i)
    return w.astype(np.float32)


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    while True:
        low, high = idx < 0, idx >= n
        if not (low.any() or high.any()):
            return idx
        idx = np.where(low, -idx - 1, np.where(high, 2 * n - 1 - idx, idx))


def reflected_signal(samples: np.ndarray, opts: FrameExtractionOptions, frames: int) -> tuple[np.ndarray, int]:
    """The samples every frame covers, laid out contiguously so frame ``t`` is
    ``out[t * shift : t * shift + length]``, and the index of its first sample.
    Outside the waveform it is reflected (``-s - 1`` before the start, ``2N - 1 - s``
    after the end, repeatedly for very short signals), as Kaldi's ExtractWindow does."""
    n = len(samples)
    start = first_sample_of_frame(0, opts)
    stop = first_sample_of_frame(frames - 1, opts) + opts.window_size
    if start >= 0 and stop <= n:
        return samples[start:stop], start
    # Only the few samples past each end need index arithmetic.
    left = samples[_reflect(np.arange(start, min(0, stop)), n)]
    right = samples[_reflect(np.arange(max(n, start), stop), n)]
    return np.concatenate([left, samples[max(start, 0):min(stop, n)], right]), start


def utterance_generator(utt: str) -> np.random.Generator:
    """Dither noise generator seeded from the utterance id, so output is
    reproducible and does not depend on how utterances are split into jobs."""
    return np.random.default_rng(zlib.crc32(utt.encode()))


class FrameProcessor:
    """Turns a waveform into windowed, zero-padded frames, a chunk of frames at a time.

    Working in chunks of a few hundred frames keeps the buffers in cache (the FFT
    of one big batch is several times slower) and memory flat in utterance length.
    """

    CHUNK = 128

    def __init__(self, opts: FrameExtractionOptions):
        self.opts = opts
        self.length = opts.window_size
        self.padded = opts.padded_window_size
        self.window = window_function(opts)

    def frames(self, samples: np.ndarray, need_raw_energy: bool, generator: np.random.Generator | None = None):
        """Yield ``(frames[C, padded], raw_log_energy[C] or None)`` chunks covering the utterance.

        The frame buffer is reused: a consumer must be done with a chunk before asking for the next.
        """
        opts, length = self.opts, self.length
        total = num_frames(len(samples), opts)
        if total == 0:
            return
        signal, _ = reflected_signal(np.asarray(samples, dtype=np.float32), opts, total)
        signal = np.ascontiguousarray(signal, dtype=np.float32)
        shift = opts.window_shift
        coeff = np.float32(opts.preemph_coeff)
        strided = np.lib.stride_tricks.as_strided(signal, (total, length), (shift * 4, 4), writeable=False)
        whole = np.zeros((min(self.CHUNK, total), self.padded), dtype=np.float32)
        prev = np.empty((whole.shape[0], length - 1), dtype=np.float32)
        # Row sums as a product with ones, like Kaldi's VectorBase::Sum (a BLAS dot), and 3x faster than a reduction.
        ones = np.ones(length, dtype=np.float32)
        for first in range(0, total, self.CHUNK):
            count = min(self.CHUNK, total - first)
            buf = whole[:count]
            frame = buf[:, :length]
            if opts.dither != 0.0:
                noise = generator.standard_normal((count, length), dtype=np.float32)
                noise *= np.float32(opts.dither)
                np.add(strided[first:first + count], noise, out=frame)
            else:
                frame[...] = strided[first:first + count]
            if opts.remove_dc_offset:
                mean = frame @ ones
                mean /= np.float32(length)
                frame -= mean[:, None]
            energy = None
            if need_raw_energy:
                energy = np.einsum("ij,ij->i", frame, frame)
                np.log(np.maximum(energy, np.float32(EPSILON), out=energy), out=energy)
            if coeff != 0.0:
                p = np.multiply(frame[:, :-1], coeff, out=prev[:count])
                frame[:, 1:] -= p
                frame[:, 0] *= np.float32(1.0) - coeff
            frame *= self.window
            yield buf, energy
