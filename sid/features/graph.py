"""Front-ends as traceable torch graphs of a whole utterance: waveform in, features out.

``waveform_frontend(cfg)`` gives, for an exp whose model reads audio
(``features.source: audio``), a module ``(batch, samples) -> (batch, frames, dim)`` that
computes what extraction computes from an utterance's samples (int16 range, the exp's rate;
``sid.extract.Extractor.prepare_audio``) with operators the ONNX exporter and the
TorchScript tracer both keep symbolic in the number of samples: frames are gathered by an
index computed from the length (Kaldi's edge reflection, or the centred padding of
``torch.stft``) and transformed by ``torch.fft.rfft``, so one graph serves every length.
The numerics are those of the front-end it mirrors (Kaldi's ``sid.features.compute.Fbank``
via ``sid.features.torch_fbank.BatchFbank``; ``VTMel``, ``SBFbank``, ``ResemblyzerMel`` and
``Waveform`` of ``sid.features.frontends``) within float32 rounding; then the utterance's mean
is subtracted where the exp's ``features.cmvn_opts`` says so.

Resemblyzer's graph reads the samples its WebRTC VAD trimmed (``ResemblyzerMel.trim``): that
VAD (a fixed-point model that adapts to the noise frame by frame) is no graph. Not every
front-end has a graph (``graph_obstacle`` says why): the recipe's features come from a data
dir, and an exp whose ``extract.dither`` is not 0 adds noise seeded by the utterance id.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sid.errors import SidError
from sid.features.torch_fbank import BatchFbank


def size_min(a, b):
    """The smaller of two sizes, kept symbolic: a size is a tensor while ``torch.jit.trace``
    records (the TorchScript file, the TorchScript-based ONNX exporter), a symbolic int under
    ``torch.export`` (the dynamo ONNX exporter), else an int."""
    if isinstance(a, torch.Tensor):
        return a.clamp(max=b)
    if isinstance(b, torch.Tensor):
        return b.clamp(max=a)
    return torch.sym_min(a, b)


def size_max(a, b):
    """The larger of two sizes (as ``size_min``)."""
    if isinstance(a, torch.Tensor):
        return a.clamp(min=b)
    if isinstance(b, torch.Tensor):
        return b.clamp(min=a)
    return torch.sym_max(a, b)


def _centred_index(num_samples, n_fft: int, hop: int) -> torch.Tensor:
    """``torch.stft(center=True)``'s frames as indices into the unpadded signal: frame ``t``
    covers ``t * hop - n_fft // 2`` onwards, ``1 + num_samples // hop`` frames."""
    frames = 1 + num_samples // hop
    return (torch.arange(frames) * hop - n_fft // 2)[:, None] + torch.arange(n_fft)[None, :]


class _SymbolicLengthFbank(BatchFbank):
    """``BatchFbank`` whose frame index is computed from the length by torch operators."""

    def frame_index(self, num_samples) -> torch.Tensor:
        # Reflected once at each edge: enough from one frame's length on (Kaldi repeats it).
        o = self.frame_opts
        shift, length = o.window_shift, o.window_size
        if o.snip_edges:
            frames, first = 1 + (num_samples - length) // shift, 0
        else:
            frames, first = (num_samples + shift // 2) // shift, shift // 2 - length // 2
        idx = (torch.arange(frames) * shift + first)[:, None] + torch.arange(length)[None, :]
        idx = torch.where(idx < 0, -idx - 1, idx)
        return torch.where(idx >= num_samples, 2 * num_samples - 1 - idx, idx)


class KaldiFbankGraph(nn.Module):
    """``sid.features.compute.Fbank`` without dither (its numerics through ``BatchFbank``)."""

    def __init__(self, opts):
        super().__init__()
        self.fbank = _SymbolicLengthFbank(opts)
        self.min_samples = opts.frame_opts.window_size
        self.sample_rate = int(opts.frame_opts.samp_freq)

    def num_frames(self, num_samples: int) -> int:
        from sid.features.window import num_frames

        return num_frames(num_samples, self.fbank.frame_opts)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.fbank(wav)


class VTMelGraph(nn.Module):
    """``sid.features.frontends.VTMel``: its reflect-padded STFT as a gather and an rfft."""
    sample_rate = 16000             # (sid.features.frontends' rate)

    def __init__(self, module):
        super().__init__()
        self.m = module
        pad = (module.n_fft - module.win_length) // 2
        self.register_buffer("window", nn.functional.pad(module.window, (pad, module.n_fft - module.win_length - pad)),
                             persistent=False)
        self.min_samples = module.n_fft // 2 + 1        # (torch's reflection needs more samples than it pads)

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.m.hop_length

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        m = self.m
        x = m.preemphasised(wav)
        n = x.shape[1]
        idx = _centred_index(n, m.n_fft, m.hop_length)
        idx = torch.where(idx < 0, -idx, idx)                     # torch's reflect: the edge not repeated
        idx = torch.where(idx >= n, 2 * n - 2 - idx, idx)
        spec = torch.fft.rfft(x[:, idx] * self.window)
        return m.log_mel(spec.real ** 2 + spec.imag ** 2)


class SBFbankGraph(nn.Module):
    """``sid.features.frontends.SBFbank``: its zero-padded STFT as a masked gather and an rfft."""
    sample_rate = 16000             # (sid.features.frontends' rate)

    def __init__(self, module):
        super().__init__()
        self.m = module
        self.min_samples = 1

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.m.hop_length

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        m = self.m
        x = wav.float() / 32768.0
        n = x.shape[1]
        idx = _centred_index(n, m.n_fft, m.hop_length)
        inside = (idx >= 0) & (idx < n)
        frames = torch.where(inside, x[:, idx.clamp(0, n - 1)], torch.zeros((), dtype=x.dtype))
        # In double: onnxruntime's single-precision DFT of 400 points (not a power of two) is
        # 100 times less exact than torch's, visible 80 dB below the loudest bin.
        spec = torch.fft.rfft(frames.double() * m.window.double())
        return m.db((spec.real ** 2 + spec.imag ** 2).float())


class ResemblyzerGraph(nn.Module):
    """``sid.features.frontends.ResemblyzerMel`` after its trimming: it reads the samples
    ``ResemblyzerMel.trim`` leaves (Resemblyzer's ``preprocess_wav``; WebRTC's VAD is no
    graph), computes from their number where its last partial ends (``partials_end``) and
    the mel of that many frames of the samples zero-extended (its zero padding to the partials'
    grid and the STFT's centring), as a masked gather and an rfft."""
    sample_rate = 16000             # (sid.features.frontends' rate)
    trimmed = True                  # (the input is the VAD-trimmed samples)

    def __init__(self, module):
        super().__init__()
        self.m = module
        self.min_samples = 1

    def num_frames(self, num_samples: int) -> int:
        return self.m.partials_end(num_samples)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        m = self.m
        hop, size, shift = m.hop_length, m.partial_frames, m.partial_shift
        n = wav.shape[1]
        # partials_end without a condition: partials start every shift frames while they start
        # before the frame count less size - shift (at least one); of those, the ones whose
        # samples cover min_coverage of them (any but the last do), and the first anyway.
        starts = (size_max((n + hop) // hop - size + shift + 1, 1) + shift - 1) // shift
        cover = math.ceil(m.min_coverage * size * hop) - shift * hop
        covered = (size_max(n, cover) - cover) // (shift * hop)
        frames = (size_max(size_min(starts, covered), 1) - 1) * shift + size
        idx = (torch.arange(frames) * hop - m.n_fft // 2)[:, None] + torch.arange(m.n_fft)[None, :]
        inside = (idx >= 0) & (idx < n)
        x = wav.float() / 32768.0
        framed = torch.where(inside, x[:, idx.clamp(0, n - 1)], torch.zeros((), dtype=x.dtype))
        # In double, as SBFbankGraph: onnxruntime's single-precision DFT of 400 points is less exact.
        spec = torch.fft.rfft(framed.double() * m.window.double())
        return torch.matmul((spec.real ** 2 + spec.imag ** 2).float(), m.filters)


class WaveformGraph(nn.Module):
    """``sid.features.frontends.Waveform`` as extraction frames it: Kaldi's frame count for
    25 ms / 10 ms without snip-edges, rows zero-padded at the end (``frontend_features``)."""
    sample_rate = 16000             # (sid.features.frontends' rate)

    def __init__(self, module):
        super().__init__()
        self.frame_samples = module.frame_samples
        self.min_samples = 1

    def num_frames(self, num_samples: int) -> int:
        return (num_samples + 80) // 160

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        n = wav.shape[1]
        rows = (n + 80) // 160
        idx = torch.arange(rows * self.frame_samples)
        x = wav.float() / 32768.0
        x = torch.where(idx < n, x[:, idx.clamp(max=n - 1)], torch.zeros((), dtype=x.dtype))
        return x.reshape(x.shape[0], rows, self.frame_samples)


class UtteranceFrontend(nn.Module):
    """A front-end graph then, with ``cmn``, each utterance's mean over its frames subtracted."""

    def __init__(self, frontend: nn.Module, cmn: bool):
        super().__init__()
        self.frontend = frontend
        self.cmn = cmn
        self.sample_rate = frontend.sample_rate
        self.trimmed = getattr(frontend, "trimmed", False)

    def min_samples(self, min_frames: int) -> int:
        """The fewest samples that give ``min_frames`` frames (and that the framing handles)."""
        lo = hi = self.frontend.min_samples
        while self.frontend.num_frames(hi) < min_frames:
            lo, hi = hi + 1, 2 * hi
        while lo < hi:              # (the frame count grows with the length)
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if self.frontend.num_frames(mid) < min_frames else (lo, mid)
        return lo

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        feats = self.frontend(wav)
        return feats - feats.mean(dim=1, keepdim=True) if self.cmn else feats


def graph_obstacle(cfg, allow_dither: bool = False) -> str | None:
    """Why the front-end of an exp's config (``sid.config``) cannot be a waveform graph equal to
    extraction's, or None when it can; with ``allow_dither``, a dithered Kaldi fbank is no
    obstacle (``waveform_frontend`` then leaves the dither out)."""
    record = cfg.features
    if record is None or record.source != "audio":
        return ("its model reads features made by the recipe from a data dir (Kaldi compression, energy VAD on "
                "MFCCs, sliding CMN)")
    dither = _fbank_options(cfg).frame_opts.dither if _uses_kaldi_fbank(cfg) else 0.0
    if dither != 0.0 and not allow_dither:
        return (f"its extraction dithers the Kaldi fbank (extract.dither: {dither:g}) with noise seeded by the "
                "utterance id")
    return None


def _uses_kaldi_fbank(cfg) -> bool:
    return cfg.features.type == "fbank" or (cfg.features.type == "frontend" and cfg.frontend.type == "fbank")


def _fbank_options(cfg):
    """The Kaldi fbank options extraction uses for an exp read from audio (``sid.extract.Extractor``)."""
    if cfg.features.type == "fbank":
        from sid.embedder import options_from_text
        from sid.features.options import FbankOptions

        opts = options_from_text(FbankOptions, cfg.features.config, "config.yaml (features.config)")
        opts.frame_opts.dither = cfg.extract.dither
        return opts
    from sid.train.audio import ModelFrontend

    return ModelFrontend(cfg.frontend, dither=cfg.extract.dither).fbank.opts


def waveform_frontend(cfg, undithered: bool = False) -> nn.Module:
    """The waveform graph of an exp's front-end and utterance normalisation; a SidError where
    ``graph_obstacle`` names one, except a dither when ``undithered`` (the graph then computes
    the fbank without it)."""
    import dataclasses

    from sid.features.frontends import ResemblyzerMel, SBFbank, VTMel, Waveform, build_frontend

    obstacle = graph_obstacle(cfg, allow_dither=undithered)
    if obstacle is not None:
        raise SidError(f"no waveform-in graph: {obstacle}")
    cmn = cfg.features.cmvn_opts != "none"
    if _uses_kaldi_fbank(cfg):
        opts = _fbank_options(cfg)
        opts = dataclasses.replace(opts, frame_opts=dataclasses.replace(opts.frame_opts, dither=0.0))
        return UtteranceFrontend(KaldiFbankGraph(opts), cmn)
    module = build_frontend(cfg.frontend)
    graphs = {VTMel: VTMelGraph, SBFbank: SBFbankGraph, Waveform: WaveformGraph, ResemblyzerMel: ResemblyzerGraph}
    return UtteranceFrontend(graphs[type(module)](module), cmn)
