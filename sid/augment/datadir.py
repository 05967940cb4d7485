"""Augmented copies of a data dir, as Kaldi egs/voxceleb/v2 makes them, with recipes instead of pipes.

Kaldi writes ``wav.scp`` lines such as ``wav-reverberate --additive-signals=... <wav> - |``
and runs one subprocess per utterance. Here an augmented copy keeps the CLEAN
source in ``wav.scp`` (and ``segments``) and records what to do in ``utt2aug``
(``<utt> <one-line JSON recipe>``, see ``sid.augment.recipe``); feature
extraction applies it in-process. Every random choice is drawn from a hash of
``<seed>-<source utt id>`` (see ``_Draws``), so a copy is the same whatever the
order, the job split, the machine or the Python version.

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

import bisect
import hashlib
import json
import logging
import os
import shlex
import shutil
import struct
from pathlib import Path
from typing import Callable

from sid.data.table import read_dict
from sid.errors import DataDirError

log = logging.getLogger(__name__)


def _read_table(path: Path) -> dict[str, str]:
    """``key -> value`` of a Kaldi table, fast enough for millions of lines; a malformed
    file (empty line, key without value, duplicate key) is read again by ``read_dict``
    for the error naming its line."""
    with open(path, encoding="utf-8") as f:
        pairs = [line.split(None, 1) for line in f.read().splitlines()]
    try:
        table = dict(pairs)
    except ValueError:
        table = None
    if table is None or len(table) != len(pairs):
        read_dict(path)  # raises, naming the line
        raise DataDirError(f"{path}: malformed table")
    return table


class _Draws:
    """Random draws for one utterance from BLAKE2b('<seed>-<utt>', counter).

    As reproducible as seeding a generator per utterance, but seeding Python's
    Mersenne Twister a million times costs more than all the rest of the work.
    """

    __slots__ = ("_key", "_block", "_pool")

    def __init__(self, seed: int, utt: str):
        self._key = f"{seed}-{utt}".encode()
        self._block = 0
        self._pool: list[int] = []

    def random(self) -> float:
        """Uniform in [0, 1), 53 bits."""
        if not self._pool:
            digest = hashlib.blake2b(self._key + struct.pack("<I", self._block), digest_size=64).digest()
            self._block += 1
            self._pool = list(struct.unpack("<8Q", digest))
        return (self._pool.pop() >> 11) / 9007199254740992.0

    def choice(self, seq):
        return seq[int(self.random() * len(seq))]

    def weighted_index(self, cumulative: list[float]) -> int:
        return min(bisect.bisect_right(cumulative, self.random() * cumulative[-1]), len(cumulative) - 1)


class _Source:
    """The data dir a copy is made from; tables other than utt2spk are read when needed."""

    def __init__(self, data_dir: str | os.PathLike):
        self.dir = Path(data_dir)
        for name in ("utt2spk", "wav.scp"):
            if not (self.dir / name).is_file():
                raise DataDirError(f"{self.dir / name}: no such file (not a data dir?)")
        self.utt2spk = _read_table(self.dir / "utt2spk")
        self.utt2aug = _read_table(self.dir / "utt2aug") if self.has("utt2aug") else None
        self._utt2dur: dict[str, str] | None = None  # kept once durations() has read it

    def has(self, name: str) -> bool:
        return (self.dir / name).is_file()

    def table(self, name: str) -> dict[str, str]:
        if name == "utt2dur" and self._utt2dur is not None:
            return self._utt2dur
        return _read_table(self.dir / name)

    def durations(self) -> dict[str, float]:
        if not self.has("utt2dur"):
            raise DataDirError(f"{self.dir}/utt2dur: no such file; make it with utils/data/get_utt2dur.sh {self.dir}")
        utt2dur = self._utt2dur = self.table("utt2dur")
        missing = [u for u in self.utt2spk if u not in utt2dur]
        if missing:
            raise DataDirError(f"{self.dir}/utt2dur: {len(missing)} utterances have no duration, e.g. '{missing[0]}'; "
                               f"run utils/fix_data_dir.sh {self.dir}")
        return {u: float(utt2dur[u]) for u in self.utt2spk}

    def merged(self, utt: str, recipe: str) -> str:
        """``recipe`` (JSON) joined to the one ``utt`` already has, if any."""
        if self.utt2aug is None or utt not in self.utt2aug:
            return recipe
        base, extra = json.loads(self.utt2aug[utt]), json.loads(recipe)
        clash = (set(base) & set(extra)) - {"seed", "additive"}
        if clash:
            raise DataDirError(f"{self.dir}/utt2aug: utterance '{utt}' already has {sorted(clash)}; "
                               "augment the clean data dir instead")
        merged = {**base, **extra}
        if base.get("additive") and extra.get("additive"):
            merged["additive"] = base["additive"] + extra["additive"]
        return json.dumps(merged, separators=(",", ":"))


class _Quoted(dict):
    """File spec -> its JSON string, made once per noise or RIR file."""

    def __missing__(self, spec: str) -> str:
        self[spec] = json.dumps(spec)
        return self[spec]


def _noise_dir(data_dir: str | os.PathLike) -> tuple[list[str], list[float]]:
    """Audio specs of a noise dir's utterances (sorted by id) and their durations (utt2dur or reco2dur)."""
    d = Path(data_dir)
    if not (d / "wav.scp").is_file():
        raise DataDirError(f"{d}/wav.scp: no such file (noise dirs come from local/make_musan.py)")
    dur_file = d / "utt2dur" if (d / "utt2dur").is_file() else d / "reco2dur"
    if not dur_file.is_file():
        raise DataDirError(f"{d}: needs utt2dur (or reco2dur); make it with utils/data/get_utt2dur.sh {d}")
    wav, durs = _read_table(d / "wav.scp"), _read_table(dur_file)
    missing = [u for u in wav if u not in durs]
    if missing:
        raise DataDirError(f"{dur_file}: no duration for {len(missing)} noises, e.g. '{missing[0]}'")
    if not wav:
        raise DataDirError(f"{d}/wav.scp: no noises")
    names = sorted(wav)
    return [wav[u] for u in names], [float(durs[u]) for u in names]


def parse_rir_line(line: str) -> tuple[dict[str, str], str]:
    """A RIRS_NOISES ``rir_list`` line ``--rir-id X --room-id Y <file>`` as its options
    (``{"--rir-id": "X", ...}``) and the file (``""`` for an empty line)."""
    opts, words = {}, []
    tokens = iter(shlex.split(line))
    for tok in tokens:
        if tok.startswith("--"):
            name, eq, value = tok.partition("=")
            opts[name] = value if eq else next(tokens, "")
        else:
            words.append(tok)
    return opts, " ".join(words)


def read_rir_list(path: str | os.PathLike) -> list[str]:
    """RIR files of a RIRS_NOISES ``rir_list``.

    Relative files are taken relative to the current directory, as Kaldi does; a
    missing file is an error naming the list's line.
    """
    rirs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            _, spec = parse_rir_line(line)
            if not spec:
                raise DataDirError(f"{path}:{lineno}: no RIR file in '{line.strip()}'")
            if not spec.endswith("|") and not os.path.isfile(spec):
                raise DataDirError(f"{path}:{lineno}: RIR file '{spec}' does not exist")
            rirs.append(spec)
    if not rirs:
        raise DataDirError(f"{path}: no RIRs")
    return rirs


def _write_lines(path: Path, lines) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)


def _write_copy(src: _Source, dest: str | os.PathLike, rename_utt: Callable[[str], str],
                rename_spk: Callable[[str], str], recipes: dict[str, str], dur_scale: float,
                carry_vad: bool) -> None:
    """Write the copy into ``<dest>.tmp`` and rename it to ``dest`` once complete.

    One table is read at a time and every file is written in the order of the new
    ids (sorted once: Python's str order is UTF-8 bytewise, Kaldi's C-locale order).
    """
    out = Path(dest)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    utts = sorted(src.utt2spk, key=rename_utt)

    def rekeyed(name: str, fmt=lambda v: v):
        table = src.table(name)
        _write_lines(tmp / name, (f"{rename_utt(u)} {fmt(table[u])}\n" for u in utts if u in table))

    spk2utt: dict[str, list[str]] = {}
    with open(tmp / "utt2spk", "w", encoding="utf-8") as f:
        for u in utts:
            new, spk = rename_utt(u), rename_spk(src.utt2spk[u])
            f.write(f"{new} {spk}\n")
            spk2utt.setdefault(spk, []).append(new)
    _write_lines(tmp / "spk2utt", (f"{s} {' '.join(spk2utt[s])}\n" for s in sorted(spk2utt)))
    del spk2utt
    if src.has("segments"):
        # Recordings stay as they are; only the utterances (segments) are new.
        rekeyed("segments")
        shutil.copyfile(src.dir / "wav.scp", tmp / "wav.scp")
    else:
        rekeyed("wav.scp")
    if src.has("utt2dur"):
        rekeyed("utt2dur", lambda v: f"{float(v) * dur_scale:.3f}" if dur_scale != 1 else v)
    if src.has("text"):
        rekeyed("text")
    if carry_vad and src.has("vad.scp"):
        rekeyed("vad.scp")
    if src.has("spk2gender"):
        genders = src.table("spk2gender")
        _write_lines(tmp / "spk2gender", (f"{rename_spk(s)} {genders[s]}\n" for s in sorted(genders, key=rename_spk)))
    _write_lines(tmp / "utt2aug", (f"{rename_utt(u)} {src.merged(u, recipes[u])}\n" for u in utts))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    log.info("wrote %d augmented utterances to %s", len(utts), out)


def reverberate_data_dir(src_dir: str | os.PathLike, dest_dir: str | os.PathLike,
                         rir_sets: list[tuple[float, str]], utt_suffix: str = "reverb",
                         speech_rvb_probability: float = 1.0, seed: int = 0) -> None:
    """Reverberated copy; ``rir_sets``: ``(probability, rir_list)``, one set drawn per
    utterance by probability, then one of its RIRs uniformly (Kaldi's defaults)."""
    if not rir_sets:
        raise DataDirError("no RIR sets given (--rir-set-parameters '<prob>, <rir_list>')")
    if not 0 <= speech_rvb_probability <= 1:
        raise DataDirError(f"--speech-rvb-probability must be within [0, 1], got {speech_rvb_probability}")
    weights = [p for p, _ in rir_sets]
    if min(weights) < 0 or sum(weights) <= 0:
        raise DataDirError(f"RIR set probabilities must be non-negative with a positive sum, got {weights}")
    quoted = _Quoted()
    lists = [[quoted[r] for r in read_rir_list(path)] for _, path in rir_sets]
    cumulative = [sum(weights[:i + 1]) for i in range(len(weights))]
    src = _Source(src_dir)
    recipes = {}
    for utt in src.utt2spk:
        draw = _Draws(seed, utt)
        if draw.random() < speech_rvb_probability:
            rir = draw.choice(lists[draw.weighted_index(cumulative)])
            recipes[utt] = f'{{"seed":{seed},"rir":{rir}}}'
        else:
            recipes[utt] = f'{{"seed":{seed}}}'
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
    quoted = _Quoted()
    fg = _noise_dir(fg_noise_dir) if fg_noise_dir is not None else None
    bg = _noise_dir(bg_noise_dir) if bg_noise_dir is not None else None
    fg_snrs, bg_snrs = [json.dumps(float(x)) for x in fg_snrs], [json.dumps(float(x)) for x in bg_snrs]
    src = _Source(src_dir)
    durs = src.durations() if fg is not None else {}
    recipes = {}
    for utt in src.utt2spk:
        draw = _Draws(seed, utt)
        additive = []
        if bg is not None:
            specs, ndur = bg
            for _ in range(draw.choice(num_bg_noises)):
                k = int(draw.random() * len(specs))
                additive.append(f'{{"file":{quoted[specs[k]]},"snr":{draw.choice(bg_snrs)},"start":0.0,'
                                f'"fill":true,"dur":{ndur[k]!r}}}')
        if fg is not None:
            specs, ndur = fg
            total = 0.0
            while total < durs[utt]:
                k = int(draw.random() * len(specs))
                additive.append(f'{{"file":{quoted[specs[k]]},"snr":{draw.choice(fg_snrs)},'
                                f'"start":{round(total, 3)!r}}}')
                total += ndur[k] + fg_interval
        recipes[utt] = f'{{"seed":{seed},"additive":[{",".join(additive)}]}}'
    _write_copy(src, dest_dir, lambda u: f"{u}-{utt_suffix}", lambda s: s, recipes, 1.0, carry_vad=True)


def perturb_data_dir_speed(factor: float, src_dir: str | os.PathLike, dest_dir: str | os.PathLike) -> None:
    """Speed-perturbed copy: ids ``sp<factor>-<utt>``, speakers ``sp<factor>-<spk>`` (new speakers)."""
    if factor <= 0:
        raise DataDirError(f"speed factor must be positive, got {factor}")
    prefix = f"sp{factor:g}-"
    src = _Source(src_dir)
    recipe = json.dumps({"speed": factor})
    recipes = dict.fromkeys(src.utt2spk, recipe)
    _write_copy(src, dest_dir, lambda u: prefix + u, lambda s: prefix + s, recipes, 1.0 / factor, carry_vad=False)
