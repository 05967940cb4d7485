"""sid.data.audio: every supported format, pipes, segments, rates and the errors a user sees."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sid.data.audio import AudioTable, audio_duration, read_audio
from sid.errors import AudioError, DataDirError

SR = 16000


def _signal(seconds=1.0, sr=SR, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture()
def wav16(tmp_path):
    """A 16-bit wav whose integer samples are known exactly."""
    ints = (np.arange(SR) % 2000 - 1000).astype(np.int16) * 7
    path = tmp_path / "a.wav"
    sf.write(path, ints, SR, subtype="PCM_16")
    return path, ints


def _correlation(a, b):
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def test_wav_scaled_like_kaldi(wav16):
    path, ints = wav16
    x, sr = read_audio(str(path))
    assert sr == SR and x.dtype == np.float32 and x.ndim == 1
    np.testing.assert_array_equal(x, ints.astype(np.float32))


def test_wav_chunks_read_as_the_wave_module_reads_them(tmp_path):
    """16-bit PCM wavs are read from their RIFF chunks directly: the samples libsndfile reads, with
    an odd-sized chunk before the data, two channels, a segment, a truncated file, and 24-bit or
    float files left to libsndfile."""
    import struct

    rng = np.random.default_rng(0)
    ints = rng.integers(-32768, 32768, (3000, 2)).astype(np.int16)

    def wav(path, fmt=(1, 2, SR, 16), extra=b"", data=ints.tobytes(), declared=None):
        tag, channels, sr, bits = fmt
        body = (b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, tag, channels, sr, sr * channels * bits // 8,
                                                  channels * bits // 8, bits) + extra
                + b"data" + struct.pack("<I", len(data) if declared is None else declared) + data)
        path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
        return str(path)

    odd = b"LIST" + struct.pack("<I", 5) + b"abcde\0"  # padded to an even size
    path = wav(tmp_path / "a.wav", extra=odd)
    x, sr = read_audio(path)
    assert sr == SR
    np.testing.assert_array_equal(x, ints[:, 0].astype(np.float32))
    np.testing.assert_array_equal(x, sf.read(path, dtype="int16")[0][:, 0])
    seg, _ = read_audio(path, start=0.05, end=0.1)
    np.testing.assert_array_equal(seg, ints[800:1600, 0].astype(np.float32))
    cut = wav(tmp_path / "cut.wav", data=ints.tobytes()[:4001], declared=len(ints.tobytes()))
    np.testing.assert_array_equal(read_audio(cut)[0], ints[:1000, 0].astype(np.float32))
    for name, subtype in (("p24.wav", "PCM_24"), ("f32.wav", "FLOAT")):
        sf.write(tmp_path / name, ints[:, 0].astype(np.float32) / 32768, SR, subtype=subtype)
        np.testing.assert_allclose(read_audio(str(tmp_path / name))[0], ints[:, 0], atol=0.01)


@pytest.mark.parametrize("fmt,subtype,ext", [("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "opus")])
def test_soundfile_formats(tmp_path, fmt, subtype, ext):
    sig = _signal()
    path = tmp_path / f"a.{ext}"
    sf.write(path, sig, SR, format=fmt, subtype=subtype)
    x, sr = read_audio(str(path), utt="u1")
    assert sr == SR and x.dtype == np.float32
    assert abs(len(x) - len(sig)) < 0.05 * SR
    if subtype == "PCM_16":
        np.testing.assert_allclose(x, np.round(sig * 32768), atol=1)
    else:  # lossy codecs: same waveform (up to codec delay), right scale
        rms = np.sqrt(np.mean(x[SR // 4:-SR // 4] ** 2))
        assert abs(rms - 0.5 / np.sqrt(2) * 32768) < 0.1 * 16384


def _encode_pyav(path, codec, sig, sr=SR):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        try:
            stream = out.add_stream(codec, rate=sr)
        except Exception as err:  # the wheel's FFmpeg may lack an encoder
            pytest.skip(f"PyAV has no {codec} encoder: {err}")
        stream.layout = "mono"
        frame_len = 1024
        for i in range(0, len(sig), frame_len):
            chunk = sig[i:i + frame_len]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.parametrize("codec,ext", [("aac", "m4a"), ("libmp3lame", "mp3")])
def test_pyav_formats(tmp_path, codec, ext):
    sig = _signal()
    path = tmp_path / f"a.{ext}"
    _encode_pyav(path, codec, sig)
    x, sr = read_audio(str(path), utt="u1", sample_rate=SR)
    assert sr == SR and x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - len(sig)) < 0.15 * SR  # encoder priming/padding
    rms = np.sqrt(np.mean(x[SR // 4:-SR // 4] ** 2))
    assert abs(rms - 0.5 / np.sqrt(2) * 32768) < 0.1 * 16384
    # Decoded waveform matches the source once aligned by the codec delay.
    best = max(_correlation(x[d:], sig * 32768) for d in range(0, 3000, 1))
    assert best > 0.95


def test_m4a_segment(tmp_path):
    sig = _signal(2.0)
    path = tmp_path / "a.m4a"
    _encode_pyav(path, "aac", sig)
    full, _ = read_audio(str(path))
    part, _ = read_audio(str(path), start=0.5, end=1.0)
    np.testing.assert_array_equal(part, full[8000:16000])


def test_pipes(wav16):
    path, ints = wav16
    x, sr = read_audio(f"cat {path} |")
    np.testing.assert_array_equal(x, ints.astype(np.float32))
    py = (f"{sys.executable} -c \"import io,sys,numpy as np,soundfile as sf; b=io.BytesIO(); "
          f"sf.write(b, np.full(800, 100, np.int16), 8000, format='WAV', subtype='PCM_16'); "
          f"sys.stdout.buffer.write(b.getvalue())\" |")
    y, sr = read_audio(py)
    assert sr == 8000 and len(y) == 800 and np.all(y == 100)
    # Streamed wav headers (sox, ffmpeg to a pipe) give the data size as 0 or 0xFFFFFFFF: read to the end.
    raw = bytearray(path.read_bytes())
    for size in (b"\xff\xff\xff\xff", b"\0\0\0\0"):
        raw[4:8] = raw[40:44] = size
        streamed = path.parent / "streamed.wav"
        streamed.write_bytes(bytes(raw))
        y, _ = read_audio(f"cat {streamed} |")
        np.testing.assert_array_equal(y, ints.astype(np.float32))
    # A pipe through another tool, as Kaldi recipes write them.
    z, _ = read_audio(f"cat {path} | cat |", start=0.25, end=0.5)
    np.testing.assert_array_equal(z, ints[4000:8000].astype(np.float32))


def test_pipe_failure_names_utterance():
    with pytest.raises(AudioError, match=r"utt7.*status 3.*boom"):
        read_audio("echo boom >&2; exit 3 |", utt="utt7")
    with pytest.raises(AudioError, match="utt7.*no data"):
        read_audio("true |", utt="utt7")


def test_segments_kaldi_rules(wav16):
    path, ints = wav16
    x, _ = read_audio(str(path), start=0.1, end=0.2)
    np.testing.assert_array_equal(x, ints[1600:3200])
    x, _ = read_audio(str(path), start=0.5, end=-1)  # end <= 0: to the end
    np.testing.assert_array_equal(x, ints[8000:])
    x, _ = read_audio(str(path), start=0.9, end=1.3)  # overshoot within 0.5 s is clipped
    np.testing.assert_array_equal(x, ints[14400:])
    with pytest.raises(AudioError, match="past the recording"):
        read_audio(str(path), utt="s1", start=0.5, end=2.0)
    with pytest.raises(AudioError, match="s1.*past the recording"):
        read_audio(str(path), utt="s1", start=1.5, end=1.7)
    with pytest.raises(AudioError, match="not after its start"):
        read_audio(str(path), utt="s1", start=0.5, end=0.4)


def test_errors_name_utterance_and_path(tmp_path, wav16):
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match=rf"'u9'.*{missing}.*no such file"):
        read_audio(str(missing), utt="u9")
    garbage = tmp_path / "bad.wav"
    garbage.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match=rf"'u9'.*{garbage}.*cannot read"):
        read_audio(str(garbage), utt="u9")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.int16), SR, subtype="PCM_16")
    with pytest.raises(AudioError, match=rf"'u9'.*{empty}.*empty"):
        read_audio(str(empty), utt="u9")
    zero_bytes = tmp_path / "zero.flac"
    zero_bytes.write_bytes(b"")
    with pytest.raises(AudioError, match="u9"):
        read_audio(str(zero_bytes), utt="u9")


def test_sample_rate_mismatch_and_resample(wav16):
    path, ints = wav16
    with pytest.raises(AudioError, match=r"'u1'.*16000 Hz, expected 8000 Hz"):
        read_audio(str(path), utt="u1", sample_rate=8000)
    x, sr = read_audio(str(path), utt="u1", sample_rate=8000, resample=True)
    assert sr == 8000 and len(x) == len(ints) // 2 and x.dtype == np.float32
    y, _ = read_audio(str(path), sample_rate=SR, resample=True)  # same rate: untouched
    np.testing.assert_array_equal(y, ints.astype(np.float32))


def test_resample_keeps_waveform(tmp_path):
    path = tmp_path / "b.wav"
    sf.write(path, _signal(1.0, 8000, 200.0), 8000, subtype="PCM_16")
    x, sr = read_audio(str(path), sample_rate=SR, resample=True)
    assert sr == SR and len(x) == SR
    assert _correlation(x[100:-100], _signal(1.0, SR, 200.0)[100:-100] * 32768) > 0.999


def test_stereo_takes_channel_zero(tmp_path):
    left = np.full(1000, 1000, np.int16)
    right = np.full(1000, -5, np.int16)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], 1), SR, subtype="PCM_16")
    x, _ = read_audio(str(path))
    assert np.all(x == 1000)


def _data_dir(tmp_path, wav16):
    path, ints = wav16
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"rec1 {path}\nrec2 cat {path} |\nrec3 {tmp_path}/missing.wav\n")
    return d, ints


def test_audio_table_whole_recordings(tmp_path, wav16):
    d, ints = _data_dir(tmp_path, wav16)
    table = AudioTable(d, sample_rate=SR)
    assert table.keys() == ["rec1", "rec2", "rec3"] and len(table) == 3
    x, sr = table.read("rec2")
    np.testing.assert_array_equal(x, ints.astype(np.float32))
    seen = []
    with pytest.raises(AudioError, match="rec3.*missing.wav"):
        for utt, samples, sr in table:
            seen.append(utt)
            assert sr == SR and len(samples) == len(ints)
    assert seen == ["rec1", "rec2"]
    # A bare wav.scp works too, and a wrong rate is caught per utterance.
    with pytest.raises(AudioError, match="rec1.*expected 8000"):
        AudioTable(d / "wav.scp", sample_rate=8000).read("rec1")


def test_audio_table_segments(tmp_path, wav16):
    d, ints = _data_dir(tmp_path, wav16)
    (d / "segments").write_text("s1 rec1 0.0 0.25\ns2 rec2 0.25 0.5\ns3 rec2 0.5 -1\n")
    table = AudioTable(d)
    assert table.keys() == ["s1", "s2", "s3"]
    got = {utt: x for utt, x, _ in table}
    np.testing.assert_array_equal(got["s1"], ints[:4000])
    np.testing.assert_array_equal(got["s2"], ints[4000:8000])
    np.testing.assert_array_equal(got["s3"], ints[8000:])
    np.testing.assert_array_equal(table.read("s2")[0], got["s2"])
    assert table.spec("s2").startswith("cat ")


def test_audio_table_bad_files(tmp_path, wav16):
    d, _ = _data_dir(tmp_path, wav16)
    (d / "segments").write_text("s1 recX 0.0 0.25\n")
    with pytest.raises(DataDirError, match=r"segments:1: recording 'recX'"):
        AudioTable(d)
    (d / "segments").write_text("s1 rec1 0.0\n")
    with pytest.raises(DataDirError, match=r"segments:1: expected"):
        AudioTable(d)
    (d / "segments").unlink()
    (d / "wav.scp").write_text("rec1 a.wav\nrec1 b.wav\n")
    with pytest.raises(DataDirError, match=r"wav.scp:2: duplicate"):
        AudioTable(d)
    with pytest.raises(DataDirError, match="no such file"):
        AudioTable(tmp_path / "nowhere")


def test_real_corpus_opus(corpus, tmp_path):
    """The shared corpus is 16 kHz Ogg/Opus; tab or space separated wav.scp both work."""
    lines = (corpus / "train" / "wav.scp").read_text().splitlines()[:3]
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"{k}\t{corpus / v}\n" for k, v in (ln.split(None, 1) for ln in lines)))
    table = AudioTable(scp, sample_rate=16000)
    for utt, x, sr in table:
        assert sr == 16000 and len(x) > 8000
        assert 100 < np.abs(x).max() <= 32768
        # Header duration and decoded length agree.
        assert len(x) == sf.info(table.spec(utt)).frames


def test_audio_duration_headers_and_decoding(tmp_path, wav16):
    path, ints = wav16
    assert audio_duration(str(path)) == 1.0
    assert audio_duration(f"cat {path} |") == 1.0
    assert audio_duration(str(path), read_entire_file=True) == 1.0
    opus = tmp_path / "a.opus"
    sf.write(opus, _signal(1.5), SR, format="OGG", subtype="OPUS")
    assert audio_duration(str(opus)) == pytest.approx(1.5, abs=0.01)
    m4a = tmp_path / "a.m4a"
    _encode_pyav(m4a, "aac", _signal(2.0))
    header = audio_duration(str(m4a))
    decoded = audio_duration(str(m4a), read_entire_file=True)
    # AAC adds encoder priming/padding frames (1024 samples each) that a muxer may not trim.
    assert header == pytest.approx(2.0, abs=0.15) and decoded == pytest.approx(2.0, abs=0.15)
    with pytest.raises(AudioError, match="'u3'.*no such file"):
        audio_duration(str(tmp_path / "none.wav"), utt="u3")
    (tmp_path / "junk.wav").write_bytes(b"junk" * 100)
    with pytest.raises(AudioError, match="'u3'.*cannot read"):
        audio_duration(str(tmp_path / "junk.wav"), utt="u3")


def test_audio_table_segments_resampled(tmp_path):
    path = tmp_path / "r8k.wav"
    sf.write(path, np.full(8000, 50, np.int16), 8000, subtype="PCM_16")
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(f"r {path}\n")
    (d / "segments").write_text("a r 0 0.5\nb r 0.5 -1\n")
    with pytest.raises(AudioError, match="'a'.*8000 Hz, expected 16000"):
        next(iter(AudioTable(d, sample_rate=16000)))
    got = {u: (x, sr) for u, x, sr in AudioTable(d, sample_rate=16000, resample=True)}
    assert [len(got[u][0]) for u in "ab"] == [8000, 8000] and {sr for _, sr in got.values()} == {16000}
    np.testing.assert_allclose(got["a"][0][100:-100], 50, atol=0.5)


def test_truncated_wav_and_short_pipe_warn_like_kaldi(tmp_path, wav16, caplog, sid_env):
    """A wav (file or pipe) with less data than its header promises: the samples there are,
    and Kaldi's WaveData warning naming the utterance; a complete one does not warn."""
    path, ints = wav16
    data = path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:44 + 2 * 5000 + 1])  # an odd byte count: the half sample is dropped
    for spec in (str(cut), f"head -c {44 + 2 * 5000 + 1} {path} |"):
        caplog.clear()
        x, _ = read_audio(spec, utt="u1")
        np.testing.assert_array_equal(x, ints[:5000].astype(np.float32))
        assert f"utterance 'u1' ({spec}): Expected {2 * SR} bytes of wave data, but read only 10001 bytes. " \
               "Truncated file?" in caplog.text
    caplog.clear()
    read_audio(str(path), utt="u2")
    read_audio(f"cat {path} |", utt="u2")
    assert "Truncated" not in caplog.text
    # Through a feature tool: the warning, the features of what there is, exit status 0.
    (tmp_path / "wav.scp").write_text(f"u1 {cut}\n")
    proc = subprocess.run([sys.executable, "-m", "sid.bin.compute_fbank_feats", f"scp:{tmp_path / 'wav.scp'}",
                           f"ark:{tmp_path / 'feats.ark'}"], env=sid_env, capture_output=True, text=True)
    assert proc.returncode == 0 and "Truncated file?" in proc.stderr and "Traceback" not in proc.stderr
