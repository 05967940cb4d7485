"""Reading the audio a ``wav.scp`` line names, the way Kaldi's feature binaries see it.

A ``wav.scp`` value is one of
  * a file path: wav/flac/ogg/opus (and anything else libsndfile knows) through
    soundfile; m4a/aac/mp3/mp4 through PyAV (its bundled FFmpeg, no system ffmpeg);
  * a Kaldi pipe ``cmd |``: the command is run by bash and its stdout must hold a
    complete audio file (normally wav);
  * ``-``: the same, read from stdin.

Samples come back as float32, mono, scaled like Kaldi (int16 range, so a full-scale
16-bit wav reads back as its integer values). A multi-channel file gives channel 0
with a warning, as Kaldi's ``--channel=-1`` default does.

``segments`` (``<utt> <recording> <start> <end>`` in seconds) is honoured by
``AudioTable`` and by ``read_audio(start=, end=)`` with Kaldi's extract-segments
rules: samples ``[int(start*sr), int(end*sr))``, ``end <= 0`` means the end of the
recording, and an end past the recording by up to ``MAX_OVERSHOOT`` seconds is clipped.
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from sid.errors import AudioError, DataDirError

log = logging.getLogger(__name__)

# Extensions libsndfile cannot decode; they go straight to PyAV.
PYAV_EXTENSIONS = {".m4a", ".aac", ".mp4", ".mp3", ".webm", ".mkv", ".wma"}
# Kaldi extract-segments --max-overshoot default: a segment ending this far past
# the recording is clipped; further is an error.
MAX_OVERSHOOT = 0.5
INT16_SCALE = 32768.0


def _where(utt: str, spec: str) -> str:
    return f"utterance '{utt}' ({spec})" if utt else f"'{spec}'"


def _is_pipe(spec: str) -> bool:
    return spec.rstrip().endswith("|")


def _run_pipe(spec: str, utt: str) -> bytes:
    cmd = spec.rstrip()[:-1].strip()
    proc = subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        tail = f": {err[-1]}" if err else ""
        raise AudioError(f"{_where(utt, spec)}: command exited with status {proc.returncode}{tail}")
    return proc.stdout


def _wav_data_promise(head: bytes) -> tuple[int, int] | None:
    """``(data bytes the header promises, offset of the data)`` of a RIFF/WAVE header, or None
    when it is not one, is streamed (size 0 or 0xFFFFFFFF: read to the end) or ``head`` ends
    before the data chunk."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos + 4:pos + 8], "little")
        if head[pos:pos + 4] == b"data":
            return None if size in (0, 0xFFFFFFFF) else (size, pos + 8)
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return None


def _warn_if_truncated(head: bytes, length: int, utt: str, spec: str) -> None:
    """Kaldi's WaveData reads what a truncated wav holds and warns; so do we, naming the utterance."""
    promise = _wav_data_promise(head)
    if promise is not None and 0 < length - promise[1] < promise[0]:
        log.warning("%s: Expected %d bytes of wave data, but read only %d bytes. Truncated file?",
                    _where(utt, spec), promise[0], length - promise[1])


def _channel0(data: np.ndarray, utt: str, spec: str) -> np.ndarray:
    """``data`` is ``[samples, channels]``; Kaldi's default takes channel 0."""
    if data.ndim == 2:
        if data.shape[1] > 1:
            log.warning("%s has %d channels; using channel 0", _where(utt, spec), data.shape[1])
        data = data[:, 0]
    return data


def _read_soundfile(source, utt: str, spec: str, start: float, end: float | None):
    import soundfile as sf

    with sf.SoundFile(source) as f:
        sr = f.samplerate
        first, last = _segment_bounds(f.frames, sr, start, end, utt, spec)
        if first:
            f.seek(first)
        if f.subtype == "PCM_16":
            # 16-bit files (most corpora) read as integers: 3x faster than libsndfile's floats.
            data = f.read(last - first, dtype="int16", always_2d=True)
            return _channel0(data, utt, spec), sr
        data = f.read(last - first, dtype="float32", always_2d=True)
    return _channel0(data, utt, spec), sr


def _read_wav16(data, utt: str, spec: str, start: float, end: float | None):
    """The int16 samples of a 16-bit PCM wav (``data``: its bytes, or a memory map of them) found
    by reading its RIFF chunks as the standard library's ``wave`` does, or None for any other
    file, left to libsndfile. Python's ``wave`` took a quarter of a millisecond a file in
    small reads, as much as computing an hour of 4 s files' features costs per file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    fmt = None
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = pos + 8
        if kind == b"fmt ":
            if size < 16 or body + 16 > len(data):
                return None
            tag, channels, sr, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (tag, channels, sr, bits)
        elif kind == b"data":
            if fmt is None or fmt[0] != 1 or fmt[3] != 16 or fmt[1] < 1:  # PCM, 16-bit, after fmt
                return None
            channels, sr = fmt[1], fmt[2]
            frame_bytes = 2 * channels
            first, last = _segment_bounds(size // frame_bytes, sr, start, end, utt, spec)
            raw = data[body + first * frame_bytes:body + last * frame_bytes]  # short if the file is
            whole = len(raw) - len(raw) % frame_bytes  # a truncated file may end inside a frame
            samples = np.frombuffer(raw, dtype="<i2", count=whole // 2).reshape(-1, channels)
            return _channel0(samples, utt, spec), sr
        pos = body + size + (size & 1)  # chunks are padded to an even size
    return None


def _read_pyav(source, utt: str, spec: str):
    import av

    with av.open(source) as container:
        streams = container.streams.audio
        if not streams:
            raise AudioError(f"{_where(utt, spec)}: no audio stream")
        stream = streams[0]
        # Planar float whatever the codec decodes to (row 0 is channel 0), at one rate
        # even if the stream changes it midway; the layout is kept.
        sr = stream.rate or None
        resampler = av.AudioResampler(format="fltp", rate=sr)
        chunks = []
        channels = 1
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                arr = out.to_ndarray()
                channels = arr.shape[0]
                sr = sr or out.sample_rate
                chunks.append(arr[0])
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray()[0])
    if channels > 1:
        log.warning("%s has %d channels; using channel 0", _where(utt, spec), channels)
    data = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return data, sr


def _segment_bounds(num_samples: int, sr: int, start: float, end: float | None, utt: str, spec: str) -> tuple[int, int]:
    """Sample range of ``[start, end)`` seconds by extract-segments' rules."""
    if num_samples == 0:
        return 0, 0  # reported as empty audio by the caller
    first = int(start * sr)
    if start < 0:
        raise AudioError(f"{_where(utt, spec)}: negative segment start {start}")
    if end is None or end <= 0:
        last = num_samples
    else:
        if end <= start:
            raise AudioError(f"{_where(utt, spec)}: segment end {end} is not after its start {start}")
        last = int(end * sr)
        if last > num_samples:
            if (last - num_samples) / sr > MAX_OVERSHOOT:
                raise AudioError(f"{_where(utt, spec)}: segment end {end}s is past the recording's "
                                 f"{num_samples / sr:.3f}s by more than {MAX_OVERSHOOT}s")
            last = num_samples
    if num_samples and first >= num_samples:
        raise AudioError(f"{_where(utt, spec)}: segment start {start}s is past the recording's {num_samples / sr:.3f}s")
    return first, last


def _decode(spec: str, utt: str, start: float, end: float | None) -> tuple[np.ndarray, int]:
    """Decoded channel-0 samples (float in [-1, 1), or int16 as 16-bit files hold them) and the
    file's sample rate."""
    import soundfile as sf

    if _is_pipe(spec) or spec.strip() == "-":
        payload = _run_pipe(spec, utt) if _is_pipe(spec) else sys.stdin.buffer.read()
        if not payload:
            raise AudioError(f"{_where(utt, spec)}: produced no data")
        _warn_if_truncated(payload[:65536], len(payload), utt, spec)
        try:
            data, sr = _read_soundfile(io.BytesIO(payload), utt, spec, 0.0, None)
        except sf.LibsndfileError:
            data = np.zeros(0, np.float32)
        if data.size == 0:
            # Streamed wav headers may give a data size of 0 (meaning: to the end),
            # which libsndfile takes literally; FFmpeg reads to the end like Kaldi.
            data, sr = _read_pyav(io.BytesIO(payload), utt, spec)
    else:
        path = spec.strip()
        if not os.path.isfile(path):
            raise AudioError(f"{_where(utt, spec)}: no such file")
        if os.path.splitext(path)[1].lower() in PYAV_EXTENSIONS:
            data, sr = _read_pyav(path, utt, spec)
        else:
            with open(path, "rb") as f:
                length = os.fstat(f.fileno()).st_size
                if path.lower().endswith(".wav") and length:
                    # Mapped: a segment of a long recording reads only its own pages.
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as wav:
                        _warn_if_truncated(wav[:65536], length, utt, spec)
                        found = _read_wav16(wav, utt, spec, start, end)
                    if found is not None:
                        return found
                else:
                    _warn_if_truncated(f.read(65536), length, utt, spec)
            try:
                return _read_soundfile(path, utt, spec, start, end)
            except sf.LibsndfileError as err:
                # An unusual container libsndfile does not know may still decode through FFmpeg.
                try:
                    data, sr = _read_pyav(path, utt, spec)
                except Exception:
                    raise AudioError(f"{_where(utt, spec)}: cannot read audio: {err}") from None
    first, last = _segment_bounds(len(data), sr, start, end, utt, spec)
    return data[first:last], sr


def _decode_checked(spec: str, utt: str, start: float, end: float | None) -> tuple[np.ndarray, int]:
    try:
        data, sr = _decode(spec, utt, start, end)
    except AudioError:
        raise
    except Exception as err:  # decoders raise many types; the user needs the utterance and path
        msg = str(err).strip() or type(err).__name__
        raise AudioError(f"{_where(utt, spec)}: cannot read audio: {msg}") from None
    return data, sr


def _finish(data: np.ndarray, sr: int, utt: str, spec: str, sample_rate: int | None, resample: bool):
    """Check emptiness and rate, resample if asked, scale to the int16 range."""
    if data.size == 0:
        raise AudioError(f"{_where(utt, spec)}: audio is empty")
    if data.dtype == np.int16:
        if sample_rate is None or sr == sample_rate:
            return data.astype(np.float32), sr  # already the int16 range
        data = data * np.float32(1.0 / INT16_SCALE)
    if sample_rate is not None and sr != sample_rate:
        if not resample:
            raise AudioError(f"{_where(utt, spec)}: sample rate {sr} Hz, expected {sample_rate} Hz "
                             "(resample the audio, or ask for resampling)")
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sample_rate, sr)
        data = resample_poly(data, sample_rate // g, sr // g)
        sr = sample_rate
    return np.ascontiguousarray(data * INT16_SCALE, dtype=np.float32), sr


def read_audio(spec: str, *, utt: str = "", sample_rate: int | None = None, resample: bool = False,
               start: float = 0.0, end: float | None = None) -> tuple[np.ndarray, int]:
    """Samples (float32, mono, int16 range) and sample rate of a ``wav.scp`` value.

    ``sample_rate``: the rate the caller needs; another rate is an error naming the
    utterance unless ``resample`` (polyphase resampling to ``sample_rate``).
    ``start``/``end``: seconds, for ``segments``. Errors name ``utt`` and ``spec``.
    """
    data, sr = _decode_checked(spec, utt, start, end)
    return _finish(data, sr, utt, spec, sample_rate, resample)


def _read_kv(path: Path) -> list[tuple[int, str, str]]:
    """``(lineno, key, value)`` with Kaldi's whitespace splitting (spaces or tabs)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split(None, 1)
            if not parts:
                raise DataDirError(f"{path}:{lineno}: empty line")
            out.append((lineno, parts[0], parts[1].strip() if len(parts) > 1 else ""))
    return out


class AudioTable:
    """The utterances of a data dir (or a bare ``wav.scp``) and their audio.

    With a ``segments`` file beside ``wav.scp`` the utterances are its segments.
    Audio is decoded only when an utterance is read, so one bad file raises
    ``AudioError`` for that utterance alone::

        for utt, samples, sr in AudioTable("data/train", sample_rate=16000):
            ...
    """

    def __init__(self, data_dir_or_wav_scp: str | os.PathLike, *, sample_rate: int | None = None, resample: bool = False):
        path = Path(data_dir_or_wav_scp)
        wav_scp = path / "wav.scp" if path.is_dir() else path
        if not wav_scp.is_file():
            raise DataDirError(f"{wav_scp}: no such file")
        self.sample_rate = sample_rate
        self.resample = resample
        self._wav: dict[str, str] = {}
        for lineno, key, value in _read_kv(wav_scp):
            if not value:
                raise DataDirError(f"{wav_scp}:{lineno}: recording '{key}' has no audio path")
            if key in self._wav:
                raise DataDirError(f"{wav_scp}:{lineno}: duplicate recording id '{key}'")
            self._wav[key] = value
        self._segments: dict[str, tuple[str, float, float]] | None = None
        seg_file = path / "segments" if path.is_dir() else None
        if seg_file is not None and seg_file.is_file():
            self._segments = {}
            for lineno, key, value in _read_kv(seg_file):
                fields = value.split()
                try:
                    if len(fields) != 3:
                        raise ValueError
                    rec, start, end = fields[0], float(fields[1]), float(fields[2])
                except ValueError:
                    raise DataDirError(f"{seg_file}:{lineno}: expected '<utt> <recording> <start> <end>'") from None
                if rec not in self._wav:
                    raise DataDirError(f"{seg_file}:{lineno}: recording '{rec}' of '{key}' is not in {wav_scp}")
                if key in self._segments:
                    raise DataDirError(f"{seg_file}:{lineno}: duplicate utterance id '{key}'")
                self._segments[key] = (rec, start, end)
        # One decoded recording kept while iterating, so many segments of one
        # long (or piped) recording decode it once.
        self._cache: tuple[str, np.ndarray, int] | None = None

    def keys(self) -> list[str]:
        return list(self._segments if self._segments is not None else self._wav)

    def __len__(self) -> int:
        return len(self._segments if self._segments is not None else self._wav)

    def __contains__(self, utt: str) -> bool:
        return utt in (self._segments if self._segments is not None else self._wav)

    def spec(self, utt: str) -> str:
        """The ``wav.scp`` value behind ``utt``."""
        rec = self._segments[utt][0] if self._segments is not None else utt
        return self._wav[rec]

    def read(self, utt: str) -> tuple[np.ndarray, int]:
        kw = dict(sample_rate=self.sample_rate, resample=self.resample)
        if self._segments is None:
            if utt not in self._wav:
                raise AudioError(f"utterance '{utt}' is not in the table")
            return read_audio(self._wav[utt], utt=utt, **kw)
        if utt not in self._segments:
            raise AudioError(f"utterance '{utt}' is not in segments")
        rec, start, end = self._segments[utt]
        return read_audio(self._wav[rec], utt=utt, start=start, end=end, **kw)

    def _read_segment_cached(self, utt: str) -> tuple[np.ndarray, int]:
        rec, start, end = self._segments[utt]
        spec = self._wav[rec]
        if self._cache is None or self._cache[0] != rec:
            self._cache = None
            full, sr = _decode_checked(spec, utt, 0.0, None)
            self._cache = (rec, full, sr)
        _, full, sr = self._cache
        first, last = _segment_bounds(len(full), sr, start, end, utt, spec)
        return _finish(full[first:last], sr, utt, spec, self.sample_rate, self.resample)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, int]]:
        for utt in self.keys():
            if self._segments is None:
                samples, sr = self.read(utt)
            else:
                samples, sr = self._read_segment_cached(utt)
            yield utt, samples, sr
        self._cache = None


def audio_duration(spec: str, *, utt: str = "", read_entire_file: bool = False) -> float:
    """Duration in seconds of a ``wav.scp`` value, from the header where the format allows.

    wav/flac/ogg/opus: soundfile's frame count; m4a/aac/mp3: the container's or
    stream's duration. Pipes, headers without a length, and ``read_entire_file``
    decode the audio.
    """
    path = spec.strip()
    if not read_entire_file and not _is_pipe(spec) and path != "-":
        if not os.path.isfile(path):
            raise AudioError(f"{_where(utt, spec)}: no such file")
        try:
            if os.path.splitext(path)[1].lower() in PYAV_EXTENSIONS:
                import av

                with av.open(path) as container:
                    if not container.streams.audio:
                        raise AudioError(f"{_where(utt, spec)}: no audio stream")
                    stream = container.streams.audio[0]
                    if stream.duration is not None and stream.time_base is not None:
                        seconds = float(stream.duration * stream.time_base)
                    elif container.duration is not None:
                        seconds = container.duration / 1e6  # av.time_base: microseconds
                    else:
                        seconds = 0.0
            else:
                import soundfile as sf

                info = sf.info(path)
                seconds = info.frames / info.samplerate if 0 < info.frames < 2**62 else 0.0
        except AudioError:
            raise
        except Exception:
            seconds = 0.0  # no usable header: decode below, which names the problem if there is one
        if seconds > 0:
            return seconds
    data, sr = _decode_checked(spec, utt, 0.0, None)
    if data.size == 0:
        raise AudioError(f"{_where(utt, spec)}: audio is empty")
    return len(data) / sr
