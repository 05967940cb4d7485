"""How a data dir's features were made, recorded in the data dir and carried to the model.

``steps/make_features.sh`` (make_fbank.sh, make_mfcc.sh) leaves in ``<data>``:

* ``conf/<type>.conf``: a copy of the feature config it ran with (as Kaldi's scripts do);
* ``.feats_done``: its done-marker, ``feat_type <type>`` and ``options_md5 <md5>``, the
  checksum of the config's options (comments, blank lines and spacing do not count).

``steps/compute_vad_decision.sh`` adds the VAD's record:

* ``conf/vad.conf``: a copy of the VAD config, and ``conf/vad_on_<type>.conf``, the config of
  the features it decided on (their column 0: MFCC C0, or the log energy);
* ``.vad_done``: ``options_md5`` of the VAD config, ``features_type`` and ``features_md5``.

run.sh, whose fbank VAD decides on MFCCs made beside them, copies that record with the VAD
(``feature_record copy-vad``). ``.feats_done`` also says ``compress true|false``.

``steps/prepare_feats_for_egs.sh`` carries all of it to its output and adds ``cmvn_opts``, the
options its sliding CMN ran with (``apply_cmvn_sliding``'s, one line). Training copies all
of it into ``<exp>/config.yaml`` (``features:``); extraction applies that CMN and refuses
test features whose ``.feats_done`` differs from the model's record.

Outputs of the later steps (back-ends, score files, embedding jobs) record what made them in
``<output>.made_by`` (``step_record``): the step's options and a fingerprint of each input
(``fingerprint``; for an scp, also of the archives it points into). A step keeps an output
only when its record is unchanged; otherwise it says what changed and makes it again.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from sid.errors import SidError

MARKER = ".feats_done"
VAD_MARKER = ".vad_done"
CMVN_OPTS = "cmvn_opts"


def code_commit() -> str | None:
    """The short commit of the checkout this package runs from, with ``+changes`` when tracked
    files differ from it; None when it is not a git checkout (an installed package)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return None
    return head.stdout.strip() + ("+changes" if dirty else "")


def _feature_options(feat_type: str):
    from sid.features.options import FEATURE_TYPES

    if feat_type not in FEATURE_TYPES:
        raise SidError(f"feature type '{feat_type}' unknown; allowed: {', '.join(FEATURE_TYPES)}")
    return FEATURE_TYPES[feat_type]


def options_md5(text: str) -> str:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return hashlib.md5("".join(f"{line}\n" for line in lines if line).encode()).hexdigest()


def frontend_text(config: str | Path) -> str:
    """For ``feat_type`` frontend (steps/make_frontend_feats.sh): the model config's ``frontend``
    section as YAML, the record of what was computed (two models with the same front-end share it)."""
    from sid.config import load_config

    frontend = load_config(config, recorded=True).frontend   # a model config, or an exp's config.yaml
    if frontend is None:
        raise SidError(f"{config} has no 'frontend' section")
    return frontend_record_text(frontend)


def frontend_record_text(frontend) -> str:
    """A ``sid.config.FrontendConfig`` as its record's text (what training from audio records)."""
    import dataclasses

    import yaml

    return yaml.safe_dump(dataclasses.asdict(frontend), sort_keys=True)


def validate_config(feat_type: str, config: str | Path) -> None:
    """The feature config parses and its values are valid for ``feat_type``, else a SidError
    naming the file (checked before a step replaces anything)."""
    from sid.cli import KaldiOptions

    if feat_type == "frontend":
        frontend_text(config)
        return

    cls = _feature_options(feat_type)
    po = KaldiOptions("")
    cls().register(po)
    try:
        cls.from_opts(po.read_options([f"--config={config}"]))
    except SidError as err:
        msg = str(err)
        raise SidError(msg if str(config) in msg else f"{config}: {msg}") from None


def write_record(data_dir: str | Path, feat_type: str, config: str | Path, compress: bool = True) -> None:
    """Copy the config into ``<data>/conf/<type>.conf`` and write the done-marker (last)."""
    from sid.data.table import atomic_path

    data_dir = Path(data_dir)
    text = frontend_text(config) if feat_type == "frontend" else Path(config).read_text(encoding="utf-8")
    with atomic_path(data_dir / "conf" / f"{feat_type}.conf") as tmp:
        tmp.write_text(text, encoding="utf-8")
    with atomic_path(data_dir / MARKER) as tmp:
        tmp.write_text(f"feat_type {feat_type}\noptions_md5 {options_md5(text)}\ncompress {str(compress).lower()}\n",
                       encoding="utf-8")


def _read_fields(path: Path, required: tuple[str, ...]) -> dict[str, str] | None:
    if not path.exists():
        return None
    fields = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        key, _, value = line.partition(" ")
        if not value:
            raise SidError(f"{path}:{lineno}: expected '<key> <value>', got '{line}'")
        fields[key] = value
    for key in required:
        if key not in fields:
            raise SidError(f"{path}: no {key} line")
    return fields


def read_marker(data_dir: str | Path) -> dict[str, str] | None:
    fields = _read_fields(Path(data_dir) / MARKER, ("feat_type", "options_md5"))
    if fields is not None:
        fields.setdefault("compress", "true")   # (recorded since; compressed before)
    return fields


def read_vad_marker(data_dir: str | Path) -> dict[str, str] | None:
    return _read_fields(Path(data_dir) / VAD_MARKER, ("options_md5", "features_type", "features_md5"))


def write_vad_record(data_dir: str | Path, vad_config: str | Path) -> None:
    """After compute_vad_decision.sh: copy the VAD config and the config of the features it
    decided on (``<data>``'s own, from its record) into ``<data>/conf/``, then ``.vad_done``."""
    from sid.data.table import atomic_path
    from sid.features.options import VadEnergyOptions

    data_dir = Path(data_dir)
    marker = _required_marker(data_dir)
    text = Path(vad_config).read_text(encoding="utf-8")
    parse_options_text(VadEnergyOptions, text, str(vad_config))
    feat_conf = (data_dir / "conf" / f"{marker['feat_type']}.conf").read_text(encoding="utf-8")
    with atomic_path(data_dir / "conf" / "vad.conf") as tmp:
        tmp.write_text(text, encoding="utf-8")
    with atomic_path(data_dir / "conf" / f"vad_on_{marker['feat_type']}.conf") as tmp:
        tmp.write_text(feat_conf, encoding="utf-8")
    with atomic_path(data_dir / VAD_MARKER) as tmp:
        tmp.write_text(f"options_md5 {options_md5(text)}\nfeatures_type {marker['feat_type']}\n"
                       f"features_md5 {marker['options_md5']}\n", encoding="utf-8")


def _vad_files(data_dir: Path, vad: dict[str, str]) -> list[Path]:
    return [data_dir / "conf" / "vad.conf", data_dir / "conf" / f"vad_on_{vad['features_type']}.conf"]


def copy_vad_record(source: str | Path, dest: str | Path) -> None:
    """Give ``dest`` (which took ``source``'s vad.scp) ``source``'s VAD record (none where the
    source has none: a data dir made before the record)."""
    source, dest = Path(source), Path(dest)
    vad = read_vad_marker(source)
    if vad is None:
        (dest / VAD_MARKER).unlink(missing_ok=True)
        return
    (dest / "conf").mkdir(parents=True, exist_ok=True)
    for path in _vad_files(source, vad):
        shutil.copyfile(path, dest / "conf" / path.name)
    shutil.copyfile(source / VAD_MARKER, dest / VAD_MARKER)


def vad_record(data_dir: str | Path):
    """The ``VadRecord`` of a data dir, or None where it has no ``.vad_done``."""
    from sid.config import VadRecord

    data_dir = Path(data_dir)
    vad = read_vad_marker(data_dir)
    if vad is None:
        return None
    conf, feat_conf = _vad_files(data_dir, vad)
    texts = []
    for path, checksum in ((conf, vad["options_md5"]), (feat_conf, vad["features_md5"])):
        if not path.exists():
            raise SidError(f"{path} not found: {data_dir / VAD_MARKER} names it (made by steps/compute_vad_decision.sh)")
        texts.append(path.read_text(encoding="utf-8"))
        if options_md5(texts[-1]) != checksum:
            raise SidError(f"{path} does not match the options checksum in {data_dir / VAD_MARKER}: was it edited?")
    return VadRecord(config=texts[0], checksum=vad["options_md5"], features_type=vad["features_type"],
                     features_config=texts[1])


def parse_options_text(cls, text: str, source: str):
    """An option struct (``sid.features.options``) from a Kaldi config's text, errors naming
    ``source`` (and its line)."""
    import argparse

    from sid.cli import KaldiOptions, UsageError

    po = KaldiOptions("")
    cls().register(po)
    values = {k: v[1] for k, v in po._opts.items()}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.startswith("--"):
            raise SidError(f"{source}:{lineno}: expected --name=value, got '{line}'")
        try:
            po._apply(values, line, f" ({source}:{lineno})")
        except UsageError as err:
            raise SidError(str(err)) from None
    return cls.from_opts(argparse.Namespace(**{k.replace("-", "_"): v for k, v in values.items()}))


def _required_marker(data_dir: Path) -> dict[str, str]:
    marker = read_marker(data_dir)
    if marker is None:
        raise SidError(f"{data_dir / MARKER} not found: {data_dir} does not record how its features were made "
                       "(make them with steps/make_fbank.sh or steps/make_mfcc.sh)")
    return marker


def parse_cmvn_opts(text: str, source: str):
    """``SlidingWindowCmnOptions`` of an apply_cmvn_sliding option line."""
    from sid.cli import KaldiOptions
    from sid.features.options import SlidingWindowCmnOptions

    po = KaldiOptions("")
    SlidingWindowCmnOptions().register(po)
    try:
        return SlidingWindowCmnOptions.from_opts(po.read_options(shlex.split(text), source))
    except SidError as err:
        msg = str(err)
        raise SidError(msg if source in msg else f"{source}: {msg}") from None


def training_record(data_dir: str | Path):
    """The ``features`` record of ``sid.config`` for a training data dir (features made by
    make_features.sh, CMN'd by prepare_feats_for_egs.sh)."""
    from sid.config import FeaturesRecord

    data_dir = Path(data_dir)
    marker = _required_marker(data_dir)
    conf = data_dir / "conf" / f"{marker['feat_type']}.conf"
    cmvn = data_dir / CMVN_OPTS
    for path, made_by in ((conf, "steps/make_features.sh"), (cmvn, "steps/prepare_feats_for_egs.sh")):
        if not path.exists():
            raise SidError(f"{path} not found: {data_dir} does not record how its features were made "
                           f"(it is written by {made_by})")
    config = conf.read_text(encoding="utf-8")
    if options_md5(config) != marker["options_md5"]:
        raise SidError(f"{conf} does not match the options checksum in {data_dir / MARKER}: was it edited?")
    cmvn_opts = cmvn.read_text(encoding="utf-8").strip()
    if cmvn_opts == "none":
        # Features of whole utterances with nothing subtracted and no VAD applied (e.g. an
        # imported model's front-end, for fine-tuning it): exactly what extraction computes from
        # a test utterance's audio, so the model is extracted from audio (features.source).
        return FeaturesRecord(type=marker["feat_type"], config=config, checksum=marker["options_md5"],
                              cmvn_opts=cmvn_opts, source="audio")
    parse_cmvn_opts(cmvn_opts, str(cmvn))
    return FeaturesRecord(type=marker["feat_type"], config=config, checksum=marker["options_md5"], cmvn_opts=cmvn_opts,
                          compress=marker.get("compress", "true") == "true", vad=vad_record(data_dir))


def copy_record(sources: list[str | Path], dest: str | Path) -> None:
    """Give ``dest`` (made from ``sources`` by a copy, subset or combination) their record,
    which must be the same in all of them."""
    sources = [Path(s) for s in sources]
    dest = Path(dest)
    first = sources[0]
    marker = _required_marker(first)
    cmvn = (first / CMVN_OPTS).read_text(encoding="utf-8") if (first / CMVN_OPTS).exists() else None
    vad = read_vad_marker(first)
    for other in sources[1:]:
        if read_vad_marker(other) != vad:
            raise SidError(f"{first / VAD_MARKER} and {other / VAD_MARKER} differ (or one is missing): "
                           "their VAD was made differently and they cannot be combined")
        if _required_marker(other) != marker:
            raise SidError(f"{first / MARKER} and {other / MARKER} differ: their features were made differently "
                           "and cannot be combined")
        other_cmvn = (other / CMVN_OPTS).read_text(encoding="utf-8") if (other / CMVN_OPTS).exists() else None
        if other_cmvn != cmvn:
            raise SidError(f"{first / CMVN_OPTS} and {other / CMVN_OPTS} differ (or one is missing): "
                           "the features were normalised differently and cannot be combined")
    conf = f"{marker['feat_type']}.conf"
    (dest / "conf").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(first / "conf" / conf, dest / "conf" / conf)
    if cmvn is not None:
        (dest / CMVN_OPTS).write_text(cmvn, encoding="utf-8")
    shutil.copyfile(first / MARKER, dest / MARKER)
    if vad is not None:
        copy_vad_record(first, dest)


def check_match(model_dir: str | Path, data_dir: str | Path) -> str:
    """Stop unless ``data_dir``'s features were made as the model's training features (or, for
    a model trained from audio, it has audio); return what extraction reads: the record's
    ``source``, features or audio."""
    from sid.config import load_features_record

    cfg_path = Path(model_dir) / "config.yaml"
    record = load_features_record(cfg_path)
    if record is None:
        raise SidError(f"{cfg_path} has no 'features' record: the model does not say how its features were made")
    data_dir = Path(data_dir)
    if record.source == "audio":
        if not (data_dir / "wav.scp").is_file():
            raise SidError(f"{data_dir}/wav.scp not found: {model_dir} was trained from audio (features.source in "
                           f"{cfg_path}) and computes its features from the data dir's audio")
        return record.source
    marker = _required_marker(data_dir)
    if marker["feat_type"] != record.type or marker["options_md5"] != record.checksum:
        raise SidError(
            f"{data_dir / MARKER} says its features are {marker['feat_type']} with options {marker['options_md5']} "
            f"({data_dir}/conf/{marker['feat_type']}.conf), but {cfg_path} says the model was trained on "
            f"{record.type} with options {record.checksum} (its features.config): remake the features of "
            f"{data_dir} with that config")
    if record.vad is not None:
        vad = read_vad_marker(data_dir)
        if vad is None:
            raise SidError(f"{data_dir / VAD_MARKER} not found: {data_dir} does not record how its VAD was made, "
                           f"and {cfg_path} records the model's (features.vad): remake it with "
                           "steps/compute_vad_decision.sh")
        if vad["options_md5"] != record.vad.checksum or vad["features_type"] != record.vad.features_type or \
                vad["features_md5"] != options_md5(record.vad.features_config):
            raise SidError(
                f"{data_dir / VAD_MARKER} says its VAD was made with options {vad['options_md5']} on "
                f"{vad['features_type']} features {vad['features_md5']} ({data_dir}/conf/vad.conf), but {cfg_path} "
                f"says the model's was made with {record.vad.checksum} on {record.vad.features_type} features "
                f"{options_md5(record.vad.features_config)} (its features.vad): remake the VAD of {data_dir} "
                "with that config")
    return record.source


# -- records of step outputs (<output>.made_by) --------------------------------------------------
# Inputs up to this size are fingerprinted by their content; bigger ones (training embeddings,
# feature archives) by size and modification time, which a rewrite changes and reading is free.
CONTENT_HASH_MAX_BYTES = 64 << 20
_SCP_OFFSET = re.compile(r"(?:\[[^\]]*\])?(?::\d+)?$")


def fingerprint(path: str | Path) -> str:
    """``md5 <hex>`` of a file's content, ``size <n> mtime <ns>`` for a big file, ``missing``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    if st.st_size > CONTENT_HASH_MAX_BYTES:
        return f"size {st.st_size} mtime {st.st_mtime_ns}"
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"md5 {h.hexdigest()}"


def _scp_targets(path: Path) -> list[str]:
    """The files an scp's values point into (``ark:offset`` and ``[range]`` stripped; pipes left out)."""
    targets = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            value = line.strip().partition(" ")[2].strip()
            if value and not value.endswith("|"):
                targets.add(_SCP_OFFSET.sub("", value))
    return sorted(targets)


def step_record(options: str, inputs: list[str | Path]) -> str:
    """What made an output: ``options`` (the step's settings that change it, as one line) and a
    fingerprint line per input file, then per archive each input scp points into."""
    lines = [f"options {options}"]
    for path in inputs:
        lines.append(f"input {path} {fingerprint(path)}")
        if str(path).endswith(".scp") and os.path.isfile(path):
            lines.extend(f"  archive {t} {fingerprint(t)}" for t in _scp_targets(Path(path)))
    return "\n".join(lines) + "\n"


def step_done(marker: str | Path, options: str, inputs: list[str | Path], what: str = "") -> bool:
    """True when ``marker`` holds the record of ``options`` and ``inputs``. Otherwise the stale
    marker is removed, the new record is left in ``<marker>.new`` (the caller renames it to
    ``marker`` once the output is complete: ``step_finish``) and, where there was a marker, what
    changed is printed."""
    from sid.data.table import atomic_path

    marker = Path(marker)
    record = step_record(options, inputs)
    old = marker.read_text(encoding="utf-8") if marker.exists() else None
    if old == record:
        return True
    if old is not None:
        output = str(marker)[:-len(".made_by")] if str(marker).endswith(".made_by") else str(marker)
        changes = [line for line in difflib.unified_diff(old.splitlines(), record.splitlines(), "was", "now",
                                                         lineterm="", n=0)
                   if line[:1] in "+-" and line[:3] not in ("---", "+++")]
        print(f"{what or 'note'}: {output} was made with other options or inputs; making it again. "
              "Was (-) / now (+):\n  " + "\n  ".join(changes), flush=True)
        marker.unlink()
    with atomic_path(marker.with_name(marker.name + ".new")) as tmp:
        tmp.write_text(record, encoding="utf-8")
    return False


def step_finish(marker: str | Path) -> None:
    """Record a completed output: ``<marker>.new`` (written by ``step_done``) becomes ``marker``."""
    marker = Path(marker)
    os.replace(marker.with_name(marker.name + ".new"), marker)
