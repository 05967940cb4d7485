"""Unit tests of sid.features: framing, fbank/MFCC against kaldi-native-fbank (an
independent implementation of Kaldi's numerics), VAD and sliding CMN against
straightforward per-frame transcriptions of Kaldi's loops, table writers, tools."""

import subprocess
import sys

import kaldi_native_fbank as knf
import kaldiio
import numpy as np
import pytest
import soundfile as sf

from sid.errors import SidError
from sid.features.cmvn import apply_cmvn_sliding
from sid.features.compute import Fbank, Mfcc
from sid.features.options import FbankOptions, FrameExtractionOptions, MfccOptions, VadEnergyOptions
from sid.features.vad import compute_vad, select_voiced_frames
from sid.features.window import num_frames, reflected_signal


def _signal(seconds=1.3, seed=0, sr=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 3000 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 300 * rng.standard_normal(len(t))
    return np.round(x).astype(np.float32)


def test_num_frames_both_edge_modes():
    o = FrameExtractionOptions()
    assert num_frames(399, o) == 0 and num_frames(400, o) == 1 and num_frames(16000, o) == 98
    o.snip_edges = False
    assert num_frames(79, o) == 0 and num_frames(80, o) == 1 and num_frames(16000, o) == 100


def test_reflection_matches_kaldi_rule_even_for_tiny_signals():
    o = FrameExtractionOptions(snip_edges=False)
    x = np.arange(100, dtype=np.float32)  # one frame centred at 80, 400 samples wide
    sig, start = reflected_signal(x, o, 1)
    assert start == 80 - 200 and len(sig) == 400
    expect = []
    for s in range(start, start + 400):
        while s < 0 or s >= 100:
            s = -s - 1 if s < 0 else 2 * 100 - 1 - s
        expect.append(s)
    np.testing.assert_array_equal(sig, np.array(expect, dtype=np.float32))


def _knf(kind, sets, x):
    opts = knf.FbankOptions() if kind == "fbank" else knf.MfccOptions()
    for key, value in sets.items():
        target = opts
        *path, name = key.split(".")
        for p in path:
            target = getattr(target, p)
        setattr(target, name, value)
    comp = knf.OnlineFbank(opts) if kind == "fbank" else knf.OnlineMfcc(opts)
    comp.accept_waveform(16000, x.tolist())
    comp.input_finished()
    return np.stack([comp.get_frame(i) for i in range(comp.num_frames_ready)])


# (our options, the same for kaldi-native-fbank); snip-edges=true where knf's online
# framing and Kaldi's offline framing agree.
CASES = [
    ("fbank", {"mel_opts.num_bins": 80}),
    ("fbank", {"mel_opts.num_bins": 40, "use_energy": True, "mel_opts.high_freq": -400.0, "mel_opts.low_freq": 60.0}),
    ("fbank", {"mel_opts.num_bins": 23, "use_energy": True, "raw_energy": False, "energy_floor": 1.0,
               "frame_opts.window_type": "hamming", "frame_opts.preemph_coeff": 0.0}),
    ("fbank", {"mel_opts.num_bins": 30, "use_power": False, "frame_opts.remove_dc_offset": False,
               "frame_opts.round_to_power_of_two": False, "frame_opts.window_type": "hanning"}),
    ("fbank", {"mel_opts.num_bins": 24, "use_log_fbank": False, "frame_opts.window_type": "blackman",
               "frame_opts.frame_length_ms": 32.0, "frame_opts.frame_shift_ms": 12.5}),
    ("mfcc", {}),
    ("mfcc", {"mel_opts.num_bins": 30, "num_ceps": 30, "mel_opts.low_freq": 20.0, "mel_opts.high_freq": 7600.0}),
    ("mfcc", {"use_energy": False, "cepstral_lifter": 0.0, "frame_opts.window_type": "rectangular"}),
]


@pytest.mark.parametrize("kind,sets", CASES)
def test_matches_kaldi_native_fbank(kind, sets):
    x = _signal()
    x[4000:6000] = 0.0  # digital silence exercises the epsilon floors
    ours = FbankOptions() if kind == "fbank" else MfccOptions()
    ours.frame_opts.dither = 0.0
    for key, value in sets.items():
        target = ours
        *path, name = key.split(".")
        for p in path:
            target = getattr(target, p)
        setattr(target, name, value)
    ours.check()
    feats = (Fbank if kind == "fbank" else Mfcc)(ours).compute(x, "u")
    ref = _knf(kind, {"frame_opts.dither": 0.0, **sets}, x)
    assert feats.shape == ref.shape and feats.dtype == np.float32
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=2e-3)


def test_snip_edges_false_frames_are_centred_on_the_shift():
    x = _signal()
    a = FbankOptions(); a.frame_opts.dither = 0.0
    b = FbankOptions(); b.frame_opts.dither = 0.0; b.frame_opts.snip_edges = False
    fb = Fbank(b).compute(x)
    assert fb.shape[0] == num_frames(len(x), b.frame_opts) == len(x) // 160
    # Unsnipped frame t starts at 160 t + 80 - 200 = 160 t - 120: the snipped frame t of x
    # delayed by 120 samples, wherever it lies inside the signal (t >= 1).
    fy = Fbank(a).compute(np.concatenate([np.zeros(120, np.float32), x]))
    np.testing.assert_allclose(fb[1:100], fy[1:100], atol=1e-3)


def test_dither_is_seeded_per_utterance():
    x = _signal(0.5)
    o = FbankOptions()  # Kaldi's default dither 1.0
    f = Fbank(o)
    a1, a2, b = f.compute(x, "utt-a"), f.compute(x, "utt-a"), f.compute(x, "utt-b")
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, b)
    o0 = FbankOptions(); o0.frame_opts.dither = 0.0
    assert np.abs(Fbank(o0).compute(x) - a1).max() > 1e-4


def test_bad_mel_options_are_clear_errors():
    o = FbankOptions(); o.mel_opts.high_freq = 9000.0
    with pytest.raises(SidError, match="high-freq"):
        Fbank(o)
    o = MfccOptions(); o.num_ceps = 40
    with pytest.raises(SidError, match="num-ceps"):
        o.check()


def _vad_loop(feats, o):
    """Kaldi's ComputeVadEnergy, frame by frame."""
    e = feats[:, 0]
    T = len(e)
    thr = np.float32(o.vad_energy_threshold) + np.float32(o.vad_energy_mean_scale) * np.float32(e.sum(dtype=np.float64) / T)
    out = np.zeros(T, np.float32)
    for t in range(T):
        num = den = 0
        for t2 in range(t - o.vad_frames_context, t + o.vad_frames_context + 1):
            if 0 <= t2 < T:
                den += 1
                num += e[t2] > thr
        out[t] = 1.0 if num >= den * o.vad_proportion_threshold else 0.0
    return out


@pytest.mark.parametrize("context,prop", [(0, 0.6), (2, 0.12), (5, 0.5)])
def test_vad_matches_kaldi_loop(context, prop):
    rng = np.random.default_rng(context)
    feats = rng.normal(10, 4, size=(300, 5)).astype(np.float32)
    o = VadEnergyOptions(5.5, 0.5, context, prop)
    vad = compute_vad(feats, o)
    np.testing.assert_array_equal(vad, _vad_loop(feats, o))
    assert 0 < vad.sum() < 300
    assert compute_vad(np.zeros((0, 5), np.float32), o).shape == (0,)


def _cmn_loop(x, window, min_window, center, norm_vars):
    """Kaldi's SlidingWindowCmnInternal with running sums."""
    T, D = x.shape
    x = x.astype(np.float64)
    out = np.zeros_like(x)
    for t in range(T):
        if center:
            s = t - window // 2
            e = s + window
        else:
            s, e = t - window, t + 1
        if s < 0:
            e -= s
            s = 0
        if not center and e > t:
            e = max(t + 1, min_window)
        if e > T:
            s -= e - T
            e = T
            s = max(s, 0)
        n = e - s
        mean = x[s:e].sum(0) / n
        out[t] = x[t] - mean
        if norm_vars:
            if n == 1:
                out[t] = 0.0
            else:
                var = (x[s:e] ** 2).sum(0) / n - mean ** 2
                out[t] *= np.maximum(var, 1e-10) ** -0.5
    return out.astype(np.float32)


@pytest.mark.parametrize("T", [1, 50, 301, 1000])
@pytest.mark.parametrize("window,min_window,center,norm_vars",
                         [(300, 100, True, False), (600, 100, False, False), (300, 100, True, True), (200, 50, False, True)])
def test_sliding_cmn_matches_kaldi_loop(T, window, min_window, center, norm_vars):
    x = np.random.default_rng(T).normal(5, 3, size=(T, 4)).astype(np.float32)
    got = apply_cmvn_sliding(x, window, min_window, center, norm_vars)
    np.testing.assert_allclose(got, _cmn_loop(x, window, min_window, center, norm_vars), atol=1e-5)


def test_select_voiced_frames_and_mismatch():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    vad = np.array([1, 0, 1, 1], np.float32)
    np.testing.assert_array_equal(select_voiced_frames(x, vad), x[[0, 2, 3]])
    np.testing.assert_array_equal(select_voiced_frames(x, vad, select_unvoiced=True), x[[1]])
    with pytest.raises(SidError, match="u1.*mismatch"):
        select_voiced_frames(x, vad[:3], utt="u1")


def test_compute_tool_skips_bad_utterances_with_reasons(tmp_path, sid_env):
    good = _signal(1.0)
    sf.write(tmp_path / "good.wav", good.astype(np.int16), 16000)
    sf.write(tmp_path / "rate.wav", good.astype(np.int16), 8000)
    sf.write(tmp_path / "short.wav", good[:50].astype(np.int16), 16000)
    (tmp_path / "wav.scp").write_text(
        f"u1 {tmp_path}/good.wav\nu2 {tmp_path}/missing.wav\nu3 {tmp_path}/rate.wav\nu4 {tmp_path}/short.wav\n")
    out = tmp_path / "f"
    r = subprocess.run([sys.executable, "-m", "sid.bin.compute_fbank_feats", "--dither=0", "--snip-edges=false",
                        f"scp:{tmp_path}/wav.scp", f"ark,scp:{out}.ark,{out}.scp",
                        f"--write-num-frames=ark,t:{tmp_path}/nf", "--compress=true"],
                       env=sid_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for utt, reason in [("u2", "no such file"), ("u3", "8000"), ("u4", "shorter than one frame")]:
        assert any(utt in line and reason in line for line in r.stderr.splitlines()), (utt, r.stderr)
    assert "Done 1 out of 4" in r.stderr
    feats = kaldiio.load_scp(f"{out}.scp")
    assert list(feats) == ["u1"] and feats["u1"].shape == (100, 23)
    assert (tmp_path / "nf").read_text() == "u1 100\n"
    o = FbankOptions(); o.frame_opts.dither = 0.0; o.frame_opts.snip_edges = False
    np.testing.assert_allclose(feats["u1"], Fbank(o).compute(good), atol=0.2)  # compressed
    # Nothing usable at all: the job fails and leaves no output behind.
    (tmp_path / "bad.scp").write_text(f"u2 {tmp_path}/missing.wav\n")
    r = subprocess.run([sys.executable, "-m", "sid.bin.compute_mfcc_feats", f"scp:{tmp_path}/bad.scp",
                        f"ark:{tmp_path}/bad.ark"], env=sid_env, capture_output=True, text=True)
    assert r.returncode == 1 and "no utterance" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad.ark").exists()


def test_compute_tool_segments_augmentation_and_wav_ark(tmp_path, sid_env):
    x = _signal(2.0)
    sf.write(tmp_path / "rec.wav", x.astype(np.int16), 16000)
    (tmp_path / "wav.scp").write_text(f"rec {tmp_path}/rec.wav\n")
    (tmp_path / "segments").write_text("a rec 0.0 1.0\nb rec 0.5 2.0\nc other 0 1\n")
    (tmp_path / "utt2aug").write_text('b {"speed": 1.25}\n')
    r = subprocess.run([sys.executable, "-m", "sid.bin.compute_mfcc_feats", "--dither=0",
                        f"--segments={tmp_path}/segments", f"--utt2aug={tmp_path}/utt2aug",
                        f"--write-utt2dur=ark,t:{tmp_path}/utt2dur",
                        f"scp:{tmp_path}/wav.scp", f"ark:{tmp_path}/m.ark"], env=sid_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "'c'" in r.stderr and "other" in r.stderr  # its recording is not in wav.scp
    feats = dict(kaldiio.load_ark(str(tmp_path / "m.ark")))
    o = MfccOptions(); o.frame_opts.dither = 0.0
    np.testing.assert_allclose(feats["a"], Mfcc(o).compute(x[:16000]), rtol=1e-5, atol=1e-4)
    assert feats["b"].shape[0] == num_frames(int(1.5 * 16000 / 1.25), o.frame_opts)  # sped up by its recipe
    assert (tmp_path / "utt2dur").read_text() == "a 1\nb 1.2\n"
    # A Kaldi wav archive (what extract-segments writes) is read as well.
    kaldiio.save_ark(str(tmp_path / "wav.ark"), {"w": (16000, x.astype(np.int16))})
    r = subprocess.run([sys.executable, "-m", "sid.bin.compute_mfcc_feats", "--dither=0", f"ark:{tmp_path}/wav.ark",
                        "ark,t:-"], env=sid_env, capture_output=True)
    assert r.returncode == 0, r.stderr
    out = dict(kaldiio.load_ark(__import__("io").BytesIO(r.stdout)))
    np.testing.assert_allclose(out["w"], Mfcc(o).compute(x), rtol=1e-5, atol=1e-3)


def test_feature_job_on_a_full_disk_fails_saying_how_much_it_needs(tmp_path, tiny_disk, sid_env):
    x = _signal(1.0).astype(np.int16)
    sf.write(tmp_path / "a.wav", x, 16000)
    # 40 utterances of 98 x 80 uncompressed floats: 1.25 MiB for a 1 MiB disk.
    (tmp_path / "wav.scp").write_text("".join(f"u{i:02d} {tmp_path}/a.wav\n" for i in range(40)))
    r = subprocess.run([sys.executable, "-m", "sid.bin.compute_fbank_feats", "--num-mel-bins=80", "--dither=0",
                        f"scp:{tmp_path}/wav.scp", f"ark,scp:{tiny_disk}/f.ark,{tiny_disk}/f.scp",
                        f"--write-num-frames=ark,t:{tiny_disk}/nf"], env=sid_env, capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    line = [x for x in r.stderr.splitlines() if x.startswith("ERROR")]
    assert len(line) == 1 and f"no space left on device writing {tiny_disk}/f.ark: {tiny_disk} (tmpfs" in line[0]
    assert "about 1.2 MiB is needed" in line[0]
    assert list(tiny_disk.iterdir()) == []  # no temporary or partial file is left
