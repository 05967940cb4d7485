"""sid.augment: recipes applied as Kaldi's wav-reverberate / sox speed would, and the
augmented data dirs (reverb, MUSAN-style noise/music/babble, speed) with their utt2aug.
Noises and RIRs are made here: coloured noise, exponentially decaying synthetic RIRs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sid.augment import apply_recipe, augment_data_dir, perturb_data_dir_speed, reverberate_data_dir
from sid.augment.recipe import reverberate_and_add
from sid.data.table import read_dict
from sid.errors import AudioError, DataDirError

SR = 16000


def coloured(rng, n, alpha):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    x = np.fft.irfft(spec / f ** (alpha / 2), n)
    return x / np.sqrt(np.mean(x ** 2)) * 2000


def write(path, x):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(np.round(x), -32768, 32767).astype(np.int16), SR, subtype="PCM_16")
    return str(path)


def read_back(path):
    x, _ = sf.read(path, dtype="int16")
    return x.astype(np.float64)


def exp_rir(rng, delay, rt60=0.3):
    n = int(rt60 * SR)
    tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / SR / rt60) * 0.3
    rir = np.concatenate([np.zeros(delay), [1.0], tail])
    return rir / np.abs(rir).max() * 30000


@pytest.fixture()
def speech(tmp_path):
    """A speech-like signal: an amplitude-modulated harmonic tone plus a little noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * SR)) / SR
    x = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8)) * (1 + np.sin(2 * np.pi * 3 * t))
    x = x / np.abs(x).max() * 8000 + rng.standard_normal(len(t)) * 50
    return np.round(x)


def test_pure_delay_rir_gives_back_the_signal(tmp_path, speech):
    # A delta RIR: the output is the input shifted back by the peak. wav-reverberate
    # restores the input's power over the whole convolution (n + 400 - 1 samples), so
    # the kept n samples come out sqrt((n + 399) / n) louder.
    rir = np.zeros(400)
    rir[123] = 20000
    spec = write(tmp_path / "delta.wav", rir)
    out = apply_recipe(speech.astype(np.float32), SR, json.dumps({"rir": spec}))
    assert out.dtype == np.float32 and len(out) == len(speech)
    n = len(speech)
    np.testing.assert_allclose(out, speech * np.sqrt((n + 399) / n), atol=1e-2)


def test_reverb_follows_wav_reverberate(tmp_path, speech):
    rng = np.random.default_rng(1)
    rir = read_back(write(tmp_path / "rir.wav", exp_rir(rng, delay=57)))
    out = apply_recipe(speech, SR, {"rir": str(tmp_path / "rir.wav")})
    # Reference written out from wav-reverberate's definition (shift-output, normalize-output).
    h = rir / 32768
    full = np.convolve(speech, h)
    full *= np.sqrt(np.mean(speech ** 2) / np.mean(full ** 2))
    peak = int(np.argmax(h))
    np.testing.assert_allclose(out, full[peak:peak + len(speech)], rtol=0, atol=1e-4 * np.abs(full).max())
    # Aligned with the clean signal (the clean VAD applies): on white noise the best lag is 0.
    x = rng.standard_normal(SR) * 3000
    out = apply_recipe(x, SR, {"rir": str(tmp_path / "rir.wav")})
    lags = range(-100, 101)
    corr = [np.dot(out[100:-100], x[100 + k:len(x) - 100 + k]) for k in lags]
    assert list(lags)[int(np.argmax(corr))] == 0


def fit_noise_scale(out, clean, noise):
    """Least-squares ``out ~ c * clean + d * noise``; returns (c, d)."""
    (c, d), *_ = np.linalg.lstsq(np.stack([clean, noise], 1), out, rcond=None)
    return c, d


def test_foreground_noise_snr_and_offset(tmp_path, speech):
    rng = np.random.default_rng(2)
    noise = coloured(rng, 8000, 1.0)  # 0.5 s, shorter than the utterance
    spec = write(tmp_path / "n.wav", noise)
    noise = read_back(spec)
    start = 0.25
    out = apply_recipe(speech, SR, {"additive": [{"file": spec, "snr": 5, "start": start}]}).astype(np.float64)
    off = int(start * SR)
    placed = np.zeros_like(speech)
    placed[off:off + len(noise)] = noise
    c, d = fit_noise_scale(out, speech, placed)
    residual = out - c * speech - d * placed
    assert np.abs(residual).max() < 0.1
    # SNR against the clean signal's power, noise power over the whole noise file.
    snr = 10 * np.log10(np.mean(speech ** 2) / ((d / c) ** 2 * np.mean(noise ** 2)))
    assert snr == pytest.approx(5.0, abs=1e-3)
    # Output keeps the input's power; before the noise starts it is the scaled clean signal.
    assert np.mean(out ** 2) == pytest.approx(np.mean(speech ** 2), rel=1e-4)
    np.testing.assert_allclose(out[:off], c * speech[:off], atol=0.05)


def test_background_noise_is_repeated_to_the_utterance(tmp_path, speech):
    rng = np.random.default_rng(3)
    spec = write(tmp_path / "bg.wav", coloured(rng, 5000, 2.0))
    noise = read_back(spec)
    out = apply_recipe(speech, SR, {"additive": [{"file": spec, "snr": 10, "start": 0, "fill": True}]})
    tiled = np.tile(noise, 5)[:len(speech)]
    c, d = fit_noise_scale(out.astype(np.float64), speech, tiled)
    assert np.abs(out - c * speech - d * tiled).max() < 0.1
    snr = 10 * np.log10(np.mean(speech ** 2) / ((d / c) ** 2 * np.mean(tiled ** 2)))
    assert snr == pytest.approx(10.0, abs=1e-3)


def test_long_background_noise_read_only_as_far_as_needed(tmp_path, speech):
    # A noise longer than the utterance is trimmed (Kaldi: --duration); knowing its
    # duration, only its start is read, with the same result.
    rng = np.random.default_rng(7)
    spec = write(tmp_path / "music.wav", coloured(rng, 5 * SR, 1.0))
    whole = apply_recipe(speech, SR, {"additive": [{"file": spec, "snr": 8, "fill": True}]})
    part = apply_recipe(speech, SR, {"additive": [{"file": spec, "snr": 8, "fill": True, "dur": 5.0}]})
    np.testing.assert_array_equal(whole, part)
    trimmed = read_back(spec)[:len(speech)]
    c, d = fit_noise_scale(part.astype(np.float64), speech, trimmed)
    snr = 10 * np.log10(np.mean(speech ** 2) / ((d / c) ** 2 * np.mean(trimmed ** 2)))
    assert snr == pytest.approx(8.0, abs=1e-3)


def test_noise_snr_is_relative_to_early_reverberation():
    # wav-reverberate measures the signal power for the SNR on the signal convolved
    # with the RIR from 1 ms before to 50 ms after its peak, not on the dry signal.
    rng = np.random.default_rng(4)
    x = rng.standard_normal(SR)
    rir = np.zeros(2000)
    rir[100] = 1.0
    rir[1500] = 0.8  # a reflection 87.5 ms after the peak: outside the early part
    noise = rng.standard_normal(SR + 3000)
    out = reverberate_and_add(x, SR, rir, [(noise, 0.0, 0.0, "n")])
    early = np.convolve(x, rir[84:900])
    full = np.convolve(x, rir)
    scale = np.sqrt(np.mean(early ** 2) / np.mean(noise ** 2))
    mixed = full.copy()
    mixed += scale * noise[:len(full)]
    mixed *= np.sqrt(np.mean(x ** 2) / np.mean(mixed ** 2))
    np.testing.assert_allclose(out, mixed[100:100 + SR], atol=1e-9)


def test_speed_perturbation_changes_length_and_pitch():
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * 500 * t) * 5000
    for factor in (0.9, 1.1):
        y = apply_recipe(x, SR, {"speed": factor})
        assert len(y) == pytest.approx(SR / factor, abs=2)
        freq = np.argmax(np.abs(np.fft.rfft(y))) * SR / len(y)
        assert freq == pytest.approx(500 * factor, abs=2)


def test_bad_recipes_are_clear_errors(tmp_path):
    x = np.ones(100, np.float32)
    with pytest.raises(AudioError, match="not JSON"):
        apply_recipe(x, SR, "{rir: x}")
    with pytest.raises(AudioError, match="keys among"):
        apply_recipe(x, SR, '{"reverb": "x.wav"}')
    with pytest.raises(AudioError, match="'file' and 'snr'"):
        apply_recipe(x, SR, '{"additive": [{"file": "n.wav"}]}')
    with pytest.raises(AudioError, match="no such file"):
        apply_recipe(x, SR, json.dumps({"rir": str(tmp_path / "missing.wav")}))
    silent = write(tmp_path / "silent.wav", np.zeros(800))
    with pytest.raises(AudioError, match="silent"):
        apply_recipe(x * 1000, SR, json.dumps({"additive": [{"file": silent, "snr": 5}]}))


# ---------------------------------------------------------------- data dirs

def make_data_dir(path, utts):
    """``utts``: ``(utt, spk, wav path, seconds)``."""
    path.mkdir(parents=True)
    (path / "wav.scp").write_text("".join(f"{u} {w}\n" for u, _, w, _ in utts))
    (path / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _, _ in utts))
    spks = sorted({s for _, s, _, _ in utts})
    (path / "spk2utt").write_text("".join(f"{s} {' '.join(u for u, t, _, _ in utts if t == s)}\n" for s in spks))
    (path / "utt2dur").write_text("".join(f"{u} {d}\n" for u, _, _, d in utts))
    (path / "vad.scp").write_text("".join(f"{u} vad.ark:{i * 10}\n" for i, (u, _, _, _) in enumerate(utts)))
    (path / "spk2gender").write_text("".join(f"{s} m\n" for s in spks))
    return path


@pytest.fixture()
def clean(tmp_path, speech):
    rng = np.random.default_rng(5)
    utts = []
    for s in ("spkA", "spkB"):
        for i in range(6):
            dur = 1.0 + 0.5 * i
            wav = write(tmp_path / "audio" / f"{s}-{i}.wav", np.resize(speech, int(dur * SR)) * rng.uniform(0.5, 1))
            utts.append((f"{s}-u{i}", s, wav, dur))
    return make_data_dir(tmp_path / "clean", utts)


@pytest.fixture()
def noises(tmp_path):
    rng = np.random.default_rng(6)
    noise = [(f"noise-{i}", "n", write(tmp_path / "noise" / f"{i}.wav", coloured(rng, 4000 * (i + 1), i)),
              0.25 * (i + 1)) for i in range(3)]
    # Babble: speech of other speakers (harmonic tones of other pitches).
    t = np.arange(SR * 2) / SR
    babble = [(f"speech-{i}", "b", write(tmp_path / "speech" / f"{i}.wav",
                                          np.sin(2 * np.pi * (180 + 40 * i) * t) * (1 + np.sin(5 * t + i)) * 4000),
               2.0) for i in range(6)]
    rirs = tmp_path / "rirs"
    lists = []
    for room, rt in (("smallroom", 0.2), ("mediumroom", 0.5)):
        lines = [f"--rir-id {room}-{k} --room-id {room} {write(rirs / room / f'{k}.wav', exp_rir(rng, 30 + k, rt))}\n"
                 for k in range(3)]
        (rirs / room / "rir_list").write_text("".join(lines))
        lists.append(str(rirs / room / "rir_list"))
    return make_data_dir(tmp_path / "musan_noise", noise), make_data_dir(tmp_path / "musan_speech", babble), lists


def test_reverberated_copy(tmp_path, clean, noises):
    _, _, lists = noises
    out = tmp_path / "reverb"
    reverberate_data_dir(clean, out, [(0.5, lists[0]), (0.5, lists[1])], seed=3)
    aug = read_dict(out / "utt2aug")
    assert sorted(aug) == sorted(f"{u}-reverb" for u in read_dict(clean / "utt2spk"))
    rooms = [json.loads(r)["rir"].split("/")[-2] for r in aug.values()]
    assert set(rooms) == {"smallroom", "mediumroom"}  # both sets drawn
    # Kaldi carries the clean VAD to reverberated copies; the same speakers; sorted files.
    assert read_dict(out / "vad.scp")["spkA-u0-reverb"] == read_dict(clean / "vad.scp")["spkA-u0"]
    assert read_dict(out / "utt2spk")["spkB-u3-reverb"] == "spkB"
    assert read_dict(out / "wav.scp")["spkB-u3-reverb"] == read_dict(clean / "wav.scp")["spkB-u3"]
    keys = list(read_dict(out / "utt2aug"))
    assert keys == sorted(keys)
    # Reproducible: the same seed gives the same recipes; another seed other ones.
    reverberate_data_dir(clean, tmp_path / "again", [(0.5, lists[0]), (0.5, lists[1])], seed=3)
    assert (tmp_path / "again" / "utt2aug").read_text() == (out / "utt2aug").read_text()
    reverberate_data_dir(clean, tmp_path / "other", [(0.5, lists[0]), (0.5, lists[1])], seed=4)
    assert (tmp_path / "other" / "utt2aug").read_text() != (out / "utt2aug").read_text()
    # Applying a recipe keeps the utterance's length.
    utt = "spkA-u2-reverb"
    x, _ = sf.read(read_dict(out / "wav.scp")[utt], dtype="int16")
    assert len(apply_recipe(x.astype(np.float32), SR, aug[utt])) == len(x)


def test_foreground_noise_copy_covers_each_utterance(tmp_path, clean, noises):
    noise_dir, _, _ = noises
    out = tmp_path / "noise"
    augment_data_dir(clean, out, "noise", fg_noise_dir=noise_dir, fg_snrs=[15, 10, 5, 0], fg_interval=1, seed=1)
    durs = read_dict(clean / "utt2dur")
    ndur = {w: float(d) for w, d in zip(read_dict(noise_dir / "wav.scp").values(),
                                        read_dict(noise_dir / "utt2dur").values())}
    snrs = set()
    for utt, rec in read_dict(out / "utt2aug").items():
        adds = json.loads(rec)["additive"]
        src = utt[:-len("-noise")]
        # Noises one after another, 1 s apart, until the utterance is covered (Kaldi's loop).
        t = 0.0
        for add in adds:
            assert add["start"] == pytest.approx(t, abs=1e-3) and not add.get("fill")
            t += ndur[add["file"]] + 1
            snrs.add(add["snr"])
        assert t - ndur[adds[-1]["file"]] - 1 < float(durs[src]) <= t
    assert snrs <= {15, 10, 5, 0} and len(snrs) > 1


def test_babble_copy_and_its_audio(tmp_path, clean, noises):
    _, speech_dir, _ = noises
    out = tmp_path / "babble"
    augment_data_dir(clean, out, "babble", bg_noise_dir=speech_dir, bg_snrs=[20, 17, 15, 13],
                     num_bg_noises=[3, 4, 5, 6, 7], seed=1)
    aug = read_dict(out / "utt2aug")
    counts = {len(json.loads(r)["additive"]) for r in aug.values()}
    assert counts <= {3, 4, 5, 6, 7} and len(counts) > 1
    assert all(a["fill"] and a["start"] == 0 and a["dur"] == 2.0
               for r in aug.values() for a in json.loads(r)["additive"])
    utt = "spkB-u5-babble"
    x, _ = sf.read(read_dict(out / "wav.scp")[utt], dtype="int16")
    y = apply_recipe(x.astype(np.float32), SR, aug[utt])
    assert len(y) == len(x)
    assert np.mean(y.astype(np.float64) ** 2) == pytest.approx(np.mean(x.astype(np.float64) ** 2), rel=1e-3)
    assert not np.allclose(y, x, atol=50)


def test_speed_copy_is_new_speakers_and_merges_with_noise(tmp_path, clean, noises):
    noise_dir, _, _ = noises
    sp = tmp_path / "sp"
    perturb_data_dir_speed(0.9, clean, sp)
    assert read_dict(sp / "utt2spk")["sp0.9-spkA-u1"] == "sp0.9-spkA"
    assert float(read_dict(sp / "utt2dur")["sp0.9-spkA-u1"]) == pytest.approx(1.5 / 0.9, abs=1e-3)
    assert not (sp / "vad.scp").exists()  # the length changed: VAD must be recomputed
    assert read_dict(sp / "spk2gender") == {"sp0.9-spkA": "m", "sp0.9-spkB": "m"}
    noisy = tmp_path / "sp_noise"
    augment_data_dir(sp, noisy, "noise", fg_noise_dir=noise_dir, fg_snrs=[5], fg_interval=1)
    rec = json.loads(read_dict(noisy / "utt2aug")["sp0.9-spkA-u1-noise"])
    assert rec["speed"] == 0.9 and rec["additive"]
    # Speed twice is refused: augment the clean dir instead.
    with pytest.raises(DataDirError, match="already has"):
        perturb_data_dir_speed(1.1, sp, tmp_path / "twice")


def test_data_dir_errors(tmp_path, clean, noises):
    noise_dir, _, lists = noises
    (clean / "utt2dur").unlink()
    with pytest.raises(DataDirError, match="get_utt2dur.sh"):
        augment_data_dir(clean, tmp_path / "x", "noise", fg_noise_dir=noise_dir, fg_snrs=[5])
    bad_list = tmp_path / "bad_list"
    bad_list.write_text(f"--rir-id a --room-id r {tmp_path}/nowhere.wav\n")
    with pytest.raises(DataDirError, match=r"bad_list:1: RIR file .*nowhere.wav"):
        reverberate_data_dir(clean, tmp_path / "y", [(1.0, str(bad_list))])
    assert not (tmp_path / "y").exists() and not (tmp_path / "x").exists()


def test_tools_command_lines(tmp_path, clean, noises, sid_env):
    noise_dir, speech_dir, lists = noises
    run = lambda *a: subprocess.run([sys.executable, "-m", *a], env=sid_env, capture_output=True, text=True)  # noqa: E731
    r = run("sid.bin.augment_data_dir", "--utt-suffix", "music", "--bg-snrs", "15:10:8:5", "--num-bg-noises", "1",
            "--bg-noise-dir", str(noise_dir), str(clean), str(tmp_path / "music"))
    assert r.returncode == 0, r.stderr
    assert len(read_dict(tmp_path / "music" / "utt2aug")) == 12
    r = run("sid.bin.reverberate_data_dir", "--rir-set-parameters", f"0.5, {lists[0]}",
            "--rir-set-parameters", f"0.5, {lists[1]}", str(clean), str(tmp_path / "rev"))
    assert r.returncode == 0, r.stderr
    r = run("sid.bin.perturb_data_dir_speed", "1.1", str(clean), str(tmp_path / "sp"))
    assert r.returncode == 0 and (tmp_path / "sp" / "utt2aug").is_file()
    r = run("sid.bin.augment_data_dir", "--utt-suffix", "n", "--fg-noise-dir", str(tmp_path / "none"),
            "--fg-snrs", "5", str(clean), str(tmp_path / "z"))
    assert r.returncode == 1 and "none/wav.scp" in r.stderr and "Traceback" not in r.stderr
