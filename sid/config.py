"""The one schema of the training YAML (``--model-config``) and of ``<exp>/config.yaml``.

Each section is a dataclass whose field defaults are the ONLY defaults of the training
settings; code reads the typed fields (``cfg.optim.lr``), never ``dict.get(key, default)``.
Loading is strict: an unknown key, a misspelt section or a value of the wrong type is a
``SidError`` naming the file, the dotted key and what is allowed.

The ``model`` section is checked against the constructor of the model its ``type`` names
(``sid.models.MODELS``): the constructor's parameters, annotations and defaults are that
section's schema, so a model's settings live in one place.

To add a setting: add a typed field with its default to the section's dataclass below
(``Literal[...]`` for a choice, ``X | None`` for optional, another dataclass for a nested
mapping, ``field(metadata={"min": v})`` for a lower bound, ``"max"`` for an upper one) and read it where it is used.
To add a section: a dataclass plus a field of ``TrainConfig``. To add a model: a
constructor with annotated, defaulted parameters, registered in ``sid.models.MODELS``.
Old exp dirs keep their meaning: their ``config.yaml`` records every value in full.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sid.errors import SidError


# -- sections ---------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """``type`` and the keyword arguments given for that model's constructor (validated); the
    constructor supplies the rest (``to_dict`` writes them all, so a record is complete)."""
    type: str
    args: dict[str, Any]

    def to_dict(self) -> dict:
        full = {n: p.default for n, p in _model_params(self.type).items()} | self.args
        return {"type": self.type, **{k: list(v) if isinstance(v, tuple) else v for k, v in full.items()}}


@dataclass
class MarginScheduleConfig:
    increase_start_epoch: float = field(default=0.0, metadata={"min": 0})
    fix_start_epoch: float = field(default=0.0, metadata={"min": 0})
    increase_type: Literal["exp", "linear"] = "exp"
    initial_margin: float = 0.0


@dataclass
class LossConfig:
    # ge2e, angular_prototypical, softmax_proto and triplet need data.sampler: speaker_balanced
    type: Literal["softmax", "am_softmax", "aam_softmax", "ge2e", "angular_prototypical", "softmax_proto",
                  "triplet"] = "softmax"
    margin: float = 0.2                     # am/aam_softmax, triplet
    scale: float = field(default=30.0, metadata={"min": 0})
    easy_margin: bool = False               # aam_softmax only
    margin_schedule: MarginScheduleConfig | None = None   # none: the margin is fixed
    variant: Literal["softmax", "contrast"] = "softmax"   # ge2e only
    init_w: float = field(default=10.0, metadata={"min": 0})   # ge2e, (softmax_)angular_prototypical: w cos + b
    init_b: float = -5.0
    hard_negative: bool = False             # triplet only: the nearest negative instead of all


@dataclass
class SpecAugConfig:
    enabled: bool = True                    # a section present is on unless it says otherwise
    freq_masks: int = field(default=1, metadata={"min": 0})
    freq_width: int = field(default=8, metadata={"min": 0})
    time_masks: int = field(default=1, metadata={"min": 0})
    time_width: int = field(default=10, metadata={"min": 0})
    prob: float = field(default=0.6, metadata={"min": 0})


AugKind = Literal["reverb", "noise", "music", "babble"]


@dataclass
class DataConfig:
    # random: batch_size chunks from any utterances; speaker_balanced: speakers_per_batch (N) x
    # utts_per_speaker (M) (batch_size and chunks_per_utt unused), each utterance once an epoch
    sampler: Literal["random", "speaker_balanced"] = "random"
    speakers_per_batch: int = field(default=0, metadata={"min": 0})
    utts_per_speaker: int = field(default=0, metadata={"min": 0})
    batch_size: int = field(default=128, metadata={"min": 1})
    min_frames: int = field(default=200, metadata={"min": 1})
    max_frames: int = field(default=400, metadata={"min": 1})
    chunks_per_utt: int = field(default=1, metadata={"min": 1})
    specaug: SpecAugConfig | None = None    # none: no SpecAugment
    # What the workers read (sid.train.audio): prepared features, or audio turned into fbank per chunk.
    source: Literal["features", "audio"] = "features"
    shuffle_buffer: int = field(default=1000, metadata={"min": 1})   # chunks; training from shards only
    # Audio source only: per-chunk augmentation probability and its kinds, SNR ranges (dB) and
    # babble speaker counts ([low, high], drawn uniformly), speed perturbation 0.9/1.1.
    aug_prob: float = field(default=0.0, metadata={"min": 0})
    aug_kinds: list[AugKind] = field(default_factory=lambda: ["reverb", "noise", "music", "babble"])
    noise_snr: list[float] = field(default_factory=lambda: [0.0, 15.0])
    music_snr: list[float] = field(default_factory=lambda: [5.0, 15.0])
    babble_snr: list[float] = field(default_factory=lambda: [13.0, 20.0])
    babble_speakers: list[int] = field(default_factory=lambda: [3, 7])
    speed_perturb: Literal["none", "speakers", "plain"] = "none"
    # Audio source with --fbank-config: where the fbank (and the chunk's mean normalisation and
    # SpecAugment) is computed: in the DataLoader workers per chunk, or on the training device in
    # batches from the raw chunks the workers deliver (decoding, speed and augmentation stay there).
    fbank_on: Literal["worker", "device"] = "worker"


@dataclass
class OptimConfig:
    type: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = field(default=0.1, metadata={"min": 0})
    final_lr: float | None = None           # none: lr throughout the decay (no decay)
    momentum: float = field(default=0.9, metadata={"min": 0})   # sgd only
    nesterov: bool = True                   # sgd only
    weight_decay: float = field(default=0.0, metadata={"min": 0})
    warmup_epochs: float = field(default=0.0, metadata={"min": 0})
    warmup_start_lr: float = field(default=0.0, metadata={"min": 0})
    decay: Literal["exponential", "cosine", "constant"] = "exponential"
    grad_clip: float = field(default=0.0, metadata={"min": 0})  # 0: no clipping


@dataclass
class TrainingConfig:
    epochs: int = field(default=10, metadata={"min": 1})
    num_avg: int = field(default=1, metadata={"min": 1})  # final.pt: mean of the last num_avg epochs
    # Fine-tuning: these blocks of the model (parameter-name prefixes, e.g. [lstm] or [tdnn1, tdnn2])
    # stay fixed, batch-norm statistics included, for the first freeze_epochs epochs
    # (steps/train_xvector.sh --freeze, --freeze-epochs).
    freeze: list[str] = field(default_factory=list)
    freeze_epochs: int = field(default=0, metadata={"min": 0})
    # Fine-tuning: L2-SP, a penalty l2sp/2 * ||theta - theta_0||^2 on the loss pulling the weights that
    # came from --init-model towards those (not towards zero, as weight decay does); 0: none.
    l2sp: float = field(default=0.0, metadata={"min": 0})
    # Fine-tuning: embedding distillation, distill * mean(1 - cos(e, e_0)) on the loss, e_0 the
    # embedding a frozen copy of the --init-model weights gives the same chunk: holds the geometry
    # the source model learnt (what unseen speakers rely on) rather than its weights; 0: none.
    distill: float = field(default=0.0, metadata={"min": 0})
    # Fine-tuning: WiSE-FT (Wortsman et al. 2022), final.pt = (1 - a) * the weights --init-model gave
    # + a * the fine-tuned ones (the new head's as trained), which keeps more of the source model's
    # robustness on unseen speakers; 1: the fine-tuned weights as they are.
    interpolate_init: float = field(default=1.0, metadata={"min": 0, "max": 1})


@dataclass
class FrontendConfig:
    """What the model reads, computed from audio (sid.bin.compute_frontend_feats, sid.features.frontends):
    Kaldi's log-mel filterbank, voxceleb_trainer's log-mel, raw waveform rows, Resemblyzer's
    mel after its own volume normalisation and voice-activity trimming (no Kaldi VAD then),
    or SpeechBrain's log-mel (dB, top 80 dB)."""
    type: Literal["fbank", "vt_mel", "waveform", "resemblyzer", "sb_fbank"] = "fbank"
    num_mel_bins: int = field(default=40, metadata={"min": 1})    # fbank, vt_mel, resemblyzer, sb_fbank
    frame_samples: int = field(default=160, metadata={"min": 1})  # waveform
    preemphasis: float = 0.97                                      # vt_mel (0: none)


@dataclass
class ExtractConfig:
    """How a whole utterance is embedded: kaldi (length-weighted mean of --max-chunk-frames chunks) or
    windows (mean of unit-length window_frames windows every window_shift frames, re-normalised:
    the d-vector convention)."""
    chunking: Literal["kaldi", "windows"] = "kaldi"
    window_frames: int = field(default=160, metadata={"min": 1})
    window_shift: int = field(default=80, metadata={"min": 1})
    # The dither of a Kaldi fbank that extraction computes from audio (features.source: audio; training
    # dithers as its feature config says): none, WeSpeaker's test-time fbank, so that an utterance's
    # embedding is a function of its samples alone and the fbank can be in an exported graph. Features
    # the recipe made from a data dir keep the dither they were made with.
    dither: float = field(default=0.0, metadata={"min": 0})


@dataclass
class VadRecord:
    """The energy VAD of the training data (steps/compute_vad_decision.sh's record, sid.provenance)."""
    config: str                             # the VAD config's text (compute_vad options)
    checksum: str                           # of its options
    features_type: str                      # the features it decided on (their column 0) ...
    features_config: str                    # ... and their config's text (MFCCs beside fbank in run.sh)


@dataclass
class FeaturesRecord:
    """How the training features were made; written by training into ``<exp>/config.yaml``
    from the data dir (never set by hand), read by extraction."""
    type: str                               # fbank | mfcc | ... (steps/make_<type>.sh)
    config: str                             # the feature config's text (Kaldi options, one a line)
    checksum: str                           # of the options, as in the data dir's done-marker
    cmvn_opts: str                          # apply_cmvn_sliding's options (steps/prepare_feats_for_egs.sh)
    # features: the data dir's feats.scp with the sliding CMN of cmvn_opts and voiced frames only;
    # audio: computed per chunk from wav.scp, each chunk's mean subtracted, no VAD (data.source
    # audio), so extraction computes them from the test audio and subtracts the utterance's mean
    # (with cmvn_opts "none": no mean subtracted, an imported model that normalises by itself).
    source: Literal["features", "audio"] = "features"
    compress: bool = True                   # stored with Kaldi's compression (make_features.sh --compress)
    vad: VadRecord | None = None            # none: no VAD (audio source), or an exp older than the record


@dataclass
class TrainDataRecord:
    """Which utterances and speakers training read; written by training, checked on resume."""
    num_utts: int
    num_speakers: int
    utt2spk_md5: str                        # of its sorted "utt spk" lines


TRAINING_SECTIONS = ("model", "loss", "data", "optim", "training")


@dataclass
class TrainConfig:
    model: ModelConfig
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    frontend: FrontendConfig | None = None  # none: the features the recipe gives (MFCC/fbank)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    # Recorded by training in <exp>/config.yaml, not settings:
    num_classes: int | None = None
    features: FeaturesRecord | None = None
    train_data: TrainDataRecord | None = None

    def to_dict(self) -> dict:
        out = {"model": self.model.to_dict()}
        for f in dataclasses.fields(self)[1:]:
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return out

    def differences(self, other: TrainConfig) -> list[str]:
        """``key: this -> other`` for every dotted key whose value differs."""
        out: list[str] = []

        def walk(a, b, key):
            if isinstance(a, dict) and isinstance(b, dict):
                for k in list(a) + [k for k in b if k not in a]:
                    walk(a.get(k), b.get(k), f"{key}.{k}" if key else k)
            elif a != b:
                out.append(f"{key}: {_short(a)} -> {_short(b)}")
        walk(self.to_dict(), other.to_dict(), "")
        return out

    def dump(self, path: str | Path, header: str = "") -> None:
        """Write as YAML (multi-line strings as blocks), atomically, under ``header`` comment lines."""
        import yaml

        from sid.data.table import atomic_path

        class Dumper(yaml.SafeDumper):
            pass

        def text(dumper, value):
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)
        Dumper.add_representer(str, text)
        body = yaml.dump(self.to_dict(), Dumper=Dumper, sort_keys=False)
        with atomic_path(path) as tmp:
            tmp.write_text("".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body,
                           encoding="utf-8")


def _short(value) -> str:
    text = "(none)" if value is None else str(value)
    return text if len(text) <= 60 and "\n" not in text else text.replace("\n", " ")[:57] + "..."


RECORDED = ("num_classes", "features", "train_data")


# -- loading ----------------------------------------------------------------------------------------
def read_yaml(path: str | Path, what: str = "config ", loader=None) -> Any:
    """A YAML file's content (``loader``: a yaml Loader class, default safe); an unreadable file or
    invalid YAML is a SidError naming the file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=loader or yaml.SafeLoader)
    except OSError as err:
        raise SidError(f"cannot read {what}{path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise SidError(f"{path}: invalid YAML: {err}") from None


def load_config(path: str | Path, recorded: bool = False) -> TrainConfig:
    """Read and validate a training YAML. ``recorded``: it is an exp dir's ``config.yaml``, which
    may hold what training recorded (``num_classes``, ``features``); a user's config may not."""
    raw = read_yaml(path)
    return parse_config(raw, str(path), recorded)


# Fine-tuning (steps/train_xvector.sh --init-model <exp>): what the source exp decides.
INHERITED = ("model", "frontend", "extract")


def load_finetune_config(path: str | Path, source: TrainConfig, source_path: str) -> TrainConfig:
    """A training config for fine-tuning the model of ``source`` (an exp's ``config.yaml``, at
    ``source_path``): the model, its front-end and its extraction come from the source; the
    config's other sections (loss, data, optim, training) are the training settings. A model,
    frontend or extract section the config gives anyway must say what the source says."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SidError(f"{path}: expected a mapping with sections {', '.join(TRAINING_SECTIONS)}")
    inherited = source.to_dict()
    merged = {**raw, **{k: inherited[k] for k in INHERITED if k not in raw and k in inherited}}
    cfg = parse_config(merged, str(path))
    given = cfg.to_dict()
    for section in INHERITED:
        if section not in raw:
            continue
        keys = [k for k in (raw[section] or {})] if section == "model" else list(given.get(section) or {})
        for key in keys:
            mine = (given.get(section) or {}).get(key)
            theirs = (inherited.get(section) or {}).get(key)
            if mine != theirs:
                raise SidError(f"{path}: {section}.{key} is {_short(mine)}, but the model to fine-tune "
                               f"({source_path}) has {_short(theirs)}: the {section} comes from that exp; "
                               f"remove '{section}' from {path} or make it agree")
    return cfg


def load_features_record(path: str | Path) -> FeaturesRecord | None:
    """The ``features`` record of an exp dir's ``config.yaml`` alone (not the model section, whose
    check imports torch: extraction steps ask this before anything else)."""
    raw = read_yaml(path)
    if not isinstance(raw, dict) or raw.get("features") is None:
        return None
    return _parse_dataclass(raw["features"], FeaturesRecord, "features", str(path))


def parse_config(raw: Any, source: str = "<config>", recorded: bool = False) -> TrainConfig:
    if not isinstance(raw, dict):
        raise SidError(f"{source}: expected a mapping with sections {', '.join(TRAINING_SECTIONS)}")
    if not recorded:
        for key in RECORDED:
            if key in raw:
                raise SidError(f"{source}: '{key}' is recorded by training from the data dir, not a setting; "
                               "remove it")
    if "model" not in raw:
        raise SidError(f"{source}: the 'model' section is required (model.type: one of {', '.join(_models())})")
    return _parse_dataclass(raw, TrainConfig, "", source, "section")


def parse_model(raw: Any, source: str = "<config>", key: str = "model") -> ModelConfig:
    """The ``model`` section, checked against the constructor of ``sid.models.MODELS[type]``."""
    models = _models()
    if not isinstance(raw, dict):
        raise SidError(f"{source}: {key}: expected a mapping with 'type' ({', '.join(models)}) and its settings")
    kind = raw.get("type")
    if kind not in models:
        raise SidError(f"{source}: {key}.type: '{kind}' is not a model; allowed: {', '.join(models)}")
    params = _model_params(kind)
    hints = typing.get_type_hints(models[kind].__init__)
    args = {}
    for name, value in raw.items():
        if name == "type":
            continue
        if name not in params:
            _unknown(source, key, name, ["type", *params], "key")
        args[name] = _convert(value, hints.get(name, Any), f"{key}.{name}", source)
    for name, p in params.items():
        if name not in args and p.default is inspect.Parameter.empty:
            raise SidError(f"{source}: {key}.{name} is required for model type '{kind}'")
    return ModelConfig(kind, args)


def _model_params(kind: str) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(_models()[kind]).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _models() -> dict:
    from sid.models import MODELS   # imports torch: only where a model section is read

    return MODELS


def _unknown(source: str, parent: str, name: str, allowed: list[str], what: str) -> None:
    where = f"{parent}.{name}" if parent else str(name)
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise SidError(f"{source}: unknown {what} '{where}'{hint}; allowed: {', '.join(allowed)}")


def _parse_dataclass(raw: Any, cls: type, key: str, source: str, what: str = "key"):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SidError(f"{source}: {key}: expected a mapping of {', '.join(fields)}, got {raw!r}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in raw.items():
        if name not in fields:
            _unknown(source, key, name, list(fields), what)
        sub = f"{key}.{name}" if key else name
        if name == "model" and cls is TrainConfig:
            kwargs[name] = parse_model(value, source, sub)
            continue
        kwargs[name] = _convert(value, hints[name], sub, source)
        low = fields[name].metadata.get("min")
        if low is not None and kwargs[name] is not None and kwargs[name] < low:
            raise SidError(f"{source}: {sub}: must be >= {low}, got {value!r}")
        high = fields[name].metadata.get("max")
        if high is not None and kwargs[name] is not None and kwargs[name] > high:
            raise SidError(f"{source}: {sub}: must be <= {high}, got {value!r}")
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SidError(f"{source}: {key + ': ' if key else ''}'{missing[0]}' is required")
    return cls(**kwargs)


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin in (tuple, list):
        return f"a list of {_describe(args[0])}" if args else "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping of " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = SidError(f"{source}: {key}: expected {_describe(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:    # X | None: X's own message, which may name a nested key
            return _convert(value, options[0], key, source)
        for a in options:
            try:
                return _convert(value, a, key, source)
            except SidError:
                pass
        raise bad
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(value, tp, key, source)
    if origin is Literal:
        if value in args:
            return value
        raise bad
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad
        items = [_convert(v, args[0] if args else Any, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            # YAML 1.1 reads 5e-5 (no dot) as a string; a number written so is still a number.
            try:
                number = float(value)
            except ValueError:
                raise bad from None
        if number is None or not math.isfinite(number):
            raise bad
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise SidError(f"{source}: {key}: the schema has an unsupported type {tp!r}")
