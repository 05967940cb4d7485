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

import math
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


def signal_span(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Samples ``start .. stop - 1`` of the waveform, reflected outside it (``-s - 1``
    before the start, ``2N - 1 - s`` after the end, repeatedly for very short signals) as
    Kaldi's ExtractWindow does: a view when the span lies inside, else a copy."""
    n = len(samples)
    if start >= 0 and stop <= n:
        return samples[start:stop]
    # Only the few samples past each end need index arithmetic.
    left = samples[_reflect(np.arange(start, min(0, stop)), n)]
    right = samples[_reflect(np.arange(max(n, start), stop), n)]
    return np.concatenate([left, samples[max(start, 0):min(stop, n)], right])


def reflected_signal(samples: np.ndarray, opts: FrameExtractionOptions, frames: int) -> tuple[np.ndarray, int]:
    """The samples every frame covers, laid out contiguously so frame ``t`` is
    ``out[t * shift : t * shift + length]``, and the index of its first sample."""
    start = first_sample_of_frame(0, opts)
    return signal_span(samples, start, first_sample_of_frame(frames - 1, opts) + opts.window_size), start


def utterance_generator(utt: str) -> np.random.Generator:
    """Dither noise generator seeded from the utterance id, so output is
    reproducible and does not depend on how utterances are split into jobs."""
    return np.random.default_rng(zlib.crc32(utt.encode()))


def gaussian(generator: np.random.Generator, out: np.ndarray, scale: float) -> None:
    """Fill contiguous float32 ``out`` with Gaussian noise of standard deviation ``scale``.

    Box-Muller on single-precision uniforms, the method of Kaldi's own RandGauss (which
    keeps only the cosine; both halves are used here): numpy's float32 ziggurat costs
    10 ns a sample, this 5, and dither draws one sample per sample of every frame.
    """
    flat = out.reshape(-1)
    pairs = (flat.size + 1) // 2
    radius = generator.random(pairs, dtype=np.float32)
    angle = generator.random(pairs, dtype=np.float32)
    np.subtract(np.float32(1.0), radius, out=radius)  # (0, 1]: the log stays finite
    np.log(radius, out=radius)
    np.multiply(radius, np.float32(-2.0 * scale * scale), out=radius)
    np.sqrt(radius, out=radius)
    angle *= np.float32(2.0 * np.pi)
    half = flat.size - pairs
    np.cos(angle, out=flat[:pairs])
    flat[:pairs] *= radius
    np.sin(angle[:half], out=flat[pairs:])
    flat[pairs:] *= radius[:half]


class FrameProcessor:
    """Turns a waveform into windowed, zero-padded frames, a chunk of frames at a time.

    Working in chunks of a hundred-odd frames keeps the buffers in cache (the FFT of
    one big batch is several times slower) and memory flat in utterance length. Each
    frame goes through Kaldi's steps in Kaldi's order and precision (the same float
    roundings: reordering them, e.g. pre-emphasising the whole signal once, moved
    the MFCCs of loud frames past Kaldi's printed precision); without dither the frame
    means come from the signal rather than from each frame, and the copy of the frame
    is the DC removal.
    """

    CHUNK = 128

    def __init__(self, opts: FrameExtractionOptions):
        self.opts = opts
        self.length = opts.window_size
        self.padded = opts.padded_window_size
        self.window = window_function(opts)
        # Every frame is a whole number of blocks of gcd(shift, length) samples, so
        # frame sums add up block sums: each sample is read once, not once per frame.
        self.block = math.gcd(opts.window_shift, self.length)
        # Kept from utterance to utterance: new ones would be fresh pages for the kernel to
        # zero, a quarter of the tool's system time.
        self._buf = np.zeros((self.CHUNK, self.padded), dtype=np.float32)
        self._scratch = np.empty((self.CHUNK, self.length), dtype=np.float32)  # the noise, then c * x[i - 1]

    def frames(self, samples: np.ndarray, need_raw_energy: bool, generator: np.random.Generator | None = None):
        """Yield ``(frames[C, padded], raw_log_energy[C] or None)`` chunks covering the utterance.

        The frame buffer is reused (across utterances too: one utterance at a time per processor):
        a consumer must be done with a chunk before asking for the next.
        """
        opts, length, shift = self.opts, self.length, self.opts.window_shift
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        total = num_frames(len(samples), opts)
        if total == 0:
            return
        chunk, buf, scratch = self.CHUNK, self._buf, self._scratch
        ones = np.ones(length if opts.dither != 0.0 else self.block, dtype=np.float32)
        coeff = np.float32(opts.preemph_coeff)
        for at in range(0, total, chunk):
            count = min(chunk, total - at)
            start = first_sample_of_frame(at, opts)
            span = signal_span(samples, start, start + (count - 1) * shift + length)
            strided = np.ndarray((count, length), np.float32, span, 0, (shift * 4, 4))
            frame = buf[:count, :length]
            if opts.dither != 0.0:
                noise = scratch[:count]
                gaussian(generator, noise, opts.dither)
                np.add(strided, noise, out=frame)
                if opts.remove_dc_offset:
                    # Row sums as a product with ones, like Kaldi's VectorBase::Sum (a BLAS dot).
                    mean = frame @ ones
                    mean /= np.float32(length)
                    frame -= mean[:, None]
            elif opts.remove_dc_offset:
                np.subtract(strided, self._frame_means(span, count, ones)[:, None], out=frame)
            else:
                frame[...] = strided
            energy = None
            if need_raw_energy:
                energy = np.einsum("ij,ij->i", frame, frame)
                np.log(np.maximum(energy, np.float32(EPSILON), out=energy), out=energy)
            if coeff != 0.0:
                p = np.multiply(frame[:, :-1], coeff, out=scratch[:count, :-1])
                frame[:, 1:] -= p
                frame[:, 0] *= np.float32(1.0) - coeff
            frame *= self.window
            yield buf[:count], energy

    def _frame_means(self, span: np.ndarray, count: int, ones: np.ndarray) -> np.ndarray:
        """Mean of each of the ``count`` frames of ``span``. The block sums are exact in single
        precision for 16-bit samples (block * 2^15 < 2^24) and added up in double, so they equal
        Kaldi's single-precision sum of the frame, exact as well."""
        sums = (span.reshape(-1, self.block) @ ones).astype(np.float64)
        step = self.opts.window_shift // self.block
        out = sums[:step * (count - 1) + 1:step].copy()
        for j in range(1, self.length // self.block):
            out += sums[j:j + step * (count - 1) + 1:step]
        out /= self.length
        return out.astype(np.float32)
