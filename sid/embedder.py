"""Embed and compare audio without a data dir.

    from sid import Embedder
    e = Embedder.from_exp("exp/xvector")
    a = e.embed_file("a.wav")            # float32 [dim]
    b = e.embed(samples, 16000)          # samples: int16 range, or floats in [-1, 1]
    e.score(a, b)                        # cosine, or the exp's back-end (see below)
    e.score_files("a.wav", "b.wav")      # both embedded and scored, durations given to the back-end
    e.threshold                          # the exp's calibrated threshold (score >= it: accept), or None

An utterance goes through exactly what the recipe does to it before
``steps/extract_embeddings.sh``: the features the exp's ``config.yaml`` records
(``features.type`` and ``features.config``; dither is seeded by the utterance id, as in
``compute_*_feats``, so ``utt`` decides the result), the compression round trip
``steps/make_features.sh`` stored them with (``features.compress``), energy VAD as
``steps/compute_vad_decision.sh`` decided it (``features.vad``: its options and the features
it decided on; an exp older than that record takes ``vad_config``, by default the recipe's
``conf/vad.conf``), then ``sid.extract.Extractor``: the
exp's CMN, voiced frames, chunking and batching. A model trained from audio
(``features.source: audio``) gets what it was trained on instead: the fbank, uncompressed,
less the utterance's mean, no VAD, without dither unless the exp's ``extract.dither`` says.
The embedding of an utterance is therefore the one the recipe extracts for it.

Scores are the cosine similarity, unless the exp records a back-end trained for it
(``<exp>/backend.yaml`` from ``sid.bin.record_backend``, ``sid.backend.record``): PLDA, or
cosine + AS-norm + QMF calibration, whose threshold at the recorded target prior is
``threshold``. A back-end dir given as ``backend=`` (score_plda.sh's ``backend_plda``) replaces it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from sid.errors import SidError

# The recipe's VAD options (run.sh, egs/*/run.sh: compute_vad_decision.sh --vad-config conf/vad.conf).
DEFAULT_VAD_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "vad.conf"
INT16_SCALE = 32768.0


def options_from_text(cls, text: str, source: str):
    """An option struct (``sid.features.options``) from a Kaldi config's text, errors naming ``source``."""
    from sid.provenance import parse_options_text

    return parse_options_text(cls, text, source)


class Embedder:
    """A trained (or imported) exp dir as a function from audio to embeddings."""

    def __init__(self, exp: str | Path, device: str = "optional", vad_config: str | Path | None = None,
                 compress: bool | None = None, resample: bool = False, backend: str | Path | None = None,
                 max_chunk_frames: int = 10000, min_chunk_frames: int = 25, batch_frames: int = 0):
        from sid.extract import Extractor, pick_device
        from sid.features.compute import Fbank, Mfcc
        from sid.features.options import FbankOptions, MfccOptions, VadEnergyOptions
        from sid.provenance import options_md5

        self.exp = Path(exp)
        self.device = pick_device(device)
        self.extractor = Extractor(exp, self.device, max_chunk_frames, min_chunk_frames, batch_frames)
        record = self.extractor.cfg.features
        cfg_path = self.exp / "config.yaml"
        if record is None:
            raise SidError(f"{cfg_path} has no 'features' record: it does not say how its features are made "
                           "(retrain with the current steps/train_xvector.sh, or import the model)")
        self.computer = None
        kinds = {"fbank": (FbankOptions, Fbank), "mfcc": (MfccOptions, Mfcc)}
        if self.extractor.from_audio:
            # (The extractor computes the features it was trained on from the samples.)
            self.frame_opts = self.extractor.audio_frontend.frame_opts
        else:
            if record.type not in kinds:
                raise SidError(f"{cfg_path}: features.type '{record.type}' cannot be computed here; "
                               f"allowed: {', '.join(kinds)}")
            options_cls, computer_cls = kinds[record.type]
            feat_opts = options_from_text(options_cls, record.config, f"{cfg_path} (features.config)")
            self.computer = computer_cls(feat_opts)
            self.frame_opts = feat_opts.frame_opts
        self.sample_rate = int(self.frame_opts.samp_freq)
        # The VAD and compression the exp records (features.vad, features.compress); an exp older
        # than that record takes vad_config, else the recipe's conf/vad.conf.
        self.vad_computer = None
        if record.vad is not None:
            if vad_config is not None:
                raise SidError(f"{cfg_path} records the model's VAD (features.vad): do not give a VAD config")
            self.vad_opts = options_from_text(VadEnergyOptions, record.vad.config, f"{cfg_path} (features.vad.config)")
            if (record.vad.features_type, options_md5(record.vad.features_config)) != (record.type, record.checksum):
                # (run.sh's fbank: the VAD decides on MFCCs computed beside them)
                if record.vad.features_type not in kinds:
                    raise SidError(f"{cfg_path}: features.vad.features_type '{record.vad.features_type}' cannot be "
                                   f"computed here; allowed: {', '.join(kinds)}")
                vad_cls, vad_computer_cls = kinds[record.vad.features_type]
                self.vad_computer = vad_computer_cls(options_from_text(
                    vad_cls, record.vad.features_config, f"{cfg_path} (features.vad.features_config)"))
        else:
            vad_config = DEFAULT_VAD_CONFIG if vad_config is None else vad_config
            try:
                vad_text = Path(vad_config).read_text(encoding="utf-8")
            except OSError as err:
                raise SidError(f"cannot read VAD config {vad_config}: {err.strerror}") from None
            self.vad_opts = options_from_text(VadEnergyOptions, vad_text, str(vad_config))
        self.compress = record.compress if compress is None else compress
        self.resample = resample
        from sid.backend.record import Backend

        self.backend = Backend.of_model(self.exp) if backend is None else Backend("plda", backend)

    @classmethod
    def from_exp(cls, exp: str | Path, **kwargs) -> "Embedder":
        """The Embedder of an exp dir (``config.yaml`` and ``final.pt``); keywords as ``Embedder``."""
        return cls(exp, **kwargs)

    # -- audio to prepared features ---------------------------------------------------------------
    def _samples(self, samples, sr: int, where: str, int16_range: bool | None) -> np.ndarray:
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise SidError(f"{where}: expected mono samples (one dimension), got shape {samples.shape}")
        if samples.size == 0:
            raise SidError(f"{where}: audio is empty")
        if int16_range is None:
            int16_range = np.issubdtype(samples.dtype, np.integer)
        scale = 1.0 if int16_range else INT16_SCALE
        samples = samples.astype(np.float64) * scale
        if sr != self.sample_rate:
            frame = self.frame_opts
            allowed = (sr > self.sample_rate and frame.allow_downsample) or (sr < self.sample_rate and frame.allow_upsample)
            if not (self.resample or allowed):
                raise SidError(f"{where}: sample rate {sr} Hz, the model's features need {self.sample_rate} Hz "
                               "(resample the audio, or ask for resampling: resample=True, --resample=true)")
            from math import gcd

            from scipy.signal import resample_poly

            g = gcd(self.sample_rate, sr)
            samples = resample_poly(samples, self.sample_rate // g, sr // g)
        return np.ascontiguousarray(samples, dtype=np.float32)

    def features(self, samples, sr: int, utt: str = "", where: str = "", int16_range: bool | None = None) -> np.ndarray:
        """Prepared features (CMN'd voiced frames, or for a model trained from audio its CMN'd
        fbank) of one utterance, as extraction gets them.
        ``int16_range``: the samples' scale (default: integers are, floats are in [-1, 1])."""
        from sid import kaldi_io
        from sid.features.vad import compute_vad
        from sid.features.window import num_frames

        where = where or f"utterance '{utt}'"
        x = self._samples(samples, sr, where, int16_range)
        if num_frames(len(x), self.frame_opts) == 0:
            raise SidError(f"{where}: {len(x)} samples is shorter than one frame")
        if self.extractor.from_audio:
            return self.extractor.prepare_audio(utt, x)
        feats = self.computer.compute(x, utt)
        if not np.isfinite(feats).all():
            raise SidError(f"{where}: features contain non-finite values")
        vad_feats = feats if self.vad_computer is None else self.vad_computer.compute(x, utt)
        if self.compress:
            feats, vad_feats = (kaldi_io.decode(kaldi_io.encode_compressed(m, kaldi_io.AUTOMATIC_COMPRESSION), 0, where)[0]
                                for m in (feats, vad_feats))
        prepared = self.extractor.prepare(utt, feats, compute_vad(vad_feats, self.vad_opts))
        if prepared.shape[0] == 0:
            raise SidError(f"{where}: no voiced frames to embed")
        return prepared

    def read(self, path: str, utt: str = "") -> tuple[np.ndarray, int]:
        """Samples (int16 range) and rate of a file or ``wav.scp`` value (see ``decode``)."""
        from sid.data.audio import read_audio

        return self.decode(lambda rate, resample: read_audio(path, utt=utt, sample_rate=rate, resample=resample))

    def decode(self, read) -> tuple[np.ndarray, int]:
        """``read(sample_rate, resample) -> (samples, sr)`` called as compute_*_feats calls it:
        resampled to the model's rate when asked for (or allowed by the feature config)."""
        frame = self.frame_opts
        samples, sr = read(None, False)
        if sr != self.sample_rate and (self.resample or (sr > self.sample_rate and frame.allow_downsample)
                                       or (sr < self.sample_rate and frame.allow_upsample)):
            samples, sr = read(self.sample_rate, True)
        return samples, sr

    # -- embeddings -------------------------------------------------------------------------------
    def embed_many(self, items: Iterable[tuple[str, np.ndarray, int]],
                   int16_range: bool | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """``(utt, embedding)`` for ``(utt, samples, sr)`` items, batched (in the order batches
        complete). Scale as ``features``."""
        prepared = ((utt, self.features(s, sr, utt, int16_range=int16_range)) for utt, s, sr in items)
        return self.extractor.embed(prepared)

    def embed(self, samples, sr: int, utt: str = "", int16_range: bool | None = None) -> np.ndarray:
        """The embedding of one utterance's samples (``utt`` seeds the dither, as its id does in
        the recipe). Integer samples are taken in the int16 range, floats in [-1, 1]."""
        return next(iter(self.embed_many([(utt, samples, sr)], int16_range)))[1]

    def embed_file(self, path: str | Path, utt: str | None = None) -> np.ndarray:
        """The embedding of an audio file (any format ``sid.data.audio`` reads); ``utt`` defaults
        to the file name without its extension."""
        return self._embed_path(str(path), utt)[0]

    def _embed_path(self, path: str, utt: str | None = None) -> tuple[np.ndarray, float]:
        """The embedding of a file and its duration in seconds."""
        utt = Path(path).stem if utt is None else utt
        samples, sr = self.read(path, utt)
        prepared = self.features(samples, sr, utt, where=path, int16_range=True)
        return next(iter(self.extractor.embed([(utt, prepared)])))[1], len(samples) / sr

    @property
    def threshold(self) -> float | None:
        """The back-end's calibrated decision threshold (accept a score >= it), when the exp has one."""
        return None if self.backend is None else self.backend.threshold

    def score(self, a: np.ndarray, b: np.ndarray, dur_a: float | None = None, dur_b: float | None = None) -> float:
        """Cosine similarity, or the back-end's score as its scoring step computes it for a trial
        (PLDA: mean, LDA, length norm, PLDA; QMF needs both utterances' durations in seconds)."""
        a = np.asarray(a, dtype=np.float32).reshape(-1)
        b = np.asarray(b, dtype=np.float32).reshape(-1)
        if a.shape != b.shape:
            raise SidError(f"embeddings of different dimensions: {a.shape[0]} and {b.shape[0]}")
        if self.backend is not None:
            return self.backend.score(a, b, dur_a, dur_b)
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na == 0 or nb == 0:
            raise SidError("cannot score a zero embedding")
        return float(a @ b / (na * nb))

    def score_files(self, a: str | Path, b: str | Path) -> float:
        """The score of two audio files (their durations as utt2dur gives them: the whole file)."""
        (ea, da), (eb, db) = self._embed_path(str(a)), self._embed_path(str(b))
        return self.score(ea, eb, da, db)
