"""Front-ends computed from audio as torch modules, for models whose published recipes
do not use Kaldi's features: input (batch, samples) at 16 kHz in int16 range (what
``sid.data.audio`` returns), output (batch, frames, dim).

* ``VTMel``: voxceleb_trainer's: pre-emphasis 0.97 (first sample's predecessor
  reflected), 512-point FFT of 25 ms Hamming windows (periodic, centred in the FFT
  frame) every 10 ms over the reflect-padded signal (frames centred on multiples of
  the hop), power spectrum, triangular HTK-mel filters (0 Hz to Nyquist, no area
  normalisation), ``log(mel + 1e-6)``. Its per-utterance instance normalisation lives
  in the model (``resnet_se``), which normalises whatever chunk it sees.
* ``ResemblyzerMel``: Resemblyzer's (GE2E d-vector) input, as its ``preprocess_wav`` and
  ``embed_utterance`` make it: the waveform scaled up (never down) to -30 dBFS RMS, silences
  trimmed by WebRTC's VAD (aggressiveness 3 on 30 ms windows, decisions smoothed by a moving
  average of 8 and dilated by 3 windows each side; ``webrtcvad-wheels``), zero-padded to its
  grid of 1.6 s partials every 77 frames (the last kept when 75 % covered), then the 40-bin
  mel power spectrogram librosa computes (Hann 25 ms frames every 10 ms, centred with zero
  padding, Slaney mel scale and area normalisation, no log). The features are cut to the
  last partial's end, so ``extract.chunking: windows`` of 160 frames every 77 averages
  exactly Resemblyzer's partials. It trims silence itself: a Kaldi VAD does not apply
  (an imported Resemblyzer model computes it from the audio, ``features.source: audio``).
* ``SBFbank``: SpeechBrain's ``Fbank`` (its ECAPA models' input): samples scaled to
  [-1, 1), power spectrum of 25 ms Hamming windows (periodic, 400-point FFT) every 10 ms,
  centred with zero padding, triangular filters centred on points equally spaced on the
  HTK mel scale from 0 to 8 kHz, each as wide on both sides as the gap below its centre,
  ``10 log10(max(mel, 1e-10))`` floored at the utterance's maximum less 80 dB. Its own
  frame count (1 + samples // 160; imported models compute it from the audio).
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
from sid.errors import SidError


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

    def preemphasised(self, wav: torch.Tensor) -> torch.Tensor:
        wav = wav.float()
        prev = torch.cat([wav[:, 1:2], wav[:, :-1]], dim=1)
        return wav - self.preemphasis * prev

    def log_mel(self, power: torch.Tensor) -> torch.Tensor:
        """Power spectra (B, frames, n_fft/2+1) to the features (B, frames, bins)."""
        return torch.log(torch.matmul(power, self.filters) + 1e-6)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(self.preemphasised(wav), self.n_fft, self.hop_length, self.win_length, self.window,
                          center=True, pad_mode="reflect", return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2                     # (B, n_fft/2+1, frames)
        return self.log_mel(power.transpose(1, 2))


def slaney_mel_filters(num_bins: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """Weights (n_fft // 2 + 1, num_bins): triangles with corners equally spaced on Slaney's
    mel scale (linear below 1 kHz, logarithmic above) from 0 Hz to Nyquist, each scaled to
    unit area (2 / its width in Hz), evaluated at the FFT bin frequencies."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp

    def to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
                        f / f_sp)

    def to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    corners = to_hz(np.linspace(to_mel(0.0), to_mel(sample_rate / 2), num_bins + 2))
    width = np.diff(corners)
    rising = (freqs[:, None] - corners[None, :-2]) / width[None, :-1]
    falling = (corners[None, 2:] - freqs[:, None]) / width[None, 1:]
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (corners[2:] - corners[:-2]))[None, :]
    return weights.astype(np.float32)


class ResemblyzerMel(nn.Module):
    """``prepare`` (numpy: volume, VAD trimming, partial padding) then ``forward`` (the mel)."""
    sample_rate = 16000
    target_dbfs = -30.0
    vad_window = 480                # samples (30 ms)
    vad_mode = 3
    vad_average = 8                 # windows in the moving average of the decisions
    vad_dilation = 3                # windows added each side of a voiced one
    partial_frames = 160            # 1.6 s
    partial_shift = 77              # round(16000 / 1.3 / 160): Resemblyzer's default rate, 1.3 partials a second
    min_coverage = 0.75

    def __init__(self, num_mel_bins: int = 40):
        super().__init__()
        self.n_fft, self.hop_length = 400, 160
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("filters", torch.from_numpy(slaney_mel_filters(num_mel_bins, self.n_fft,
                                                                            self.sample_rate)), persistent=False)
        self.dim = num_mel_bins

    def prepare(self, samples: np.ndarray, where: str = "") -> tuple[np.ndarray, int]:
        """Samples (int16 range) normalised, trimmed and padded as Resemblyzer does (same scale),
        and the number of frames its partials span."""
        return self.pad(self.trim(samples, where))

    def pad(self, wav: np.ndarray) -> tuple[np.ndarray, int]:
        """Trimmed samples zero-padded to the end of the last partial's last frame, where they
        end before it, and the number of frames its partials span."""
        frames = self.partials_end(len(wav))
        if frames * self.hop_length >= len(wav):
            wav = np.pad(wav, (0, frames * self.hop_length - len(wav)))
        return wav, frames

    def trim(self, samples: np.ndarray, where: str = "") -> np.ndarray:
        """Samples (int16 range) scaled up to the target volume and trimmed by the VAD, as
        Resemblyzer's ``preprocess_wav`` makes them (same scale, float32)."""
        from scipy.ndimage import binary_dilation

        wav = (np.asarray(samples, dtype=np.float32) / np.float32(32768.0)).astype(np.float32)
        # In float32 as Resemblyzer computes it: the int16 rounding before the VAD depends on it.
        rms = np.sqrt(np.mean((wav * 32767) ** 2))
        change = self.target_dbfs - 20 * np.log10(rms / 32767)
        if change > 0:
            wav = wav * (10 ** (change / 20))
        wav = wav[:len(wav) - len(wav) % self.vad_window]
        pcm = np.round(wav * 32767).astype(np.int16)
        vad = _webrtc_vad(self.vad_mode)
        flags = np.array([vad.is_speech(pcm[i:i + self.vad_window].tobytes(), self.sample_rate)
                          for i in range(0, len(pcm), self.vad_window)], dtype=np.float64)
        w = self.vad_average
        sums = np.convolve(np.concatenate([np.zeros((w - 1) // 2), flags, np.zeros(w // 2)]), np.ones(w), "valid")
        voiced = np.round(sums / w).astype(bool)    # half the windows voiced rounds to even: unvoiced
        if voiced.size:
            voiced = binary_dilation(voiced, np.ones(2 * self.vad_dilation + 1))
        wav = wav[np.repeat(voiced, self.vad_window)]
        if wav.size == 0:
            raise SidError(f"{where + ': ' if where else ''}no speech left after Resemblyzer's voice-activity trimming")
        return wav * np.float32(32768.0)

    def partials_end(self, num_samples: int) -> int:
        """The frame where Resemblyzer's last partial of an utterance of ``num_samples`` ends."""
        hop, size, shift = self.hop_length, self.partial_frames, self.partial_shift
        num_frames = -(-(num_samples + 1) // hop)
        starts = list(range(0, max(1, num_frames - size + shift + 1), shift))
        if len(starts) > 1 and (num_samples - starts[-1] * hop) / (size * hop) < self.min_coverage:
            starts.pop()
        return starts[-1] + size

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.float() / 32768.0
        spec = torch.stft(x, self.n_fft, self.hop_length, self.n_fft, self.window, center=True, pad_mode="constant",
                          return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        return torch.matmul(power.transpose(1, 2), self.filters)


class SBFbank(nn.Module):
    def __init__(self, num_mel_bins: int = 80, sample_rate: int = 16000, f_max: float = 8000.0, top_db: float = 80.0):
        super().__init__()
        self.n_fft, self.hop_length, self.top_db = 400, 160, top_db
        self.register_buffer("window", torch.hamming_window(self.n_fft), persistent=False)
        # In single precision, as SpeechBrain builds them.
        mel = torch.linspace(0.0, 2595 * float(np.log10(1 + f_max / 700)), num_mel_bins + 2)
        hz = 700 * (10 ** (mel / 2595) - 1)
        band, centre = (hz[1:] - hz[:-1])[:-1], hz[1:-1]
        freqs = torch.linspace(0, sample_rate // 2, self.n_fft // 2 + 1)
        slope = (freqs[:, None] - centre[None, :]) / band[None, :]
        self.register_buffer("filters", torch.clamp(torch.minimum(slope + 1, 1 - slope), min=0.0), persistent=False)
        self.dim = num_mel_bins

    def db(self, power: torch.Tensor) -> torch.Tensor:
        """Power spectra (B, frames, n_fft/2+1) to the features (B, frames, bins)."""
        db = 10 * torch.log10(torch.clamp(torch.matmul(power, self.filters), min=1e-10))
        return torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - self.top_db)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.float() / 32768.0
        spec = torch.stft(x, self.n_fft, self.hop_length, self.n_fft, self.window, center=True, pad_mode="constant",
                          return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        return self.db(power.transpose(1, 2))


def _webrtc_vad(mode: int):
    try:
        import webrtcvad
    except ImportError:
        raise SidError("Resemblyzer's front-end needs WebRTC's VAD: pip install webrtcvad-wheels") from None
    return webrtcvad.Vad(mode)



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
        return VTMel(cfg.num_mel_bins, preemphasis=cfg.preemphasis)
    if cfg.type == "waveform":
        return Waveform(cfg.frame_samples)
    if cfg.type == "resemblyzer":
        return ResemblyzerMel(cfg.num_mel_bins)
    if cfg.type == "sb_fbank":
        return SBFbank(cfg.num_mel_bins)
    return None


def kaldi_frames(num_samples: int, snip_edges: bool, window: int = 400, shift: int = 160) -> int:
    """Kaldi's frame count for 25 ms windows every 10 ms."""
    if snip_edges:
        return 0 if num_samples < window else 1 + (num_samples - window) // shift
    return (num_samples + shift // 2) // shift


@torch.no_grad()
def frontend_features(frontend: nn.Module, samples: np.ndarray, snip_edges: bool = False, where: str = "",
                      kaldi_count: bool = True) -> np.ndarray:
    """(frames, dim) features of one utterance with exactly Kaldi's frame count, each
    frame centred within 80 samples (5 ms) of Kaldi's, so a Kaldi VAD applies; those of a
    front-end that trims silence itself (``ResemblyzerMel``) or whose utterance-level
    floor depends on every frame (``SBFbank``) as it makes them. ``kaldi_count`` false (no
    Kaldi VAD to align with): ``VTMel``'s frames as it makes them too, one more than Kaldi's
    where the last 10 ms hold fewer than 80 samples.

    Kaldi's frame ``i`` is centred on sample ``160 i + 80`` (``snip_edges`` false) or
    ``160 i + 200``; ``VTMel``'s frame ``j`` on ``160 j``, so ``j = i`` (or ``i + 1``);
    ``Waveform``'s row ``i`` spans samples ``160 i`` to ``160 i + 160`` (zero-padded at the
    end), the centre of Kaldi's frame, or its start with ``snip_edges``."""
    if isinstance(frontend, ResemblyzerMel):
        wav, frames = frontend.prepare(samples, where)
        return frontend(torch.from_numpy(wav)[None])[0, :frames].numpy()
    if isinstance(frontend, SBFbank):
        return frontend(torch.from_numpy(np.asarray(samples, dtype=np.float32))[None])[0].numpy()
    n = kaldi_frames(len(samples), snip_edges)
    wav = torch.from_numpy(np.asarray(samples, dtype=np.float32))
    if isinstance(frontend, VTMel) and not kaldi_count:
        return frontend(wav[None])[0].numpy()
    if isinstance(frontend, Waveform):
        need = n * frontend.frame_samples
        wav = torch.nn.functional.pad(wav, (0, max(0, need - len(wav))))
        return frontend(wav[None])[0, :n].numpy()
    first = 1 if snip_edges else 0
    return frontend(wav[None])[0, first:first + n].numpy()
