"""Augmented copies of a data dir, as Kaldi egs/voxceleb/v2 makes them, with recipes instead of pipes.

Kaldi writes ``wav.scp`` lines such as ``wav-reverberate --additive-signals=... <wav> - |``
and runs one subprocess per utterance. Here an augmented copy keeps the CLEAN
source in ``wav.scp`` (and ``segments``) and records what to do in ``utt2aug``
(``<utt> <one-line JSON recipe>``, see ``sid.augment.recipe``); feature
extraction applies it in-process. Every random choice is drawn from a generator
seeded with ``<seed>-<source utt id>``, so a copy is the same whatever the order,
the job split or the machine.

  * ``reverberate_data_dir``: Kaldi's steps/data/reverberate_data_dir.py with
    ``--rir-set-parameters "<prob>, <rir_list>"`` (RIRS_NOISES format) and
    ``--speech-rvb-probability``; no point-source or isotropic noises.
  * ``augment_data_dir``: Kaldi's steps/data/augment_data_dir.py: foreground noises
    one after another with ``--fg-interval`` seconds between them until the
    utterance is covered, each with an SNR from ``--fg-snrs``; and/or
    ``--num-bg-noises`` background noises from the start, each repeated to the
    utterance's length with an SNR from ``--bg-snrs``.
  * ``perturb_data_dir_speed``: Kaldi's utils/data/perturb_data_dir_speed.sh:
    utterances and speakers get the prefix ``sp<factor>-`` (a new speaker, as WeSpeaker).

Reverberated and noisy copies keep the clean utterance's length and alignment, so
they carry its ``vad.scp`` (re-keyed) as Kaldi does; speed-perturbed copies do not.
A copy of a copy (noise on speed-perturbed data) merges the recipes.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shlex
import shutil
from pathlib import Path
from typing import Callable

from sid.data.table import read_dict, write_sorted
from sid.errors import DataDirError

log = logging.getLogger(__name__)

# Utterance-keyed files an augmented copy takes over with the new ids.
CARRIED = ("utt2dur", "text")


def _read_optional(path: Path) -> dict[str, str] | None:
    return read_dict(path) if path.is_file() else None


class _Source:
    """The files of the clean data dir a copy is made from."""

    def __init__(self, data_dir: str | os.PathLike):
        self.dir = Path(data_dir)
        for name in ("utt2spk", "wav.scp"):
            if not (self.dir / name).is_file():
                raise DataDirError(f"{self.dir / name}: no such file (not a data dir?)")
        self.utt2spk = read_dict(self.dir / "utt2spk")
        self.wav = read_dict(self.dir / "wav.scp")
        self.segments = _read_optional(self.dir / "segments")
        self.utt2aug = _read_optional(self.dir / "utt2aug")
        self.vad = _read_optional(self.dir / "vad.scp")
        self.spk2gender = _read_optional(self.dir / "spk2gender")
        self.carried = {name: _read_optional(self.dir / name) for name in CARRIED}

    def durations(self) -> dict[str, float]:
        utt2dur = self.carried["utt2dur"]
        if utt2dur is None:
            raise DataDirError(f"{self.dir}/utt2dur: no such file; make it with utils/data/get_utt2dur.sh {self.dir}")
        missing = [u for u in self.utt2spk if u not in utt2dur]
        if missing:
            raise DataDirError(f"{self.dir}/utt2dur: {len(missing)} utterances have no duration, e.g. '{missing[0]}'; "
                               f"run utils/fix_data_dir.sh {self.dir}")
        return {u: float(utt2dur[u]) for u in self.utt2spk}

    def base_recipe(self, utt: str) -> dict:
        if self.utt2aug is None or utt not in self.utt2aug:
            return {}
        return json.loads(self.utt2aug[utt])


def _noise_dir(data_dir: str | os.PathLike) -> tuple[list[str], dict[str, str], dict[str, float]]:
    """Noise utterances (sorted), their audio specs and durations (utt2dur or reco2dur)."""
    d = Path(data_dir)
    wav = read_dict(d / "wav.scp") if (d / "wav.scp").is_file() else None
    if wav is None:
        raise DataDirError(f"{d}/wav.scp: no such file (noise dirs come from local/make_musan.py)")
    dur_file = d / "utt2dur" if (d / "utt2dur").is_file() else d / "reco2dur"
    if not dur_file.is_file():
        raise DataDirError(f"{d}: needs utt2dur (or reco2dur); make it with utils/data/get_utt2dur.sh {d}")
    durs = read_dict(dur_file)
    missing = [u for u in wav if u not in durs]
    if missing:
        raise DataDirError(f"{dur_file}: no duration for {len(missing)} noises, e.g. '{missing[0]}'")
    if not wav:
        raise DataDirError(f"{d}/wav.scp: no noises")
    return sorted(wav), wav, {u: float(durs[u]) for u in wav}


def read_rir_list(path: str | os.PathLike) -> list[str]:
    """RIR files of a RIRS_NOISES ``rir_list`` (``--rir-id X --room-id Y <file>`` lines).

    Relative files are taken relative to the current directory, as Kaldi does; a
    missing file is an error naming the list's line.
    """
    rirs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            tokens = shlex.split(line)
            if not tokens:
                continue
            words = []
            i = 0
            while i < len(tokens):
                if tokens[i].startswith("--"):
                    i += 1 if "=" in tokens[i] else 2
                else:
                    words.append(tokens[i])
                    i += 1
            if not words:
                raise DataDirError(f"{path}:{lineno}: no RIR file in '{line.strip()}'")
            spec = " ".join(words)
            if not spec.endswith("|") and not os.path.isfile(spec):
                raise DataDirError(f"{path}:{lineno}: RIR file '{spec}' does not exist")
            rirs.append(spec)
    if not rirs:
        raise DataDirError(f"{path}: no RIRs")
    return rirs


def _write_copy(src: _Source, dest: str | os.PathLike, rename_utt: Callable[[str], str],
                rename_spk: Callable[[str], str], recipes: dict[str, dict], dur_scale: float,
                carry_vad: bool) -> None:
    """Write the copy into ``<dest>.tmp`` and rename it to ``dest`` once complete."""
    out = Path(dest)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    utts = list(src.utt2spk)
    new = {u: rename_utt(u) for u in utts}
    write_sorted(tmp / "utt2spk", ((new[u], rename_spk(src.utt2spk[u])) for u in utts))
    spk2utt: dict[str, list[str]] = {}
    for u in utts:
        spk2utt.setdefault(rename_spk(src.utt2spk[u]), []).append(new[u])
    write_sorted(tmp / "spk2utt", ((s, sorted(us, key=str.encode)) for s, us in spk2utt.items()))
    if src.segments is None:
        write_sorted(tmp / "wav.scp", ((new[u], src.wav[u]) for u in utts))
    else:
        # Recordings stay as they are; only the utterances (segments) are new.
        write_sorted(tmp / "segments", ((new[u], src.segments[u]) for u in utts))
        shutil.copyfile(src.dir / "wav.scp", tmp / "wav.scp")
    for name, table in src.carried.items():
        if table is None:
            continue
        if name == "utt2dur":
            write_sorted(tmp / name, ((new[u], f"{float(table[u]) * dur_scale:.3f}") for u in utts if u in table))
        else:
            write_sorted(tmp / name, ((new[u], table[u]) for u in utts if u in table))
    if carry_vad and src.vad is not None:
        write_sorted(tmp / "vad.scp", ((new[u], src.vad[u]) for u in utts if u in src.vad))
    if src.spk2gender is not None:
        write_sorted(tmp / "spk2gender", ((rename_spk(s), g) for s, g in src.spk2gender.items()))
    write_sorted(tmp / "utt2aug", ((new[u], json.dumps(recipes[u], separators=(",", ":"))) for u in utts))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    log.info("wrote %d augmented utterances to %s", len(utts), out)


def _merge(base: dict, extra: dict, utt: str, src_dir: Path) -> dict:
    clash = (set(base) & set(extra)) - {"seed", "additive"}
    if clash:
        raise DataDirError(f"{src_dir}/utt2aug: utterance '{utt}' already has {sorted(clash)}; "
                           "augment the clean data dir instead")
    merged = {**base, **extra}
    if base.get("additive") and extra.get("additive"):
        merged["additive"] = base["additive"] + extra["additive"]
    return merged


def reverberate_data_dir(src_dir: str | os.PathLike, dest_dir: str | os.PathLike,
                         rir_sets: list[tuple[float, str]], utt_suffix: str = "reverb",
                         speech_rvb_probability: float = 1.0, seed: int = 0) -> None:
    """Reverberated copy; ``rir_sets``: ``(probability, rir_list)``, one set drawn per
    utterance by probability, then one of its RIRs uniformly (Kaldi's defaults)."""
    if not rir_sets:
        raise DataDirError("no RIR sets given (--rir-set-parameters '<prob>, <rir_list>')")
    if not 0 <= speech_rvb_probability <= 1:
        raise DataDirError(f"--speech-rvb-probability must be within [0, 1], got {speech_rvb_probability}")
    lists = [read_rir_list(path) for _, path in rir_sets]
    weights = [p for p, _ in rir_sets]
    if min(weights) < 0 or sum(weights) <= 0:
        raise DataDirError(f"RIR set probabilities must be non-negative with a positive sum, got {weights}")
    src = _Source(src_dir)
    recipes = {}
    for utt in src.utt2spk:
        rng = random.Random(f"{seed}-{utt}")
        rec: dict = {"seed": seed}
        if rng.random() < speech_rvb_probability:
            rirs = rng.choices(lists, weights)[0]
            rec["rir"] = rng.choice(rirs)
        recipes[utt] = _merge(src.base_recipe(utt), rec, utt, src.dir)
    _write_copy(src, dest_dir, lambda u: f"{u}-{utt_suffix}", lambda s: s, recipes, 1.0, carry_vad=True)


def augment_data_dir(src_dir: str | os.PathLike, dest_dir: str | os.PathLike, utt_suffix: str,
                     fg_noise_dir: str | None = None, fg_snrs: list[float] = (), fg_interval: float = 0.0,
                     bg_noise_dir: str | None = None, bg_snrs: list[float] = (), num_bg_noises: list[int] = (1,),
                     seed: int = 0) -> None:
    """Noisy copy with foreground and/or background noises (Kaldi's augment_data_dir.py)."""
    if fg_noise_dir is None and bg_noise_dir is None:
        raise DataDirError("give a foreground and/or a background noise dir (--fg-noise-dir, --bg-noise-dir)")
    if fg_noise_dir is not None and not fg_snrs:
        raise DataDirError("--fg-noise-dir needs --fg-snrs")
    if bg_noise_dir is not None and (not bg_snrs or not num_bg_noises or min(num_bg_noises) < 1):
        raise DataDirError("--bg-noise-dir needs --bg-snrs and --num-bg-noises of positive counts")
    fg = _noise_dir(fg_noise_dir) if fg_noise_dir is not None else None
    bg = _noise_dir(bg_noise_dir) if bg_noise_dir is not None else None
    src = _Source(src_dir)
    durs = src.durations() if fg is not None else {}
    recipes = {}
    for utt in src.utt2spk:
        rng = random.Random(f"{seed}-{utt}")
        additive = []
        if bg is not None:
            names, wav, _ = bg
            for _ in range(rng.choice(num_bg_noises)):
                additive.append({"file": wav[rng.choice(names)], "snr": rng.choice(bg_snrs), "start": 0.0,
                                 "fill": True})
        if fg is not None:
            names, wav, ndur = fg
            total = 0.0
            while total < durs[utt]:
                name = rng.choice(names)
                additive.append({"file": wav[name], "snr": rng.choice(fg_snrs), "start": round(total, 3)})
                total += ndur[name] + fg_interval
        recipes[utt] = _merge(src.base_recipe(utt), {"seed": seed, "additive": additive}, utt, src.dir)
    _write_copy(src, dest_dir, lambda u: f"{u}-{utt_suffix}", lambda s: s, recipes, 1.0, carry_vad=True)


def perturb_data_dir_speed(factor: float, src_dir: str | os.PathLike, dest_dir: str | os.PathLike) -> None:
    """Speed-perturbed copy: ids ``sp<factor>-<utt>``, speakers ``sp<factor>-<spk>`` (new speakers)."""
    if factor <= 0:
        raise DataDirError(f"speed factor must be positive, got {factor}")
    prefix = f"sp{factor:g}-"
    src = _Source(src_dir)
    recipes = {u: _merge(src.base_recipe(u), {"speed": factor}, u, src.dir) for u in src.utt2spk}
    _write_copy(src, dest_dir, lambda u: prefix + u, lambda s: prefix + s, recipes, 1.0 / factor, carry_vad=False)
