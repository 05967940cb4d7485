"""Tar shards of a data dir (WebDataset layout), and the training set they make.

``write_shards`` packs the utterances of a data dir, in sorted order, ``N`` per shard,
into ``<shard-dir>/shards/shard-NNNNNN.tar``. Each utterance is a group of members
sharing a key (WebDataset's grouping, which WeSpeaker's shard reader uses too):

  ``<key>.spk``    the speaker (text)
  ``<key>.utt``    the utterance id (the key has ``.``, ``/`` and ``%`` escaped, because
                   WebDataset splits a member name at its first dot)
  audio dirs:      ``<key>.wav``/``.flac``/``.ogg``/``.opus`` (the file's own bytes where
                   the utterance is a whole file of one of these; otherwise the decoded
                   samples as 16-bit flac) and ``<key>.dur`` (seconds)
  feature dirs:    ``<key>.npy`` (float32 matrix) and ``<key>.frames``

Beside them: ``shard.list`` (one tar path per line: WeSpeaker's and WebDataset's
shard list), ``index`` (``<utt> <tar> <member> <offset> <size>``: where each
utterance's payload lies, so a reader can seek to it), ``utt2spk``/``spk2utt`` and
``utt2dur`` or ``utt2num_frames``, ``kind`` (``audio`` or ``features``) and
``params`` (what the shards were made from). A shard is written under a temporary
name and renamed when complete, so a killed run resumes with the shards not yet
there; the lists and index are written last, after every shard exists.

Training reads a shard dir like a data dir (``read_shard_training_set``); its epoch
plan (``plan_shard_epoch``) walks the shards in a seeded order through a seeded
shuffle buffer, so the storage sees whole tar files streamed one after another.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sid.data.table import atomic_path, read_dict, write_table
from sid.errors import DataDirError, SidError

log = logging.getLogger(__name__)

# Audio files stored as they are (soundfile reads them from the tar); other audio is
# decoded and stored as 16-bit flac.
COPIED_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus")
PAYLOADS = ("npy",) + tuple(e[1:] for e in COPIED_EXTENSIONS)


def escape_key(utt: str) -> str:
    return utt.replace("%", "%25").replace(".", "%2E").replace("/", "%2F")


def _source_kind(data_dir: Path) -> str:
    if (data_dir / "feats.scp").is_file():
        return "features"
    if (data_dir / "wav.scp").is_file():
        return "audio"
    raise DataDirError(f"{data_dir} has neither feats.scp nor wav.scp")


def _utterances(data_dir: Path) -> tuple[str, list[str], dict[str, str]]:
    kind = _source_kind(data_dir)
    if not (data_dir / "utt2spk").is_file():
        raise DataDirError(f"{data_dir}/utt2spk not found")
    utt2spk = read_dict(data_dir / "utt2spk")
    if kind == "features":
        utts = list(read_dict(data_dir / "feats.scp"))
    elif (data_dir / "segments").is_file():
        utts = list(read_dict(data_dir / "segments"))
    else:
        utts = list(read_dict(data_dir / "wav.scp"))
    missing = [u for u in utts if u not in utt2spk]
    if missing:
        raise DataDirError(f"{data_dir}/utt2spk has no speaker for '{missing[0]}' ({len(missing)} in all)")
    return kind, sorted(utts, key=str.encode), utt2spk


def _params(data_dir: Path, kind: str, utts: list[str], per_shard: int) -> str:
    digest = hashlib.sha1("\n".join(utts).encode()).hexdigest()
    return f"source={data_dir.resolve()} kind={kind} utts={len(utts)} utts_per_shard={per_shard} list_sha1={digest}\n"


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(payload))


def _audio_payload(utt: str, span, sample_rate: int | None) -> tuple[str, bytes, float]:
    """(extension, bytes, duration) of an utterance's audio."""
    import soundfile as sf

    from sid.data.audio import read_audio

    path = span.spec.strip()
    ext = Path(path).suffix.lower()
    if span.start == 0 and span.end is None and ext in COPIED_EXTENSIONS and os.path.isfile(path):
        try:
            info = sf.info(path)
        except Exception:
            info = None
        if info is not None and info.frames > 0:
            return ext, Path(path).read_bytes(), info.frames / info.samplerate
    samples, sr = read_audio(span.spec, utt=utt, start=span.start, end=span.end)
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.round(samples), -32768, 32767).astype(np.int16), sr, format="FLAC", subtype="PCM_16")
    return ".flac", buf.getvalue(), len(samples) / sr


def _write_shard(path: Path, kind: str, utts: list[str], utt2spk: dict, sources: dict) -> None:
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for utt in utts:
            key = escape_key(utt)
            if kind == "features":
                from sid.kaldi_io import ScpTable

                mat = np.ascontiguousarray(ScpTable({utt: sources[utt]})[utt], dtype=np.float32)
                buf = io.BytesIO()
                np.save(buf, mat)
                _add(tar, f"{key}.npy", buf.getvalue())
                _add(tar, f"{key}.frames", str(mat.shape[0]).encode())
            else:
                ext, payload, dur = _audio_payload(utt, sources[utt], None)
                _add(tar, f"{key}{ext}", payload)
                _add(tar, f"{key}.dur", f"{dur:.3f}".encode())
            _add(tar, f"{key}.spk", utt2spk[utt].encode())
            _add(tar, f"{key}.utt", utt.encode())


def shard_name(i: int) -> str:
    return f"shard-{i:06d}.tar"


def write_shards(data_dir: str | Path, shard_dir: str | Path, utts_per_shard: int = 1000,
                 job: int = 0, num_jobs: int = 1, progress: bool = True) -> int:
    """Write the shards of job ``job`` (1-based; 0: all of them, then the lists and index).
    Shards already present are kept. Returns the number of shards written now."""
    from tqdm import tqdm

    data_dir, shard_dir = Path(data_dir), Path(shard_dir)
    if utts_per_shard <= 0:
        raise SidError(f"--utts-per-shard must be positive, got {utts_per_shard}")
    kind, utts, utt2spk = _utterances(data_dir)
    if not utts:
        raise DataDirError(f"{data_dir} has no utterances")
    params = _params(data_dir, kind, utts, utts_per_shard)
    shard_dir.mkdir(parents=True, exist_ok=True)
    pfile = shard_dir / "params"
    if pfile.exists() and pfile.read_text() != params:
        raise SidError(f"{shard_dir} holds shards of something else ({pfile}: {pfile.read_text().strip()}); "
                       "use a new shard dir or remove it")
    if not pfile.exists():
        with atomic_path(pfile) as tmp:
            Path(tmp).write_text(params)
    if kind == "features":
        sources = read_dict(data_dir / "feats.scp")
    else:
        from sid.train.audio import read_audio_spans

        sources = read_audio_spans(data_dir)
    num = -(-len(utts) // utts_per_shard)
    mine = range(num) if job == 0 else range(job - 1, num, num_jobs)
    (shard_dir / "shards").mkdir(exist_ok=True)
    todo = [i for i in mine if not (shard_dir / "shards" / shard_name(i)).exists()]
    for i in tqdm(todo, desc="make_shards", unit="shard", disable=not progress or None, mininterval=5):
        _write_shard(shard_dir / "shards" / shard_name(i), kind, utts[i * utts_per_shard:(i + 1) * utts_per_shard],
                     utt2spk, sources)
    if job == 0:
        _write_lists(data_dir, shard_dir, kind, utts, utt2spk, num)
    return len(todo)


def _write_lists(data_dir: Path, shard_dir: Path, kind: str, utts: list[str], utt2spk: dict, num: int) -> None:
    """Index, tables and shard list from the tar headers (no payload is read)."""
    index, lengths = [], {}
    wanted = set(utts)
    for i in range(num):
        path = (shard_dir / "shards" / shard_name(i)).resolve()
        with tarfile.open(path) as tar:
            groups: dict[str, dict[str, tarfile.TarInfo]] = {}
            for m in tar.getmembers():
                key, _, ext = m.name.partition(".")
                groups.setdefault(key, {})[ext] = m
            for key, group in groups.items():
                utt = tar.extractfile(group["utt"]).read().decode() if "utt" in group else key
                payload = next((group[e] for e in PAYLOADS if e in group), None)
                size_member = group.get("frames" if kind == "features" else "dur")
                if payload is None or size_member is None or utt not in wanted:
                    raise SidError(f"{path}: incomplete or foreign entry '{key}'; remove the shard and rerun")
                index.append((utt, f"{path} {payload.name} {payload.offset_data} {payload.size}"))
                lengths[utt] = tar.extractfile(size_member).read().decode()
    missing = wanted - set(lengths)
    if missing:
        raise SidError(f"{shard_dir}: shards lack {len(missing)} utterances, e.g. '{sorted(missing)[0]}'")
    write_table(shard_dir / "index", sorted(index, key=lambda x: x[0].encode()))
    write_table(shard_dir / "utt2spk", [(u, utt2spk[u]) for u in utts])
    spk2utt: dict[str, list[str]] = {}
    for u in utts:
        spk2utt.setdefault(utt2spk[u], []).append(u)
    write_table(shard_dir / "spk2utt", [(s, " ".join(spk2utt[s])) for s in sorted(spk2utt, key=str.encode)])
    write_table(shard_dir / ("utt2num_frames" if kind == "features" else "utt2dur"), [(u, lengths[u]) for u in utts])
    with atomic_path(shard_dir / "kind") as tmp:
        Path(tmp).write_text(kind + "\n")
    with atomic_path(shard_dir / "shard.list") as tmp:
        Path(tmp).write_text("".join(f"{(shard_dir / 'shards' / shard_name(i)).resolve()}\n" for i in range(num)))
    log.info("%s: %d utterances in %d shards", shard_dir, len(utts), num)


def is_shard_dir(path: str | Path) -> bool:
    return (Path(path) / "shard.list").is_file() and (Path(path) / "index").is_file()


@dataclass(frozen=True)
class Member:
    """One tar member's payload: file, byte offset and size."""
    path: str
    offset: int
    size: int
    name: str


class MemberFile(io.RawIOBase):
    """A read-only, seekable view of one member of an open tar, for soundfile and numpy."""

    def __init__(self, member: Member):
        self.m = member
        self.f = open(member.path, "rb")
        self.pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.m.size}[whence]
        self.pos = min(max(0, base + pos), self.m.size)
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, b):
        n = min(len(b), self.m.size - self.pos)
        if n <= 0:
            return 0
        self.f.seek(self.m.offset + self.pos)
        got = self.f.readinto(memoryview(b)[:n])
        self.pos += got
        return got

    def close(self):
        self.f.close()
        super().close()


def read_index(shard_dir: Path) -> dict[str, Member]:
    out = {}
    for utt, value in read_dict(shard_dir / "index").items():
        fields = value.rsplit(" ", 3)
        try:
            out[utt] = Member(fields[0], int(fields[2]), int(fields[3]), fields[1])
        except (ValueError, IndexError):
            raise DataDirError(f"{shard_dir}/index: malformed line for '{utt}'") from None
    return out


class ShardFeatureReader:
    """``reader[utt]``: the feature matrix of ``utt`` from its shard member."""

    def __init__(self, members: dict[str, Member]):
        self.members = members

    def __getitem__(self, utt: str) -> np.ndarray:
        m = self.members[utt]
        with open(m.path, "rb") as f:
            f.seek(m.offset)
            payload = f.read(m.size)
        try:
            return np.load(io.BytesIO(payload))
        except ValueError as err:
            raise DataDirError(f"{m.path}: member {m.name} of utterance '{utt}' is not a matrix: {err}") from None


def shard_order(data_dir: Path, utts: list[str], members: dict[str, Member]) -> list[np.ndarray]:
    """Utterance indices (into ``utts``) of each shard, in shard and member order."""
    pos = {u: i for i, u in enumerate(utts)}
    by_shard: dict[str, list[tuple[int, int]]] = {}
    for u in utts:
        m = members[u]
        by_shard.setdefault(m.path, []).append((m.offset, pos[u]))
    shards = [line for line in (data_dir / "shard.list").read_text().split("\n") if line]
    unknown = set(by_shard) - set(shards)
    if unknown:
        raise DataDirError(f"{data_dir}/index names a shard not in shard.list: {sorted(unknown)[0]}")
    return [np.array([i for _, i in sorted(by_shard[s])], dtype=np.int64) for s in shards if s in by_shard]


def shuffle_buffer(stream: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The order a shuffle buffer of ``size`` items gives ``stream`` (WebDataset's
    ``shuffle``: fill, then each new item replaces a random one, which comes out)."""
    out = np.empty(len(stream), dtype=np.int64)
    buf = list(stream[:size])
    n = 0
    picks = rng.integers(0, max(size, 1), size=max(len(stream) - size, 0))
    for item, k in zip(stream[size:], picks):
        out[n] = buf[k]
        buf[k] = item
        n += 1
    rest = np.array(buf, dtype=np.int64)
    out[n:] = rest[rng.permutation(len(rest))]
    return out
