"""Checkpoints of other toolkits as ordinary exp dirs (``python -m sid.bin.import_model``).

A format knows its toolkit's published checkpoint layout: which network of ``sid.models``
it is, the name in their checkpoint of each of our parameters, which of their keys belong
to training only (loss heads, optimiser state) and the front-end the network was trained
on. Importing checks every key: one of theirs that we do not know, one of ours that they
lack, or a shape that differs is an error naming their key. The exp dir it writes holds
``config.yaml`` (the model, its front-end as a ``frontend`` section or a Kaldi feature
config, ``features.source: audio`` so that extraction computes it from the audio of the
whole utterance with no Kaldi VAD, as the toolkit does, the normalisation as
``features.cmvn_opts``, how utterances are chunked) and ``final.pt`` (the weights, no
training state), which extraction, back-ends, the Embedder, export and fine-tuning read
as if the model had been trained here.

Formats (the parameter names are those of the published checkpoints):

* ``resemblyzer``: ``pretrained.pt`` of the ``resemblyzer`` package, ``{"model_state":
  ...}`` with ``lstm.*`` (3 layers of 256 on 40 mels) and ``linear.*`` (256 -> 256, ReLU):
  our ``dvector``; the GE2E loss's ``similarity_weight``/``similarity_bias`` are dropped.
  Front-end ``resemblyzer`` (``sid.features.frontends.ResemblyzerMel``), no CMN, its
  1.6 s partials every 77 frames averaged (``extract.chunking: windows``).
* ``wespeaker``: ``avg_model.pt`` (a state dict) and its ``config.yaml`` (``model``,
  ``model_args``, ``dataset_args.fbank_args``): ResNet18/34 as our ``resnet``, the
  ECAPA_TDNN(_GLOB)_c512/c1024 as ``ecapa_tdnn`` with ``style: wespeaker``; the features a
  Kaldi fbank config (``features.type: fbank``) with the utterance mean removed.
* ``speechbrain``: ``embedding_model.ckpt`` and ``hyperparams.yaml``: ECAPA_TDNN as
  ``ecapa_tdnn`` with ``style: speechbrain``; front-end ``sb_fbank`` with the sentence
  mean removed.
* ``voxceleb_trainer``: a SpeakerNet ``.model`` file (``__S__.`` the network, ``__L__.``
  the loss) and optionally its YAML (``model``, ``encoder_type``, ``n_mels``, ``nOut``):
  ResNetSE34L (SAP) and ResNetSE34V2 (ASP) as our ``resnet_se`` in the published layer
  order; front-end ``vt_mel`` (pre-emphasis as the checkpoint's ``torchfb`` has it), no
  CMN (the network's instance norm normalises).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sid.errors import SidError

log = logging.getLogger(__name__)


@dataclass
class Imported:
    """What a format makes of a checkpoint: the config sections and their names of our weights."""
    model: dict                           # the model section (sid.models)
    names: Callable[[str], str]           # our state-dict key -> theirs
    ignored: Callable[[str], bool]        # their training-only keys
    frontend: dict | None = None          # the frontend section, or None with a Kaldi feature config
    features: tuple[str, str] | None = None   # (type, Kaldi config text) without a front-end
    cmvn_opts: str = "none"               # "": the utterance's mean subtracted; none: nothing
    extract: dict | None = None


def _resemblyzer(state: dict, config: dict | None) -> Imported:
    return Imported(
        model={"type": "dvector", "feat_dim": 40, "hidden": 256, "num_layers": 3, "proj_dim": 0, "embed_dim": 256},
        names=lambda k: k, ignored=lambda k: k in ("similarity_weight", "similarity_bias"),
        frontend={"type": "resemblyzer", "num_mel_bins": 40},
        extract={"chunking": "windows", "window_frames": 160, "window_shift": 77})


def _stage_of(num_blocks) -> list[tuple[int, int]]:
    """(stage from 1, block within it) of each of our flat ``layers.<n>``."""
    return [(s + 1, j) for s, n in enumerate(num_blocks) for j in range(n)]


def _renamer(rules: list[tuple[str, str | Callable]]) -> Callable[[str], str]:
    """Our key -> theirs by the first matching regex rule (a replacement string or function)."""
    import re

    compiled = [(re.compile(p), r) for p, r in rules]

    def rename(key: str) -> str:
        for pattern, repl in compiled:
            if pattern.match(key):
                return pattern.sub(repl, key, count=1)
        return key
    return rename


# WeSpeaker's model names -> ResNet blocks (BasicBlock; the Bottleneck ResNets are not ours).
WESPEAKER_RESNETS = {"ResNet18": (2, 2, 2, 2), "ResNet34": (3, 4, 6, 3)}


# WeSpeaker's ECAPA model names -> (channels, global context in the attention).
WESPEAKER_ECAPAS = {"ECAPA_TDNN_c512": (512, False), "ECAPA_TDNN_GLOB_c512": (512, True),
                    "ECAPA_TDNN_c1024": (1024, False), "ECAPA_TDNN_GLOB_c1024": (1024, True)}


def _wespeaker_ecapa(name: str, args: dict) -> tuple[dict, Callable[[str], str]]:
    """WeSpeaker's ECAPA (wespeaker/models/ecapa_tdnn.py): ``layer1`` (conv, bn),
    ``layer2``..``layer4`` SE-Res2Blocks (``se_res2block.0``/``.2`` conv+bn, ``.1.convs.j`` and
    ``.1.bns.j``, ``.3.linear1``/``.linear2``), ``conv`` (aggregation), ``pool.linear1``/
    ``linear2`` (ASTP), ``bn``, ``linear``."""
    channels, glob = WESPEAKER_ECAPAS[name]
    if args.get("pooling_func", "ASTP") != "ASTP":
        raise SidError(f"WeSpeaker model_args.pooling_func '{args['pooling_func']}' is not importable; allowed: ASTP")
    model = {"type": "ecapa_tdnn", "feat_dim": int(args.get("feat_dim", 80)), "channels": channels,
             "embed_dim": int(args.get("embed_dim", 192)), "mfa_channels": 3 * channels, "global_context": glob,
             "style": "wespeaker"}
    block = lambda m: f"layer{int(m.group(1)) + 2}.se_res2block."   # noqa: E731
    rename = _renamer([
        (r"^stem\.", "layer1."),
        (r"^blocks\.(\d+)\.body\.1\.convs\.(\d+)\.conv\.", lambda m: block(m) + f"1.convs.{m.group(2)}."),
        (r"^blocks\.(\d+)\.body\.1\.convs\.(\d+)\.bn\.", lambda m: block(m) + f"1.bns.{m.group(2)}."),
        (r"^blocks\.(\d+)\.body\.3\.fc\.0\.", lambda m: block(m) + "3.linear1."),
        (r"^blocks\.(\d+)\.body\.3\.fc\.2\.", lambda m: block(m) + "3.linear2."),
        (r"^blocks\.(\d+)\.body\.", block),
        (r"^mfa\.0\.", "conv."), (r"^pool\.attention\.0\.", "pool.linear1."),
        (r"^pool\.attention\.2\.", "pool.linear2."), (r"^pool_bn\.", "bn."), (r"^fc\.", "linear.")])
    return model, rename


def _wespeaker(state: dict, config: dict | None) -> Imported:
    """WeSpeaker (wespeaker/models/resnet.py): ``conv1``/``bn1``, ``layer1``..``layer4`` of
    BasicBlocks (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``shortcut.0``/``.1``), statistics
    pooling (TSTP), ``seg_1`` the embedding layer; ``projection.*`` is the training head.
    Front-end: Kaldi fbank (hamming window, no dither at extraction, snip edges, 25/10 ms)
    on int16-scaled samples, then the utterance mean subtracted."""
    config = config or {}
    name = config.get("model", "ECAPA_TDNN_GLOB_c512" if "layer1.conv.weight" in state else "ResNet34")
    args = config.get("model_args", {}) or {}
    fbank = ((config.get("dataset_args", {}) or {}).get("fbank_args", {})) or {}
    mel_bins = int(fbank.get("num_mel_bins", args.get("feat_dim", 80)))
    text = "".join(f"{line}\n" for line in (
        "--sample-frequency=16000", f"--frame-length={fbank.get('frame_length', 25)}",
        f"--frame-shift={fbank.get('frame_shift', 10)}", f"--num-mel-bins={mel_bins}", "--window-type=hamming",
        "--dither=0", "--snip-edges=true"))
    if name in WESPEAKER_ECAPAS:
        model, rename = _wespeaker_ecapa(name, args)
        return Imported(model=model, names=rename, ignored=lambda k: k.startswith("projection."),
                        features=("fbank", text), cmvn_opts="")
    if name not in WESPEAKER_RESNETS:
        raise SidError(f"WeSpeaker model '{name}' is not importable; allowed: "
                       f"{', '.join([*WESPEAKER_RESNETS, *WESPEAKER_ECAPAS])}")
    if args.get("two_emb_layer", False):
        raise SidError("WeSpeaker model_args.two_emb_layer: true is not importable (its second embedding layer "
                       "is not part of sid's ResNet)")
    if args.get("pooling_func", "TSTP") != "TSTP":
        raise SidError(f"WeSpeaker model_args.pooling_func '{args['pooling_func']}' is not importable; allowed: TSTP")
    blocks = WESPEAKER_RESNETS[name]
    feat_dim = int(args.get("feat_dim", 80))
    stages = _stage_of(blocks)
    rename = _renamer([(r"^stem\.0\.", "conv1."), (r"^stem\.1\.", "bn1."), (r"^fc\.", "seg_1."),
                       (r"^layers\.(\d+)\.", lambda m: "layer%d.%d." % stages[int(m.group(1))])])
    return Imported(
        model={"type": "resnet", "feat_dim": feat_dim, "base_channels": 32, "num_blocks": list(blocks),
               "embed_dim": int(args.get("embed_dim", 256))},
        names=rename, ignored=lambda k: k.startswith("projection."),
        features=("fbank", text), cmvn_opts="")


def _speechbrain(state: dict, config: dict | None) -> Imported:
    """SpeechBrain's ECAPA_TDNN (speechbrain/lobes/models/ECAPA_TDNN.py; its wrappers add
    ``.conv``/``.norm``): ``blocks.0`` TDNN (``conv.conv``, ``norm.norm``), ``blocks.1``..``3``
    SE-Res2Net blocks (``tdnn1``, ``res2net_block.blocks.j``, ``tdnn2``, ``se_block.conv1``/
    ``conv2``), ``mfa``, ``asp.tdnn``/``asp.conv``, ``asp_bn``, ``fc`` (a 1x1 convolution).
    Its config is the ``embedding_model`` of ``hyperparams.yaml`` (channels, kernel sizes,
    dilations, attention_channels, res2net_scale, se_channels, global_context, lin_neurons)
    and ``compute_features`` (n_mels). Front-end ``sb_fbank``, the sentence mean subtracted."""
    config = config or {}
    emb = config.get("embedding_model", {}) or {}
    feats = config.get("compute_features", {}) or {}

    def value(section: dict, key: str, default):
        v = section.get(key, default)
        # "!ref <name>" names a top-level value of the same file.
        if isinstance(v, str) and v.startswith("<") and v.endswith(">"):
            v = config.get(v[1:-1], default)
        return v
    channels = [int(c) for c in value(emb, "channels", [512, 512, 512, 512, 1536])]
    kernels = [int(k) for k in value(emb, "kernel_sizes", [5, 3, 3, 3, 1])]
    dilations = [int(d) for d in value(emb, "dilations", [1, 2, 3, 4, 1])]
    if len(set(channels[:-1])) != 1 or kernels[0] != 5 or set(kernels[1:-1]) != {3} or kernels[-1] != 1 \
            or dilations[0] != 1 or dilations[-1] != 1:
        raise SidError(f"SpeechBrain ECAPA with channels {channels}, kernel_sizes {kernels}, dilations {dilations} "
                       "is not importable (kernels 5, 3..., 1, equal block channels, aggregation of all blocks)")
    n_mels = int(value(feats, "n_mels", value(emb, "input_size", 80)))
    model = {"type": "ecapa_tdnn", "feat_dim": int(value(emb, "input_size", n_mels)), "channels": channels[0],
             "embed_dim": int(value(emb, "lin_neurons", 192)), "scale": int(value(emb, "res2net_scale", 8)),
             "dilations": dilations[1:-1], "mfa_channels": channels[-1],
             "attention_bottleneck": int(value(emb, "attention_channels", 128)),
             "se_bottleneck": int(value(emb, "se_channels", 128)),
             "global_context": bool(value(emb, "global_context", True)), "style": "speechbrain"}
    block = lambda m: f"blocks.{int(m.group(1)) + 1}."   # noqa: E731
    rename = _renamer([
        (r"^stem\.conv\.", "blocks.0.conv.conv."), (r"^stem\.bn\.", "blocks.0.norm.norm."),
        (r"^blocks\.(\d+)\.body\.(0|2)\.conv\.", lambda m: block(m) + f"tdnn{int(m.group(2)) // 2 + 1}.conv.conv."),
        (r"^blocks\.(\d+)\.body\.(0|2)\.bn\.", lambda m: block(m) + f"tdnn{int(m.group(2)) // 2 + 1}.norm.norm."),
        (r"^blocks\.(\d+)\.body\.1\.convs\.(\d+)\.conv\.",
         lambda m: block(m) + f"res2net_block.blocks.{m.group(2)}.conv.conv."),
        (r"^blocks\.(\d+)\.body\.1\.convs\.(\d+)\.bn\.",
         lambda m: block(m) + f"res2net_block.blocks.{m.group(2)}.norm.norm."),
        (r"^blocks\.(\d+)\.body\.3\.fc\.0\.", lambda m: block(m) + "se_block.conv1.conv."),
        (r"^blocks\.(\d+)\.body\.3\.fc\.2\.", lambda m: block(m) + "se_block.conv2.conv."),
        (r"^mfa\.0\.", "mfa.conv.conv."), (r"^mfa\.2\.", "mfa.norm.norm."),
        (r"^pool\.attention\.0\.", "asp.tdnn.conv.conv."), (r"^pool\.attention\.2\.", "asp.tdnn.norm.norm."),
        (r"^pool\.attention\.4\.", "asp.conv.conv."), (r"^pool_bn\.", "asp_bn.norm."), (r"^fc\.", "fc.conv.")])
    return Imported(model=model, names=rename, ignored=lambda k: False,
                    frontend={"type": "sb_fbank", "num_mel_bins": n_mels}, cmvn_opts="")


def _voxceleb_trainer_unwrap(ckpt: dict) -> dict:
    """SpeakerNet's state dict: the model under ``__S__.``, the loss under ``__L__.``
    (``module.`` before both when saved from DistributedDataParallel)."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt.items()}


def _voxceleb_trainer(state: dict, config: dict | None) -> Imported:
    """voxceleb_trainer (models/ResNetSE34L.py, ResNetSE34V2.py, ResNetBlocks.py): ``__S__.``
    ``conv1``/``bn1``, ``layer1``..``layer4`` of SE blocks (``conv1``, ``bn1``, ``conv2``,
    ``bn2``, ``se.fc.0``/``.2``, ``downsample.0``/``.1``), L: ``sap_linear`` and
    ``attention`` (SAP), V2: ``attention.0/.2/.3`` (ASP), ``fc``; ``__L__.*`` is the loss.
    Its ``torchfb`` buffers say the front-end: ``torchfb.0.flipped_filter`` is pre-emphasis
    (absent in the early ResNetSE34L), the mel filters' shape the number of mels."""
    config = config or {}
    model_name = config.get("model")
    if model_name is None:
        model_name = "ResNetSE34V2" if "__S__.attention.0.weight" in state else "ResNetSE34L"
    if model_name not in ("ResNetSE34L", "ResNetSE34V2"):
        raise SidError(f"voxceleb_trainer model '{model_name}' is not importable; allowed: ResNetSE34L, ResNetSE34V2")
    variant = "L" if model_name == "ResNetSE34L" else "V2"
    encoder = config.get("encoder_type", "SAP" if variant == "L" else "ASP")
    if (variant, encoder) not in (("L", "SAP"), ("V2", "ASP")):
        raise SidError(f"voxceleb_trainer {model_name} with encoder_type {encoder} is not importable "
                       "(ResNetSE34L with SAP and ResNetSE34V2 with ASP are)")
    if not config.get("log_input", True):
        raise SidError("voxceleb_trainer log_input: false is not importable (the front-end takes the log)")
    pre = [k for k in state if k.endswith("flipped_filter") and k.startswith("__S__.torchfb")]
    fb = [v for k, v in state.items() if k.startswith("__S__.torchfb") and k.endswith("mel_scale.fb")]
    n_mels = int(config.get("n_mels", fb[0].shape[1] if fb else 40))
    preemphasis = round(-float(state[pre[0]].flatten()[0]), 6) if pre else 0.0
    stages = _stage_of((3, 4, 6, 3))
    rename = _renamer([
        (r"^stem\.0\.", "__S__.conv1."), (r"^stem\.1\.", "__S__.bn1."),
        (r"^layers\.(\d+)\.se\.", lambda m: "__S__.layer%d.%d.se.fc." % stages[int(m.group(1))]),
        (r"^layers\.(\d+)\.", lambda m: "__S__.layer%d.%d." % stages[int(m.group(1))]),
        (r"^pool\.linear\.", "__S__.sap_linear."), (r"^pool\.attention", "__S__.attention"),
        (r"^fc\.", "__S__.fc.")])
    return Imported(
        model={"type": "resnet_se", "feat_dim": n_mels, "variant": variant, "base_channels": 16 if variant == "L" else 32,
               "num_blocks": [3, 4, 6, 3], "embed_dim": int(config.get("nOut", 512)), "relu_before_bn": True},
        names=rename, ignored=lambda k: k.startswith("__L__.") or k.startswith("__S__.torchfb"),
        frontend={"type": "vt_mel", "num_mel_bins": n_mels, "preemphasis": preemphasis})



# format -> (how their file holds the weights, the mapping)
FORMATS: dict[str, tuple[Callable[[dict], dict], Callable[[dict, dict | None], Imported]]] = {
    "resemblyzer": (lambda ckpt: ckpt["model_state"] if "model_state" in ckpt else ckpt, _resemblyzer),
    "wespeaker": (lambda ckpt: ckpt, _wespeaker),
    "voxceleb_trainer": (_voxceleb_trainer_unwrap, _voxceleb_trainer),
    "speechbrain": (lambda ckpt: ckpt, _speechbrain),
}


def resemblyzer_weights(install: bool = False) -> Path:
    """``pretrained.pt`` of the installed ``resemblyzer`` package; with ``install``, first
    ``pip install --no-deps resemblyzer`` where it is absent (the weights only: its
    dependencies librosa and webrtcvad are needed only to run Resemblyzer itself)."""
    spec = importlib.util.find_spec("resemblyzer")
    if (spec is None or spec.origin is None) and install:
        import subprocess
        import sys

        log.info("Installing resemblyzer (its weights) with pip install --no-deps resemblyzer")
        res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                              "resemblyzer"], capture_output=True, text=True)
        if res.returncode != 0:
            raise SidError(f"pip install --no-deps resemblyzer failed: {res.stderr.strip()[-500:]}")
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        raise SidError("the resemblyzer package is not installed: pip install --no-deps resemblyzer")
    path = Path(spec.origin).parent / "pretrained.pt"
    if not path.exists():
        raise SidError(f"{path} not found: reinstall resemblyzer (pip install --no-deps --force-reinstall resemblyzer)")
    return path


def read_their_config(path: str | Path) -> dict:
    """Their YAML config, tags (SpeechBrain's ``!new:``, ``!ref``) read as plain values."""
    import yaml

    from sid.config import read_yaml

    class Loader(yaml.SafeLoader):
        pass

    def untagged(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)
    Loader.add_multi_constructor("!", untagged)
    raw = read_yaml(path, what="", loader=Loader)
    if not isinstance(raw, dict):
        raise SidError(f"{path}: expected a mapping")
    return raw


def map_state(theirs: dict, ours: dict, names: dict[str, str], ignored: Callable[[str], bool], source: str) -> dict:
    """Our state dict from theirs: every key of theirs used or known to be training-only, every
    key of ours given, shapes equal; else a SidError naming the key."""
    import torch

    wanted = {their: our for our, their in names.items()}
    out = {}
    for key, value in theirs.items():
        if key in wanted:
            our = wanted[key]
            if not isinstance(value, torch.Tensor):
                raise SidError(f"{source}: '{key}' is not a tensor")
            shape = tuple(ours[our].shape)
            # A linear layer stored as a 1x1 convolution or the reverse differs only by unit dims.
            if tuple(value.shape) != shape and [d for d in value.shape if d != 1] != [d for d in shape if d != 1]:
                raise SidError(f"{source}: '{key}' has shape {list(value.shape)}, the architecture needs "
                               f"{list(shape)}")
            out[our] = value.reshape(shape).to(ours[our].dtype)
        elif not ignored(key):
            raise SidError(f"{source}: unknown key '{key}' (not a parameter of this format's network)")
    for our, their in names.items():
        if our not in out:
            if our.endswith("num_batches_tracked"):   # absent from older PyTorch's checkpoints; unused in eval
                out[our] = ours[our]
                continue
            raise SidError(f"{source}: missing key '{their}'")
    return out


def import_checkpoint(fmt: str, checkpoint: str | Path, their_config: str | Path | None, exp_dir: str | Path) -> None:
    import yaml

    from sid.config import FeaturesRecord, parse_config
    from sid.models import build_model
    from sid.provenance import options_md5
    from sid.train import checkpoint as ckpt_io

    if fmt not in FORMATS:
        raise SidError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    unwrap, mapping = FORMATS[fmt]
    loaded = ckpt_io.load(checkpoint)
    if not isinstance(loaded, dict):
        raise SidError(f"{checkpoint}: expected a dict of tensors, got {type(loaded).__name__}")
    theirs = unwrap(loaded)
    config = read_their_config(their_config) if their_config else None
    imp = mapping(theirs, config)
    cfg = parse_config({"model": imp.model, **({"frontend": imp.frontend} if imp.frontend else {}),
                        **({"extract": imp.extract} if imp.extract else {})}, f"{fmt} import")
    model = build_model(cfg.model)
    ours = model.state_dict()
    state = map_state(theirs, ours, {k: imp.names(k) for k in ours}, imp.ignored, str(checkpoint))
    model.load_state_dict(state)
    if imp.frontend is not None:
        config_text = yaml.safe_dump(dataclasses.asdict(cfg.frontend), sort_keys=True)
        cfg.features = FeaturesRecord(type="frontend", config=config_text, checksum=options_md5(config_text),
                                      cmvn_opts=imp.cmvn_opts, source="audio")
    else:
        feat_type, config_text = imp.features
        cfg.features = FeaturesRecord(type=feat_type, config=config_text, checksum=options_md5(config_text),
                                      cmvn_opts=imp.cmvn_opts, source="audio")
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    ckpt_io.save_atomic({"model": {k: v.clone() for k, v in model.state_dict().items()}}, exp_dir / "final.pt")
    cfg.dump(exp_dir / "config.yaml", header=f"Imported by sid.bin.import_model --format {fmt} from {checkpoint}"
             + (f" ({their_config})" if their_config else ""))
    log.info("Imported %s checkpoint %s as %s (%s, %d parameters) into %s", fmt, checkpoint, cfg.model.type,
             ", ".join(f"{k}={v}" for k, v in imp.model.items() if k != "type"),
             sum(v.numel() for v in model.parameters()), exp_dir)
