"""Fbank and MFCC features, Kaldi's compute-fbank-feats / compute-mfcc-feats numerics.

    fbank = Fbank(FbankOptions(...))
    feats = fbank.compute(samples, utt="spk1-utt1")   # float32 [frames, dim]

Samples are in the int16 range like Kaldi's (``sid.data.audio.read_audio``).
Everything after framing is batched array work over chunks of frames (one real
FFT per chunk, the mel weights as one matrix product) in single precision, with
numpy and scipy's pocketfft: as fast as torch here, and a tool that imports them
starts in a tenth of the time.
"""

from __future__ import annotations

import math

import importlib.util
import os

import numpy as np

from sid.features.mel import dct_matrix, lifter_coeffs, mel_banks
from sid.features.options import FbankOptions, MfccOptions
from sid.features.window import EPSILON, FrameProcessor, utterance_generator


def _load_rfft():
    """scipy.fft.rfft's own kernel, ``rfft(frames[C, n]) -> spectrum[C, n // 2 + 1]``.

    numpy's rfft is 6x slower on a batch of frames (pocketfft one row at a time, no
    vectorising across rows), but importing the package scipy.fft pulls in
    scipy.special and the array-API layer: 0.17 s of CPU and 28 MB per process for one
    function. Its compiled module ``pypocketfft`` depends on nothing else, so it is
    loaded from its file; the call is exactly scipy.fft.rfft's (forward, no scaling,
    one worker), so the numbers are the same. Another scipy layout falls back to
    the public function.
    """
    spec = importlib.util.find_spec("scipy")
    folder = os.path.join(os.path.dirname(spec.origin), "fft", "_pocketfft") if spec and spec.origin else ""
    names = [f for f in os.listdir(folder) if f.startswith("pypocketfft.")] if os.path.isdir(folder) else []
    if len(names) == 1:
        ext = importlib.util.spec_from_file_location("scipy.fft._pocketfft.pypocketfft",
                                                     os.path.join(folder, names[0]))
        try:
            module = importlib.util.module_from_spec(ext)
            ext.loader.exec_module(module)
            module.r2c(np.zeros((1, 4), dtype=np.float32), (1,), True, 0, None, 1)
            return lambda frames: module.r2c(frames, (1,), True, 0, None, 1)
        except (ImportError, TypeError, AttributeError):
            pass
    import scipy.fft

    return scipy.fft.rfft


_rfft = _load_rfft()


class _MelComputer:
    def __init__(self, opts, use_energy: bool, raw_energy: bool, energy_floor: float):
        self.opts = opts
        self.frames = FrameProcessor(opts.frame_opts)
        weights = mel_banks(opts.mel_opts, opts.frame_opts)
        # Only the FFT bins some mel bin uses take part in the product.
        used = np.flatnonzero(weights.any(axis=1))
        self.lo, self.hi = int(used[0]), int(used[-1]) + 1
        self.weights = np.ascontiguousarray(weights[self.lo:self.hi])
        self.use_energy = use_energy
        self.raw_energy = raw_energy
        self.log_energy_floor = math.log(energy_floor) if energy_floor > 0.0 else None

    def _chunks(self, samples: np.ndarray, utt: str):
        """Yield ``(mel_energies[C, bins] linear, log_energy[C] or None)``."""
        gen = utterance_generator(utt) if self.opts.frame_opts.dither != 0.0 else None
        raw = self.use_energy and self.raw_energy
        for buf, energy in self.frames.frames(samples, raw, gen):
            if self.use_energy and not self.raw_energy:
                energy = np.log(np.maximum(np.einsum("ij,ij->i", buf, buf), np.float32(EPSILON)))
            spec = _rfft(buf)[:, self.lo:self.hi]
            power = np.square(spec.real)
            power += np.square(spec.imag)
            if self.log_energy_floor is not None and energy is not None:
                np.maximum(energy, np.float32(self.log_energy_floor), out=energy)
            yield self._spectrum(power), energy

    def _spectrum(self, power: np.ndarray) -> np.ndarray:
        return power @ self.weights


class Fbank(_MelComputer):
    def __init__(self, opts: FbankOptions):
        super().__init__(opts, opts.use_energy, opts.raw_energy, opts.energy_floor)

    @property
    def dim(self) -> int:
        return self.opts.mel_opts.num_bins + (1 if self.opts.use_energy else 0)

    def _spectrum(self, power: np.ndarray) -> np.ndarray:
        if not self.opts.use_power:
            np.sqrt(power, out=power)
        return power @ self.weights

    def compute(self, samples: np.ndarray, utt: str = "") -> np.ndarray:
        parts = []
        for mel, energy in self._chunks(samples, utt):
            if self.opts.use_log_fbank:
                _log_floored(mel)
            if energy is not None:
                mel = np.concatenate([energy[:, None], mel], axis=1)
            parts.append(mel)
        return _stack(parts, self.dim)


class Mfcc(_MelComputer):
    def __init__(self, opts: MfccOptions):
        super().__init__(opts, opts.use_energy, opts.raw_energy, opts.energy_floor)
        dct = dct_matrix(opts.num_ceps, opts.mel_opts.num_bins)
        if opts.cepstral_lifter != 0.0:
            dct = dct * lifter_coeffs(opts.num_ceps, opts.cepstral_lifter)[:, None]
        self.dct_t = np.ascontiguousarray(dct.T)

    @property
    def dim(self) -> int:
        return self.opts.num_ceps

    def compute(self, samples: np.ndarray, utt: str = "") -> np.ndarray:
        parts = []
        for mel, energy in self._chunks(samples, utt):
            ceps = _log_floored(mel) @ self.dct_t
            if energy is not None:
                ceps[:, 0] = energy
            parts.append(ceps)
        return _stack(parts, self.dim)


def _log_floored(x: np.ndarray) -> np.ndarray:
    """``log(max(x, epsilon))`` in place, Kaldi's floor before every log."""
    return np.log(np.maximum(x, np.float32(EPSILON), out=x), out=x)


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    if not parts:
        return np.zeros((0, dim), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
