"""Training chunks made from audio in the DataLoader workers (WeSpeaker's data path).

Three separate pieces, composed by ``AudioChunkDataset`` (so other samplers and
front-ends can reuse them):

* ``AudioReader``: the samples of ``[first, first + count)`` of an utterance, read
  by seeking where the format allows (wav, flac and other lossless formats of
  soundfile) and by decoding the whole recording otherwise (ogg/opus, mp3, m4a,
  pipes; the last one decoded is cached);
  ``segments`` are honoured. A span past the utterance's end is wrap-padded, as
  the feature path pads chunks.
* ``Augmenter``: per chunk, with probability ``aug_prob``, one of RIR
  reverberation or MUSAN noise / music / babble, with the numerics of Kaldi's
  ``wav-reverberate`` (``sid.augment.recipe.reverberate_and_add``); SNRs are drawn
  uniformly within WeSpeaker's and Kaldi's ranges (noise 0-15 dB, music 5-15 dB,
  babble 13-20 dB with 3-7 speakers).
* a front-end: ``FbankFrontend`` (Kaldi-exact fbank of ``sid.features`` with the
  dither seeded per chunk, then per-chunk mean normalisation as WeSpeaker does), or for a
  config with a ``frontend`` section ``ModelFrontend`` (its own front-end: Kaldi fbank
  with its bins, voxceleb_trainer's log-mel, or raw waveform rows for ConvGRU, as
  ``compute_frontend_feats`` computes them, then per-chunk mean normalisation; none where
  the exp's ``features.cmvn_opts`` is none, as for a fine-tuned import that normalises by itself).
  Any callable ``frontend(samples, key) -> feats[frames, dim]`` with ``dim`` and
  ``frame_opts`` attributes fits.

Speed perturbation (``speed_perturb: speakers`` or ``plain``) draws one of 1.0, 0.9
and 1.1 per chunk; ``speakers`` makes each perturbed speed a new class (WeSpeaker's
``spk + k * num_spk``), ``plain`` keeps the label.

Every random choice of chunk ``j`` of batch ``b`` in epoch ``e`` comes from a
generator seeded with ``(seed, e, b, j)`` (see ``ChunkDraw``), so a resumed run
makes exactly the chunks an uninterrupted one makes, whatever the worker count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sid.data.table import read_dict
from sid.errors import AudioError, DataDirError, SidError
from sid.train.data import Batch, ChunkDataset, TrainingSet, derive_seed
from sid.train.specaug import SpecAugment

log = logging.getLogger(__name__)

AUG_KINDS = ("reverb", "noise", "music", "babble")
SPEED_FACTORS = (1.0, 0.9, 1.1)
# libsndfile formats whose decoders need pre-roll: a seek does not give the samples
# a full decode gives, so they are decoded whole.
LOSSY_FORMATS = {"OGG", "MPEG"}


@dataclass(frozen=True)
class AudioSpan:
    """Where an utterance's samples are: a ``wav.scp`` value and, for a segment,
    its start and end in seconds (``end`` None: to the end of the recording); or a
    member of a tar shard (``spec`` is then the tar file)."""
    spec: str
    start: float = 0.0
    end: float | None = None
    member: object = None   # sid.data.shards.Member


def _read_durations(path: Path) -> dict[str, float]:
    out = {}
    for utt, value in read_dict(path).items():
        try:
            out[utt] = float(value)
        except ValueError:
            raise DataDirError(f"{path}: utterance '{utt}': duration '{value}' is not a number") from None
    return out


def read_audio_spans(data_dir: str | Path) -> dict[str, AudioSpan]:
    """Utterance -> ``AudioSpan`` from ``wav.scp`` (and ``segments``)."""
    data_dir = Path(data_dir)
    if not (data_dir / "wav.scp").is_file():
        raise DataDirError(f"{data_dir}/wav.scp not found: data.source 'audio' trains from a data dir with audio")
    wav = read_dict(data_dir / "wav.scp")
    if not (data_dir / "segments").is_file():
        return {u: AudioSpan(s) for u, s in wav.items()}
    out = {}
    for utt, value in read_dict(data_dir / "segments").items():
        fields = value.split()
        try:
            rec, start, end = fields[0], float(fields[1]), float(fields[2])
        except (ValueError, IndexError):
            raise DataDirError(f"{data_dir}/segments: utterance '{utt}': expected '<recording> <start> <end>'") from None
        if rec not in wav:
            raise DataDirError(f"{data_dir}/segments: recording '{rec}' of utterance '{utt}' is not in wav.scp")
        out[utt] = AudioSpan(wav[rec], start, end if end > 0 else None)
    return out


def read_audio_training_set(data_dir: str | Path, frame_opts, spk2id: dict[str, int] | None = None) -> TrainingSet:
    """A ``TrainingSet`` whose utterances are audio (``wav.scp``, ``utt2spk``, ``utt2dur``);
    lengths are in frames of ``frame_opts``, from the durations."""
    from sid.features.window import num_frames

    data_dir = Path(data_dir)
    from sid.data.shards import is_shard_dir

    if is_shard_dir(data_dir):
        from sid.train.data import read_shard_training_set

        return read_shard_training_set(data_dir, "audio", frame_opts, spk2id)
    for name in ("utt2spk", "utt2dur"):
        if not (data_dir / name).is_file():
            hint = f" (utils/data/get_utt2dur.sh {data_dir})" if name == "utt2dur" else ""
            raise DataDirError(f"{data_dir}/{name} not found: training from audio needs it{hint}")
    spans = read_audio_spans(data_dir)
    utt2spk = read_dict(data_dir / "utt2spk")
    durs = _read_durations(data_dir / "utt2dur")
    for table, name in ((utt2spk, "utt2spk"), (durs, "utt2dur")):
        missing = [u for u in spans if u not in table]
        if missing:
            raise DataDirError(f"{data_dir}/{name} lacks utterance '{missing[0]}' ({len(missing)} in all; "
                               "run utils/fix_data_dir.sh)")
    if not spans:
        raise DataDirError(f"{data_dir}/wav.scp is empty")
    if spk2id is None:
        spk2id = {s: i for i, s in enumerate(sorted({utt2spk[u] for u in spans}, key=str.encode))}
    utts = sorted(spans, key=str.encode)
    unknown = [u for u in utts if utt2spk[u] not in spk2id]
    if unknown:
        raise DataDirError(f"speaker '{utt2spk[unknown[0]]}' of utterance '{unknown[0]}' is not in the saved label map spk2id")
    rate = frame_opts.samp_freq
    lengths = np.array([num_frames(int(durs[u] * rate), frame_opts) for u in utts], dtype=np.int64)
    labels = np.array([spk2id[utt2spk[u]] for u in utts], dtype=np.int64)
    return TrainingSet(utts, {u: spans[u] for u in utts}, labels, lengths, spk2id)


class AudioReader:
    """Spans of utterances' samples (float32, int16 range) at one sample rate."""

    def __init__(self, spans: dict[str, AudioSpan], sample_rate: int):
        self.spans = spans
        self.sample_rate = sample_rate
        self._decoded: tuple[str, np.ndarray] | None = None  # the last fully decoded utterance

    def __getstate__(self):
        return {"spans": self.spans, "sample_rate": self.sample_rate, "_decoded": None}

    def _seekable(self, span: AudioSpan) -> bool:
        from sid.data.audio import PYAV_EXTENSIONS

        if span.member is not None:
            return True
        spec = span.spec.strip()
        return not spec.endswith("|") and spec != "-" and Path(spec).suffix.lower() not in PYAV_EXTENSIONS

    def _open(self, span: AudioSpan, stack: contextlib.ExitStack):
        import soundfile as sf

        if span.member is None:
            return stack.enter_context(sf.SoundFile(span.spec.strip()))
        from sid.data.shards import MemberFile

        raw = stack.enter_context(MemberFile(span.member))
        return stack.enter_context(sf.SoundFile(raw))

    def _read_seek(self, utt: str, span: AudioSpan, first: int, count: int) -> np.ndarray | None:
        """Samples by seeking, or None where the file cannot be read that way."""
        path = span.spec.strip()
        with contextlib.ExitStack() as stack:
            try:
                f = self._open(span, stack)
            except Exception:
                return None
            if f.samplerate != self.sample_rate:
                raise AudioError(f"utterance '{utt}' ({path}): sample rate {f.samplerate} Hz, the front-end "
                                 f"expects {self.sample_rate} Hz")
            if not f.seekable() or f.format in LOSSY_FORMATS:
                return None
            begin = int(span.start * self.sample_rate)
            end = f.frames if span.end is None else min(f.frames, int(span.end * self.sample_rate))
            lo = min(begin + first, end)
            f.seek(lo)
            data = f.read(min(count, end - lo), dtype="float32", always_2d=True)
        return data[:, 0] * 32768.0

    def _read_decoded(self, utt: str, span: AudioSpan, first: int, count: int) -> np.ndarray:
        from sid.data.audio import read_audio

        if self._decoded is None or self._decoded[0] != utt:
            self._decoded = None
            if span.member is not None:
                samples = self._decode_member(utt, span)
            else:
                samples, _ = read_audio(span.spec, utt=utt, sample_rate=self.sample_rate, start=span.start, end=span.end)
            self._decoded = (utt, samples)
        return self._decoded[1][first:first + count]

    def _decode_member(self, utt: str, span: AudioSpan) -> np.ndarray:
        import soundfile as sf

        from sid.data.shards import MemberFile

        m = span.member
        with MemberFile(m) as raw:
            payload = raw.read()
        try:
            data, sr = sf.read(io.BytesIO(payload), dtype="float32", always_2d=True)
        except Exception as err:
            raise AudioError(f"utterance '{utt}' ({m.path}, member {m.name}): cannot decode: {err}") from None
        if sr != self.sample_rate:
            raise AudioError(f"utterance '{utt}' ({m.path}): sample rate {sr} Hz, the front-end expects {self.sample_rate} Hz")
        return data[:, 0] * 32768.0

    def read(self, utt: str, first: int, count: int) -> np.ndarray:
        """``count`` samples from sample ``first`` of ``utt``; past its end the piece read
        is repeated (wrap padding); an utterance starting past its end reads from 0."""
        span = self.spans[utt]
        piece = self._read_seek(utt, span, first, count) if self._seekable(span) else None
        if piece is None:
            piece = self._read_decoded(utt, span, first, count)
        if len(piece) == 0 and first > 0:
            return self.read(utt, 0, count)
        if len(piece) == 0:
            raise AudioError(f"utterance '{utt}' ({span.spec}): no audio")
        if len(piece) < count:
            piece = np.pad(piece, (0, count - len(piece)), mode="wrap")
        return np.ascontiguousarray(piece, dtype=np.float32)


def speed_perturb(samples: np.ndarray, factor: float) -> np.ndarray:
    """``sox speed``: resampled by ``1 / factor`` (as ``sid.augment.recipe.speed_perturb``)."""
    from sid.augment.recipe import speed_perturb as perturb

    return perturb(samples, factor)


def _noise_table(data_dir: str | Path) -> tuple[list[str], list[float]]:
    from sid.augment.datadir import _noise_dir

    return _noise_dir(data_dir)


class Augmenter:
    """Reverberation and additive noises for chunks (see the module docstring).

    ``rir_lists``: RIRS_NOISES ``rir_list`` files; ``noise_dirs``: ``{kind: data dir}``
    for ``noise``, ``music`` and ``babble`` (MUSAN speech), as ``local/make_musan.py``
    writes them. Only the kinds in ``kinds`` need their sources.
    """

    def __init__(self, sample_rate: int, kinds, rir_lists, noise_dirs: dict, noise_snr, music_snr, babble_snr,
                 babble_speakers):
        from sid.augment.datadir import read_rir_list

        bad = [k for k in kinds if k not in AUG_KINDS]
        if bad or not kinds:
            raise SidError(f"data.aug_kinds must be a non-empty list among {list(AUG_KINDS)}, got {list(kinds)}")
        self.sample_rate = sample_rate
        self.kinds = list(kinds)
        self.snr = {"noise": tuple(noise_snr), "music": tuple(music_snr), "babble": tuple(babble_snr)}
        for kind, rng in self.snr.items():
            if len(rng) != 2 or rng[0] > rng[1]:
                raise SidError(f"data.{kind}_snr must be [low, high] with low <= high, got {list(rng)}")
        self.babble_speakers = tuple(babble_speakers)
        if len(self.babble_speakers) != 2 or not 1 <= self.babble_speakers[0] <= self.babble_speakers[1]:
            raise SidError(f"data.babble_speakers must be [min, max] with 1 <= min <= max, got {list(babble_speakers)}")
        self.rirs: list[str] = []
        if "reverb" in self.kinds:
            if not rir_lists:
                raise SidError("augmentation kind 'reverb' needs RIR lists (--rir-list, e.g. data/rirs/smallroom/rir_list)")
            for path in rir_lists:
                self.rirs += read_rir_list(path)
        noise_dirs = noise_dirs or {}
        self.noises: dict[str, tuple[list[str], list[float]]] = {}
        for kind in ("noise", "music", "babble"):
            if kind in self.kinds:
                if not noise_dirs.get(kind):
                    raise SidError(f"augmentation kind '{kind}' needs its noise data dir (--{kind}-dir, "
                                   "from local/make_musan.py)")
                self.noises[kind] = _noise_table(noise_dirs[kind])
        self._reader = None

    @classmethod
    def from_config(cls, sample_rate: int, data_cfg, rir_lists, noise_dirs: dict) -> "Augmenter":
        """From the ``data`` section (``sid.config.DataConfig``) and the sources' paths."""
        return cls(sample_rate, data_cfg.aug_kinds, rir_lists, noise_dirs, data_cfg.noise_snr, data_cfg.music_snr,
                   data_cfg.babble_snr, data_cfg.babble_speakers)

    def draw(self, rng: np.random.Generator, num_samples: int) -> dict:
        """The random choices of one augmentation (a recipe, for logs and tests)."""
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        if kind == "reverb":
            return {"kind": kind, "rir": self.rirs[int(rng.integers(len(self.rirs)))]}
        specs, durs = self.noises[kind]
        count = 1 if kind != "babble" else int(rng.integers(self.babble_speakers[0], self.babble_speakers[1] + 1))
        lo, hi = self.snr[kind]
        parts = []
        for _ in range(count):
            k = int(rng.integers(len(specs)))
            room = max(0, int(durs[k] * self.sample_rate) - num_samples)
            parts.append({"file": specs[k], "snr": float(lo + (hi - lo) * rng.random()),
                          "offset": int(rng.integers(room + 1))})
        return {"kind": kind, "additive": parts}

    def apply(self, samples: np.ndarray, recipe: dict) -> np.ndarray:
        from sid.augment.recipe import _read_rir, reverberate_and_add

        if recipe["kind"] == "reverb":
            rir = _read_rir(recipe["rir"], self.sample_rate)
            return reverberate_and_add(samples, self.sample_rate, rir, []).astype(np.float32)
        if self._reader is None:
            self._reader = AudioReader({}, self.sample_rate)
        additive = []
        for part in recipe["additive"]:
            spec = part["file"]
            self._reader.spans.setdefault(spec, AudioSpan(spec))
            # A noise shorter than the chunk is repeated to fill it (Kaldi's background noises).
            noise = self._reader.read(spec, part["offset"], len(samples))
            additive.append((noise, part["snr"], 0.0, spec))
        return reverberate_and_add(samples, self.sample_rate, None, additive).astype(np.float32)


class FbankFrontend:
    """Kaldi fbank of a chunk (dither seeded by the chunk's key) and per-chunk mean normalisation."""

    def __init__(self, opts, cmn: bool = True):
        from sid.features.compute import Fbank

        self.fbank = Fbank(opts)
        self.frame_opts = opts.frame_opts
        self.dim = self.fbank.dim
        self.cmn = cmn

    def __call__(self, samples: np.ndarray, key: str) -> np.ndarray:
        feats = self.fbank.compute(samples, key)
        if self.cmn:
            feats = feats - feats.mean(axis=0, keepdims=True)
        return feats


class ModelFrontend:
    """A model config's own front-end (its ``frontend`` section: ``sid.features.frontends``)
    of a chunk, exactly as ``compute_frontend_feats`` computes it for extraction (Kaldi's
    frame count, 25 ms / 10 ms without snip-edges; Kaldi's filterbank for ``type: fbank``,
    dither seeded by the chunk's key), then per-chunk mean normalisation (``cmn``: the trainer and
    extraction pass what the exp's ``features.cmvn_opts`` says; ``dither``: extraction's).
    """

    def __init__(self, cfg, cmn: bool = True, dither: float | None = None):
        from sid.features.compute import Fbank
        from sid.features.frontends import build_frontend
        from sid.features.options import FbankOptions

        fb_opts = FbankOptions()
        fb_opts.frame_opts.snip_edges = False
        if dither is not None:      # (extraction's, extract.dither; else Kaldi's default)
            fb_opts.frame_opts.dither = dither
        self.frame_opts = fb_opts.frame_opts
        self.module = build_frontend(cfg)
        if cfg.type == "waveform":
            # A chunk of L rows reads exactly L whole 10 ms rows of samples (a 25 ms frame count
            # would leave the last row, the one a GRU embeds, half zero-padded).
            self.frame_opts = dataclasses.replace(fb_opts.frame_opts, snip_edges=True,
                                                  frame_length_ms=1000.0 * cfg.frame_samples / 16000)
        self.fbank = None
        if self.module is None:
            fb_opts.mel_opts.num_bins = cfg.num_mel_bins
            self.fbank = Fbank(fb_opts)
        self.dim = self.fbank.dim if self.fbank is not None else self.module.dim
        self.cmn = cmn

    def __call__(self, samples: np.ndarray, key: str) -> np.ndarray:
        from sid.features.frontends import frontend_features

        if self.fbank is not None:
            feats = self.fbank.compute(samples, key)
        else:
            # (A chunk's frame count is Kaldi's either way; a whole utterance's keeps the
            # front-end's own last frame, as the toolkit it was imported from computes it.)
            feats = frontend_features(self.module, samples, snip_edges=False, kaldi_count=False)
        if self.cmn:
            feats = feats - feats.mean(axis=0, keepdims=True)
        return feats


class BatchFbankFrontend:
    """``data.fbank_on: device``: the workers deliver each batch's raw chunks (``raw_batch``) and
    ``features`` turns them into what ``FbankFrontend`` and SpecAugment give in the workers, in
    batches on the samples' device (``sid.features.torch_fbank``): fbank, each chunk's mean
    subtracted (unless ``cmn`` is false), SpecAugment with the same draws. The dither comes from
    a torch generator seeded by (seed, epoch, batch), so it is as reproducible as the worker's
    (but other noise)."""

    def __init__(self, opts, seed: int, specaug: SpecAugment | None = None, cmn: bool = True):
        self.opts = opts
        self.cmn = cmn
        self.frame_opts = opts.frame_opts
        self.dim = opts.mel_opts.num_bins + (1 if opts.use_energy else 0)
        self.seed = seed
        self.specaug = specaug
        self._fbank = None

    def features(self, samples: torch.Tensor, epoch: int, b: int) -> torch.Tensor:
        from sid.features.torch_fbank import BatchFbank

        if self._fbank is None or self._fbank.device != samples.device:
            self._fbank = BatchFbank(self.opts, samples.device)
        gen = torch.Generator(device=samples.device)
        gen.manual_seed(derive_seed(self.seed, epoch, b, 0xFBA4))
        feats = self._fbank(samples, gen)
        if self.cmn:
            feats = feats - feats.mean(dim=1, keepdim=True)
        if self.specaug is not None:
            self.specaug(feats, np.random.default_rng(derive_seed(self.seed, epoch, b, 0x5BEC)))
        return feats


def fbank_options(config_file: str | Path):
    """``FbankOptions`` from a Kaldi config file (``--config`` of compute-fbank-feats)."""
    from sid.cli import KaldiOptions
    from sid.features.options import FbankOptions

    if not Path(config_file).is_file():
        raise SidError(f"fbank config {config_file} not found")
    po = KaldiOptions("fbank options")
    FbankOptions().register(po)
    opts, _ = po.parse([f"--config={config_file}"], num_args=0)
    return FbankOptions.from_opts(opts)


def samples_for_frames(frames: int, frame_opts) -> int:
    """The fewest samples that give ``frames`` frames."""
    shift, length = frame_opts.window_shift, frame_opts.window_size
    if frame_opts.snip_edges:
        return (frames - 1) * shift + length
    return frames * shift - shift // 2


@dataclass
class ChunkDraw:
    """Random choices for one chunk: speed factor index and augmentation recipe (or None)."""
    speed: int
    aug: dict | None


class AudioChunkDataset(ChunkDataset):
    """Item ``i`` is batch ``i`` of the epoch's plan made from audio: ``(feats[B,L,D], labels[B], i)``.

    ``speed_perturb``: ``none``, ``speakers`` (labels of speed ``k`` are
    ``label + k * num_speakers``) or ``plain``.
    """

    def __init__(self, data: TrainingSet, seed: int, frontend, specaug: SpecAugment | None = None,
                 augmenter: Augmenter | None = None, aug_prob: float = 0.0, speed_perturb: str = "none"):
        torch.utils.data.Dataset.__init__(self)
        if speed_perturb not in ("none", "speakers", "plain"):
            raise SidError(f"data.speed_perturb must be none, speakers or plain, got '{speed_perturb}'")
        if not 0.0 <= aug_prob <= 1.0:
            raise SidError(f"data.aug_prob must be within [0, 1], got {aug_prob}")
        if aug_prob > 0 and augmenter is None:
            raise SidError("data.aug_prob > 0 needs augmentation sources")
        self.data = data
        self.seed = seed
        self.specaug = specaug
        self.frontend = frontend
        self.reader = AudioReader(data.feats, int(frontend.frame_opts.samp_freq))
        self.augmenter = augmenter
        self.aug_prob = aug_prob
        self.speed_perturb = speed_perturb
        self.num_speakers = len(data.spk2id)
        self.epoch = 0
        self.batches: list[Batch] = []

    def draw(self, b: int, j: int, num_samples: int) -> ChunkDraw:
        """The choices of chunk ``j`` of batch ``b`` this epoch: a pure function of (seed, epoch, b, j)."""
        rng = np.random.default_rng(derive_seed(self.seed, self.epoch, b, j, 0xA0D10))
        speed = int(rng.integers(len(SPEED_FACTORS))) if self.speed_perturb != "none" else 0
        aug = None
        if self.aug_prob > 0 and rng.random() < self.aug_prob:
            aug = self.augmenter.draw(rng, num_samples)
        return ChunkDraw(speed, aug)

    def chunk_audio(self, b: int, j: int) -> tuple[np.ndarray, ChunkDraw]:
        """The (augmented) samples of chunk ``j`` of batch ``b``."""
        batch = self.batches[b]
        opts = self.frontend.frame_opts
        need = samples_for_frames(batch.length, opts)
        choice = self.draw(b, j, need)
        utt = self.data.utts[batch.utt_index[j]]
        first = int(batch.start[j]) * opts.window_shift
        factor = SPEED_FACTORS[choice.speed]
        if factor == 1.0:
            x = self.reader.read(utt, first, need)
        else:
            # A few samples beyond the span keep the resampling filter's edge out of the chunk.
            x = self.reader.read(utt, first, int(math.ceil(need * factor)) + 64)
            x = speed_perturb(x, factor)
            x = np.pad(x, (0, max(0, need - len(x))), mode="wrap")[:need].astype(np.float32)
        if choice.aug is not None:
            x = self.augmenter.apply(x, choice.aug)
        return x, choice

    def raw_batch(self, b: int):
        """``(samples[B, N], labels[B], b)``: the (augmented) audio of batch ``b`` for
        ``BatchFbankFrontend`` (``data.fbank_on: device``)."""
        batch = self.batches[b]
        need = samples_for_frames(batch.length, self.frontend.frame_opts)
        samples = np.empty((len(batch.utt_index), need), dtype=np.float32)
        labels = self.data.labels[batch.utt_index].copy()
        for j in range(len(batch.utt_index)):
            samples[j], choice = self.chunk_audio(b, j)
            if self.speed_perturb == "speakers":
                labels[j] += choice.speed * self.num_speakers
        return torch.from_numpy(samples), torch.from_numpy(labels), b

    def __getitem__(self, b: int):
        if isinstance(self.frontend, BatchFbankFrontend):
            return self.raw_batch(b)
        batch = self.batches[b]
        feats = np.empty((len(batch.utt_index), batch.length, self.frontend.dim), dtype=np.float32)
        labels = self.data.labels[batch.utt_index].copy()
        for j in range(len(batch.utt_index)):
            x, choice = self.chunk_audio(b, j)
            f = self.frontend(x, f"{self.data.utts[batch.utt_index[j]]}/{self.epoch}/{b}/{j}")
            if f.shape[0] < batch.length:
                raise AudioError(f"utterance '{self.data.utts[batch.utt_index[j]]}': front-end gave {f.shape[0]} "
                                 f"frames for a {batch.length}-frame chunk")
            feats[j] = f[:batch.length]
            if self.speed_perturb == "speakers":
                labels[j] += choice.speed * self.num_speakers
        if self.specaug is not None:
            self.specaug(feats, np.random.default_rng(derive_seed(self.seed, self.epoch, b, 0x5BEC)))
        return torch.from_numpy(feats), torch.from_numpy(labels), b


def num_classes(num_speakers: int, speed_perturb: str) -> int:
    return num_speakers * (len(SPEED_FACTORS) if speed_perturb == "speakers" else 1)
