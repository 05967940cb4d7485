"""VoxCeleb corpora: data directories from the downloaded trees, and trial lists.

Layouts (as downloaded and unzipped):
  * VoxCeleb1: ``<root>/wav/idXXXXX/<video>/NNNNN.wav`` holding dev and test
    together, or Kaldi's split layout ``<root>/{dev,test}/wav/idXXXXX/...``.
    The official test set is the 40 speakers id10270..id10309 (``vox1_meta.csv``'s
    ``Set`` column says the same and is used when given).
  * VoxCeleb2: ``<root>/{dev,test}/aac/idXXXXX/<video>/NNNNN.m4a`` (wav or flac
    files after ``local/convert_m4a.py`` are accepted too).

Utterance ids join the three path parts with dashes: ``id10270/x6uYqmx31kE/00001.wav``
becomes ``id10270-x6uYqmx31kE-00001``; the speaker id is the first part, so the
speaker is a prefix of its utterances and Kaldi's sort orders agree.

Official trial lists (``veri_test.txt``, ``list_test_hard2.txt``, ... possibly
gzipped) hold ``1|0 <path1> <path2>``; ``convert_trials`` turns them into Kaldi
trials ``<utt1> <utt2> target|nontarget``.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable

from sid.data.table import atomic_path, write_sorted
from sid.errors import AudioError, DataDirError, SidError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".m4a", ".flac")
VOX1_TEST_SPEAKERS = frozenset(f"id{n}" for n in range(10270, 10310))
# How many offending items an error message lists before "...".
SHOW = 5


def utt_id(rel_path: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` -> ``id10270-x6uYqmx31kE-00001``."""
    parts = rel_path.strip().split("/")
    if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2]:
        raise ValueError(f"expected <speaker>/<video>/<file>, got '{rel_path}'")
    stem = parts[2].rsplit(".", 1)[0]
    return f"{parts[0]}-{parts[1]}-{stem}"


def utt_path(utt: str) -> str:
    """The official list's name of an utterance: ``id10270-x6uYqmx31kE-00001`` -> ``id10270/x6uYqmx31kE/00001.wav``
    (speaker ids and file numbers hold no dash; video ids may)."""
    spk, rest = utt.split("-", 1)
    video, num = rest.rsplit("-", 1)
    return f"{spk}/{video}/{num}.wav"


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:SHOW])
    return shown + (", ..." if len(items) > SHOW else "")


def scan_tree(audio_root: str | os.PathLike, speakers: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
    """``(utt, speaker, absolute path)`` for every ``idXXXXX/<video>/<n>.<ext>`` under ``audio_root``.

    ``speakers``: keep only these speaker folders. ``os.scandir`` (no stat per file)
    keeps a 1M-file tree to seconds.
    """
    root = Path(audio_root).resolve()
    if not root.is_dir():
        raise SidError(f"{root}: no such directory (expected idXXXXX/<video>/<n>.wav|m4a below it)")
    keep = set(speakers) if speakers is not None else None
    out = []
    for spk in sorted(e.name for e in os.scandir(root) if e.is_dir()):
        if keep is not None and spk not in keep:
            continue
        for video in os.scandir(root / spk):
            if not video.is_dir():
                continue
            for f in os.scandir(video.path):
                if f.name.lower().endswith(AUDIO_EXTENSIONS):
                    out.append((utt_id(f"{spk}/{video.name}/{f.name}"), spk, f.path))
    if not out:
        raise SidError(f"{root}: no audio files (*.wav, *.m4a, *.flac) in idXXXXX/<video>/ folders")
    out.sort(key=lambda t: t[0].encode())
    for (a, _, pa), (b, _, pb) in zip(out, out[1:]):
        if a == b:
            raise SidError(f"two files give utterance id '{a}': {pa} and {pb}")
    return out


def read_meta(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """``speaker -> (gender m|f, set)`` from ``vox1_meta.csv`` (tab-separated) or
    ``vox2_meta.csv`` (comma-separated, padded with spaces, BOM, CRLF)."""
    with open(path, encoding="utf-8-sig") as f:
        lines = [ln.rstrip("\r\n") for ln in f]
    if not lines:
        raise DataDirError(f"{path}: empty metadata file")
    sep = "\t" if "\t" in lines[0] else ","
    header = [h.strip().lower() for h in lines[0].split(sep)]
    try:
        col_id = next(i for i, h in enumerate(header) if h.endswith(" id") and h.startswith("voxceleb"))
        col_gender = header.index("gender")
        col_set = header.index("set")
    except (StopIteration, ValueError):
        raise DataDirError(f"{path}:1: expected a header naming 'VoxCeleb1 ID' or 'VoxCeleb2 ID', "
                           f"'Gender' and 'Set', got '{lines[0]}'") from None
    out = {}
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = [x.strip() for x in line.split(sep)]
        if len(fields) <= max(col_id, col_gender, col_set):
            raise DataDirError(f"{path}:{lineno}: expected {len(header)} fields, got '{line}'")
        gender = fields[col_gender].lower()
        if gender not in ("m", "f"):
            raise DataDirError(f"{path}:{lineno}: gender must be m or f, got '{fields[col_gender]}'")
        out[fields[col_id]] = (gender, fields[col_set].lower())
    return out


def audio_duration(path: str) -> float:
    """Seconds of audio from the file's header (no decoding)."""
    if path.lower().endswith(".m4a"):
        import av

        with av.open(path) as container:
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1e6
            raise ValueError("no duration in the container")
    import soundfile as sf

    info = sf.info(path)
    return info.frames / info.samplerate


def _duration_or_error(path: str) -> tuple[float | None, str]:
    try:
        dur = audio_duration(path)
    except Exception as err:  # any decoder failure: reported per file, all together
        return None, f"{path} ({str(err).strip() or type(err).__name__})"
    if dur <= 0:
        return None, f"{path} (no audio)"
    return dur, ""


def durations(paths: list[str], nj: int = 1) -> list[float]:
    """Duration of every file; unreadable or empty files are one error listing them."""
    from sid.cli import progress

    if nj > 1 and len(paths) > 1:
        with ProcessPoolExecutor(nj) as pool:
            results = list(progress(pool.map(_duration_or_error, paths, chunksize=64), total=len(paths),
                                    desc="durations", unit="file"))
    else:
        results = [_duration_or_error(p) for p in progress(paths, desc="durations", unit="file")]
    bad = [err for dur, err in results if dur is None]
    if bad:
        raise AudioError(f"{len(bad)} of {len(paths)} audio files are unreadable or empty: {_examples(bad)}")
    return [dur for dur, _ in results]


def write_data_dir(out_dir: str | os.PathLike, utts: list[tuple[str, str, str]], durs: list[float] | None,
                   genders: dict[str, str] | None = None) -> None:
    """Write ``wav.scp, utt2spk, spk2utt[, utt2dur, spk2gender]`` into a temporary folder,
    then rename it to ``out_dir``, so ``out_dir`` exists only when complete."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_sorted(tmp / "wav.scp", ((u, p) for u, _, p in utts))
    write_sorted(tmp / "utt2spk", ((u, s) for u, s, _ in utts))
    spk2utt: dict[str, list[str]] = {}
    for u, s, _ in utts:
        spk2utt.setdefault(s, []).append(u)
    write_sorted(tmp / "spk2utt", ((s, sorted(us, key=str.encode)) for s, us in spk2utt.items()))
    if durs is not None:
        write_sorted(tmp / "utt2dur", ((u, f"{d:.3f}") for (u, _, _), d in zip(utts, durs)))
    if genders is not None:
        missing = sorted(s for s in spk2utt if s not in genders)
        if missing:
            raise DataDirError(f"{len(missing)} speakers have no gender in the metadata: {_examples(missing)}")
        write_sorted(tmp / "spk2gender", ((s, genders[s]) for s in spk2utt))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


# ---------------------------------------------------------------- trials

def _open_text(path: str | os.PathLike):
    path = str(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_official_trials(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """``(utt1, utt2, target|nontarget)`` from a ``1|0 path1 path2`` list; a bad line is an error naming it."""
    out = []
    labels = {"1": "target", "0": "nontarget"}
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in labels:
                raise DataDirError(f"{path}:{lineno}: expected '1|0 <spk>/<video>/<n>.wav <spk>/<video>/<n>.wav', "
                                   f"got '{line.strip()}'")
            try:
                out.append((utt_id(fields[1]), utt_id(fields[2]), labels[fields[0]]))
            except ValueError as err:
                raise DataDirError(f"{path}:{lineno}: {err}") from None
    if not out:
        raise DataDirError(f"{path}: no trials")
    return out


def convert_trials(list_path: str | os.PathLike, out_path: str | os.PathLike,
                   utts: set[str] | None = None) -> tuple[int, int]:
    """Write Kaldi trials for an official list; returns ``(num_trials, num_target)``.

    ``utts``: the test data dir's utterances; a trial naming any other utterance
    is an error that counts and lists them (the test set is incomplete).
    """
    trials = read_official_trials(list_path)
    if utts is not None:
        missing = sorted({u for t in trials for u in t[:2] if u not in utts})
        if missing:
            raise DataDirError(f"{list_path}: {len(missing)} files named in the trials are not in the data dir: "
                               + _examples([f"{utt_path(u)} ({u})" for u in missing]))
    with atomic_path(out_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(f"{a} {b} {lab}\n" for a, b, lab in trials)
    return len(trials), sum(lab == "target" for _, _, lab in trials)
