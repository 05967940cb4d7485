"""Whole-utterance embeddings with Kaldi's ``nnet3-xvector-compute`` semantics.

An utterance of ``n`` frames is cut into ``ceil(n / c)`` consecutive chunks of
``c = min(max_chunk_frames, n)`` frames (the last may be shorter); a chunk shorter than
``min_chunk_frames`` is padded to that length by repeating its first and last frames
(half on each side); the utterance's embedding is the mean of its chunks' embeddings
weighted by their unpadded lengths.

Batching never changes an embedding. Utterances are buffered (``SORT_BATCHES`` times
``batch_frames`` frames) and their chunks sorted by length. A model whose ``embed``
takes ``lengths`` (x-vector, ECAPA-TDNN, ResNet) gets batches of chunks of
neighbouring lengths zero-padded to the longest, at most ``batch_frames`` frames
padding included (this bounds memory; by default ``DEFAULT_BATCH_FRAMES``: big on a
GPU, small on CPU, where bigger batches only add memory traffic); it masks the padding so that each chunk's
embedding is the one it has alone (``tests/test_extract.py`` checks this on real
speech for each model). Other models get batches of chunks of equal length only.
Models run in eval mode, so batch norm uses its running statistics.

D-vector models instead embed a long utterance as the mean of its 1.6 s windows at
50% overlap, each unit-length, re-normalised (``window_spans``; the convention of
GE2E and Resemblyzer): ``extract.chunking: windows`` in the config, or
``--chunking`` at extraction, selects it beside Kaldi's chunk averaging.

``Extractor`` loads a model dir (``config.yaml``, ``final.pt``) and prepares an utterance
as its training data were prepared (``features`` of the config, recorded by training):
for a model trained from features, as Kaldi's ``extract_xvectors.sh`` does, the sliding
CMN the training features had (``features.cmvn_opts``) then voiced-frame selection; for a
model trained from audio (``features.source: audio``), the fbank of ``features.config``
computed from the samples with the dither of ``extract.dither`` (none by default; seeded by
the utterance id) and the utterance's mean subtracted, no VAD: WeSpeaker's test-time
front-end, the whole-utterance form of the per-chunk mean normalisation of training.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from sid.config import load_config
from sid.errors import SidError
from sid.models import build_model
from sid.train import checkpoint

log = logging.getLogger(__name__)

# The sorting buffer holds this many batches, so that batches meet chunks of similar length.
SORT_BATCHES = 8
# Frames per batch when not given (measured with bench/extract_throughput.py).
DEFAULT_BATCH_FRAMES = {"cuda": 50000, "cpu": 4000}


def chunk_spans(num_frames: int, max_chunk_frames: int) -> list[tuple[int, int]]:
    """(start, length) of the chunks Kaldi cuts an utterance into."""
    size = min(max_chunk_frames, num_frames) if max_chunk_frames > 0 else num_frames
    num = -(-num_frames // size)
    return [(i * size, min(size, num_frames - i * size)) for i in range(num)]


def window_spans(num_frames: int, window: int, shift: int) -> list[tuple[int, int]]:
    """(start, length) of overlapping windows: every ``shift`` frames while a whole
    window fits, plus one window ending at the last frame when the tail is not yet
    covered; an utterance shorter than a window is one (short) window."""
    if num_frames <= window:
        return [(0, num_frames)]
    spans = [(s, window) for s in range(0, num_frames - window + 1, shift)]
    if spans[-1][0] + window < num_frames:
        spans.append((num_frames - window, window))
    return spans


class WindowMean(torch.nn.Module):
    """``window_spans``, ``pad_chunk`` and the averaging of ``embed_utterances(windows=...)`` as
    one graph for export (``sid.bin.export_model``): features (batch, frames, dim) -> the mean
    of ``model``'s unit-length embeddings of the windows of each row, re-normalised. All
    windows of a batch go through the model as one batch. Sizes stay symbolic in the number
    of frames (``sid.features.graph.size_min``), for a trace and for ``torch.export``."""

    def __init__(self, model: torch.nn.Module, window: int, shift: int, min_frames: int):
        super().__init__()
        self.model, self.window, self.shift, self.min_frames = model, window, shift, min_frames

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        from sid.features.graph import size_max, size_min

        n = feats.shape[1]
        length = size_min(n, self.window)
        # Every shift frames; the last one moved back to end at the last frame.
        starts = (torch.arange((n - length + self.shift - 1) // self.shift + 1) * self.shift).clamp(max=n - length)
        # pad_chunk: a window shorter than min_frames repeats its first and last frames.
        padded = size_max(length, self.min_frames)
        within = (torch.arange(padded) - (padded - length) // 2).clamp(min=0).clamp(max=length - 1)
        x = feats[:, starts[:, None] + within[None, :]].flatten(0, 1)
        emb = torch.nn.functional.normalize(self.model.embed(x).float(), dim=-1, eps=1e-12)
        return torch.nn.functional.normalize(emb.unflatten(0, (feats.shape[0], -1)).mean(dim=1), dim=-1, eps=1e-12)


def pad_chunk(chunk: np.ndarray, min_frames: int) -> np.ndarray:
    n = chunk.shape[0]
    if n >= min_frames:
        return chunk
    left = (min_frames - n) // 2
    right = min_frames - n - left
    return np.concatenate([np.repeat(chunk[:1], left, 0), chunk, np.repeat(chunk[-1:], right, 0)])


@torch.no_grad()
def embed_utterances(model: torch.nn.Module, items: Iterable[tuple[str, np.ndarray]], device: torch.device,
                     max_chunk_frames: int = 10000, min_chunk_frames: int = 25,
                     batch_frames: int = 0, windows: tuple[int, int] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(utt, embedding)`` for every (utt, prepared features) item, in the
    order batches complete. A batch holds at most ``batch_frames`` frames (padding
    included; 0: ``DEFAULT_BATCH_FRAMES`` of the device), or one chunk where a chunk is longer.
    ``windows=(window, shift)`` averages unit-length window embeddings (the d-vector
    convention) instead of Kaldi's length-weighted chunks."""
    model.eval()
    batch_frames = batch_frames or DEFAULT_BATCH_FRAMES.get(device.type, DEFAULT_BATCH_FRAMES["cpu"])
    min_chunk_frames = max(min_chunk_frames, getattr(model, "min_frames", 1))
    padded = "lengths" in inspect.signature(model.embed).parameters
    buffer: list[tuple[str, np.ndarray]] = []
    size = 0
    for utt, feats in items:
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise SidError(f"utterance '{utt}': no frames to embed")
        buffer.append((utt, feats))
        size += feats.shape[0]
        if size >= SORT_BATCHES * batch_frames:
            yield from _embed_buffer(model, buffer, device, max_chunk_frames, min_chunk_frames, batch_frames, padded,
                                     windows)
            buffer, size = [], 0
    if buffer:
        yield from _embed_buffer(model, buffer, device, max_chunk_frames, min_chunk_frames, batch_frames, padded,
                                 windows)


def _batches(lengths: list[int], batch_frames: int, padded: bool) -> Iterator[list[int]]:
    """Indices of the chunks of each batch: longest first (so memory peaks at once);
    padded, neighbours in length while (count x longest) fits ``batch_frames``;
    else equal lengths only."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and ((len(batch) + 1) * lengths[batch[0]] > batch_frames
                      or (not padded and lengths[i] != lengths[batch[0]])):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _embed_buffer(model, buffer, device, max_chunk_frames, min_chunk_frames, batch_frames, padded, windows=None):
    chunks: list[tuple[int, int, np.ndarray]] = []  # (utterance, weight, chunk)
    for u, (_, feats) in enumerate(buffer):
        if windows is None:
            for start, length in chunk_spans(feats.shape[0], max_chunk_frames):
                chunks.append((u, length, pad_chunk(feats[start:start + length], min_chunk_frames)))
        else:
            for start, length in window_spans(feats.shape[0], *windows):
                chunks.append((u, 1, pad_chunk(feats[start:start + length], min_chunk_frames)))
    sums: list[np.ndarray | None] = [None] * len(buffer)
    totals = np.zeros(len(buffer))
    for batch in _batches([c.shape[0] for _, _, c in chunks], batch_frames, padded):
        lengths = [chunks[i][2].shape[0] for i in batch]
        x = np.zeros((len(batch), lengths[0], chunks[batch[0]][2].shape[1]), dtype=np.float32)
        for row, i in enumerate(batch):
            x[row, :lengths[row]] = chunks[i][2]
        x_t = torch.from_numpy(x).to(device)
        if padded and lengths[-1] != lengths[0]:  # (equal lengths need no mask)
            emb = model.embed(x_t, torch.tensor(lengths, device=device))
        else:
            emb = model.embed(x_t)
        emb = emb.float().cpu().numpy().astype(np.float64)
        if windows is not None:
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        for i, e in zip(batch, emb):
            u, w, _ = chunks[i]
            sums[u] = w * e if sums[u] is None else sums[u] + w * e
            totals[u] += w
    for u, (utt, _) in enumerate(buffer):
        e = sums[u] / totals[u]
        if windows is not None:
            e /= max(np.linalg.norm(e), 1e-12)
        yield utt, e.astype(np.float32)


def pick_device(use_gpu: str) -> torch.device:
    """``use_gpu``: yes (fail without CUDA), no, or optional (CUDA when present)."""
    if use_gpu not in ("yes", "no", "optional", "true", "false"):
        raise SidError(f"--use-gpu must be yes, no or optional, got '{use_gpu}'")
    if use_gpu in ("yes", "true"):
        if not torch.cuda.is_available():
            raise SidError("--use-gpu=yes but no CUDA device is available (use --use-gpu=no)")
        return torch.device("cuda")
    if use_gpu == "optional" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def load_model_dir(model_dir: str | Path, device: torch.device, model_file: str = "final.pt"):
    """The model of a training exp dir, in eval mode, and its config."""
    model_dir = Path(model_dir)
    cfg_path = model_dir / "config.yaml"
    if not cfg_path.exists():
        raise SidError(f"{cfg_path} not found: is {model_dir} a model dir written by steps/train_xvector.sh "
                       "or sid.bin.import_model?")
    cfg = load_config(cfg_path, recorded=True)
    weights = model_dir / model_file
    if not weights.exists():
        raise SidError(f"{weights} not found: training has not finished (rerun steps/train_xvector.sh to resume it)")
    model = build_model(cfg.model)
    model.load_state_dict(checkpoint.load(weights)["model"])
    return model.to(device).eval(), cfg


class Extractor:
    """Raw features + VAD (or, for a model trained from audio, samples) in, embeddings out,
    prepared as the model was trained."""

    def __init__(self, model_dir, device: torch.device, max_chunk_frames: int = 10000, min_chunk_frames: int = 25,
                 batch_frames: int = 0, chunking: str = ""):
        self.model, self.cfg = load_model_dir(model_dir, device)
        ext = self.cfg.extract
        chunking = chunking or ext.chunking
        if chunking not in ("kaldi", "windows"):
            raise SidError(f"--chunking must be kaldi or windows, got '{chunking}'")
        self.windows = (ext.window_frames, ext.window_shift) if chunking == "windows" else None
        self.device = device
        if self.cfg.features is None:
            raise SidError(f"{Path(model_dir) / 'config.yaml'} has no 'features' record: it does not say how its "
                           "training features were normalised")
        record = self.cfg.features
        where = f"{Path(model_dir) / 'config.yaml'}"
        self.from_audio = record.source == "audio"
        self.cmn = self.audio_frontend = None
        if self.from_audio:
            # "none": an imported model that normalises by itself (sid.pretrained).
            cmn = record.cmvn_opts != "none"
            # The training front-end itself, on the whole utterance (its per-chunk mean
            # normalisation is then the utterance's).
            from sid.train import audio

            if record.type == "frontend":
                if self.cfg.frontend is None:
                    raise SidError(f"{where}: features.type frontend but no 'frontend' section")
                self.audio_frontend = audio.ModelFrontend(self.cfg.frontend, cmn, ext.dither)
            elif record.type == "fbank":
                from sid.embedder import options_from_text
                from sid.features.options import FbankOptions

                opts = options_from_text(FbankOptions, record.config, f"{where} (features.config)")
                opts.frame_opts.dither = ext.dither
                self.audio_frontend = audio.FbankFrontend(opts, cmn)
            else:
                raise SidError(f"{where}: features.type '{record.type}' with source audio: only fbank and a "
                               "frontend section are computed from audio")
            self.sample_rate = int(self.audio_frontend.frame_opts.samp_freq)
        else:
            from sid.provenance import parse_cmvn_opts

            self.cmn = parse_cmvn_opts(record.cmvn_opts, f"{where} (features.cmvn_opts)")
        self.max_chunk_frames = max_chunk_frames
        self.min_chunk_frames = min_chunk_frames
        self.batch_frames = batch_frames

    def prepare_audio(self, utt: str, samples: np.ndarray) -> np.ndarray:
        """A model trained from audio: its training front-end's features of ``samples`` (int16
        range, the model's rate; a dither, ``extract.dither``, seeded by ``utt``) less their mean
        over the utterance (unless ``features.cmvn_opts`` is none)."""
        from sid.features.window import num_frames

        if num_frames(len(samples), self.audio_frontend.frame_opts) == 0:
            raise SidError(f"utterance '{utt}': {len(samples)} samples is shorter than one frame")
        return self.audio_frontend(samples, utt)

    def prepare(self, utt: str, feats: np.ndarray, vad: np.ndarray | None) -> np.ndarray:
        """A model trained from features: sliding CMN of the raw features, then voiced frames."""
        from sid.features.cmvn import apply_cmvn_sliding
        from sid.features.vad import select_voiced_frames

        if self.from_audio:
            raise SidError(f"utterance '{utt}': this model was trained from audio (features.source: audio); "
                           "it computes its features from the samples")
        feats = apply_cmvn_sliding(feats, window=self.cmn.cmn_window, min_window=self.cmn.min_window,
                                   center=self.cmn.center, norm_vars=self.cmn.normalize_variance)
        if vad is not None:
            if len(vad) != feats.shape[0]:
                raise SidError(f"utterance '{utt}': VAD has {len(vad)} frames, features {feats.shape[0]}")
            feats = select_voiced_frames(feats, vad)
        return feats

    def embed(self, items: Iterable[tuple[str, np.ndarray]]) -> Iterator[tuple[str, np.ndarray]]:
        return embed_utterances(self.model, items, self.device, self.max_chunk_frames, self.min_chunk_frames,
                                self.batch_frames, self.windows)
