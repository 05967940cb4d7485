"""Front-ends computed from audio as torch modules, for models whose published recipes
do not use Kaldi's features: input (batch, samples) at 16 kHz in int16 range (what
``sid.data.audio`` returns), output (batch, frames, dim).

* ``VTMel``: voxceleb_trainer's: pre-emphasis 0.97 (first sample's predecessor
  reflected), 512-point FFT of 25 ms Hamming windows (periodic, centred in the FFT
  frame) every 10 ms over the reflect-padded signal (frames centred on multiples of
  the hop), power spectrum, triangular HTK-mel filters (0 Hz to Nyquist, no area
  normalisation), ``log(mel + 1e-6)``. Its per-utterance instance normalisation lives
  in the model (``resnet_se``), which normalises whatever chunk it sees.
* ``Waveform``: raw samples as rows of ``frame_samples`` (10 ms) consecutive samples,
  scaled to [-1, 1), so chunks, voiced-frame selection and batching treat audio like
  any feature matrix (``conv_gru`` reads it).

A config names its front-end in a ``frontend`` section (``sid.config.FrontendConfig``:
``type: fbank`` with ``num_mel_bins`` is Kaldi's filterbank, ``vt_mel`` with
``num_mel_bins``, or ``waveform`` with ``frame_samples``); ``python -m sid.bin.compute_frontend_feats`` writes it as features
whose frame count equals Kaldi's (25 ms / 10 ms, snip-edges) so Kaldi's VAD applies.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from sid.config import FrontendConfig


def htk_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def htk_mel_inverse(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def htk_mel_filters(num_bins: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """Weights (n_fft // 2 + 1, num_bins): triangles with corners equally spaced on the
    HTK mel scale, evaluated at the FFT bin frequencies (Nyquist included)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = np.linspace(0.0, sample_rate // 2, n_fft // 2 + 1)
    corners = htk_mel_inverse(np.linspace(htk_mel(f_min), htk_mel(f_max), num_bins + 2))
    width = np.diff(corners)
    rising = (freqs[:, None] - corners[None, :-2]) / width[None, :-1]
    falling = (corners[None, 2:] - freqs[:, None]) / width[None, 1:]
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


class VTMel(nn.Module):
    def __init__(self, num_mel_bins: int = 40, sample_rate: int = 16000, n_fft: int = 512, win_length: int = 400,
                 hop_length: int = 160, preemphasis: float = 0.97):
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.preemphasis = preemphasis
        self.register_buffer("window", torch.hamming_window(win_length), persistent=False)
        self.register_buffer("filters", torch.from_numpy(htk_mel_filters(num_mel_bins, n_fft, sample_rate)),
                             persistent=False)
        self.dim = num_mel_bins

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        wav = wav.float()
        prev = torch.cat([wav[:, 1:2], wav[:, :-1]], dim=1)
        x = wav - self.preemphasis * prev
        spec = torch.stft(x, self.n_fft, self.hop_length, self.win_length, self.window, center=True,
                          pad_mode="reflect", return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2                     # (B, n_fft/2+1, frames)
        mel = torch.matmul(power.transpose(1, 2), self.filters)     # (B, frames, bins)
        return torch.log(mel + 1e-6)


class Waveform(nn.Module):
    def __init__(self, frame_samples: int = 160):
        super().__init__()
        self.frame_samples = frame_samples
        self.dim = frame_samples

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        n = wav.shape[1] // self.frame_samples
        return (wav[:, :n * self.frame_samples].float() / 32768.0).reshape(wav.shape[0], n, self.frame_samples)


def build_frontend(cfg: FrontendConfig) -> nn.Module | None:
    """The torch module of a config's ``frontend`` section; None for Kaldi's filterbank
    (``sid.features.compute.Fbank``)."""
    if cfg.type == "vt_mel":
        return VTMel(cfg.num_mel_bins)
    if cfg.type == "waveform":
        return Waveform(cfg.frame_samples)
    return None


def kaldi_frames(num_samples: int, snip_edges: bool, window: int = 400, shift: int = 160) -> int:
    """Kaldi's frame count for 25 ms windows every 10 ms."""
    if snip_edges:
        return 0 if num_samples < window else 1 + (num_samples - window) // shift
    return (num_samples + shift // 2) // shift


@torch.no_grad()
def frontend_features(frontend: nn.Module, samples: np.ndarray, snip_edges: bool = False) -> np.ndarray:
    """(frames, dim) features of one utterance with exactly Kaldi's frame count, each
    frame centred within 80 samples (5 ms) of Kaldi's, so a Kaldi VAD applies.

    Kaldi's frame ``i`` is centred on sample ``160 i + 80`` (``snip_edges`` false) or
    ``160 i + 200``; ``VTMel``'s frame ``j`` on ``160 j``, so ``j = i`` (or ``i + 1``);
    ``Waveform``'s row ``i`` spans samples ``160 i`` to ``160 i + 160`` (zero-padded at the
    end), the centre of Kaldi's frame, or its start with ``snip_edges``."""
    n = kaldi_frames(len(samples), snip_edges)
    wav = torch.from_numpy(np.asarray(samples, dtype=np.float32))
    if isinstance(frontend, Waveform):
        need = n * frontend.frame_samples
        wav = torch.nn.functional.pad(wav, (0, max(0, need - len(wav))))
        return frontend(wav[None])[0, :n].numpy()
    first = 1 if snip_edges else 0
    return frontend(wav[None])[0, first:first + n].numpy()
