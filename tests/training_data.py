"""Shared test data for the training and extraction tests (no tests here).

``corpus_features(corpus, root)`` computes, once per test session, 30-dim log-mel
filterbanks of 10 utterances of each of 20 speakers of the shared speechocean762
corpus with kaldi_native_fbank, and writes two data dirs:

* ``raw``: raw features and a simple energy VAD (the input of extraction);
* ``train``: sliding-CMN'd (sid.features.cmvn, window 300, centred), voiced-only
  features with utt2spk/spk2utt/utt2num_frames (what steps/prepare_feats_for_egs.sh
  writes).

``audio_data_dir(corpus, root)`` writes a small audio training dir with noise dirs,
an RIR and an fbank config (the audio source's tests).

Both record how their features were made, as the steps do (``sid.provenance``).
"""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np

from sid import provenance

NUM_SPK, UTT_PER_SPK, DIM = 20, 10, 30
FBANK_CONF = f"--num-mel-bins={DIM}\n--dither=0\n"   # what _fbank computes
CMVN_OPTS = "--norm-vars=false --center=true --cmn-window=300"
_CACHE: dict[str, Path] = {}


def _fbank(samples: np.ndarray) -> np.ndarray:
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = DIM
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, samples.tolist())
    fb.input_finished()
    return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]).astype(np.float32)


def _write_dir(d: Path, feats: dict, utt2spk: dict, vad: dict | None = None) -> None:
    d.mkdir(parents=True, exist_ok=True)
    kaldiio.save_ark(str(d / "feats.ark"), feats, scp=str(d / "feats.scp"))
    if vad is not None:
        kaldiio.save_ark(str(d / "vad.ark"), vad, scp=str(d / "vad.scp"))
    keys = sorted(feats)
    (d / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in keys))
    (d / "utt2num_frames").write_text("".join(f"{u} {feats[u].shape[0]}\n" for u in keys))
    spk2utt: dict[str, list[str]] = {}
    for u in keys:
        spk2utt.setdefault(utt2spk[u], []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))


def corpus_features(corpus: Path, root: Path) -> Path:
    """Directory holding ``raw/`` and ``train/`` data dirs (see module docstring)."""
    if "dir" in _CACHE:
        return _CACHE["dir"]
    import soundfile as sf

    from sid.features.cmvn import apply_cmvn_sliding

    spk2utt = {}
    for line in (corpus / "train" / "spk2utt").read_text().splitlines():
        spk, *utts = line.split()
        spk2utt[spk] = sorted(utts)[:UTT_PER_SPK]
    wav = dict(line.split(maxsplit=1) for line in (corpus / "train" / "wav.scp").read_text().splitlines())
    raw, vads, train, utt2spk = {}, {}, {}, {}
    for spk in sorted(spk2utt)[:NUM_SPK]:
        for utt in spk2utt[spk]:
            samples, sr = sf.read(str(corpus / wav[utt]), dtype="float32")
            assert sr == 16000
            feats = _fbank(samples * 32768.0)
            energy = feats.mean(axis=1)
            vad = (energy > energy.mean() - 0.5 * energy.std()).astype(np.float32)
            raw[utt], vads[utt], utt2spk[utt] = feats, vad, spk
            train[utt] = apply_cmvn_sliding(feats, window=300, center=True)[vad > 0.5]
    _write_dir(root / "raw", raw, utt2spk, vads)
    _write_dir(root / "train", train, utt2spk)
    # The record steps/make_fbank.sh and steps/prepare_feats_for_egs.sh leave (sid.provenance).
    conf = root / "fbank.conf"
    conf.write_text(FBANK_CONF)
    provenance.write_record(root / "raw", "fbank", conf)
    provenance.copy_record([root / "raw"], root / "train")
    (root / "train" / "cmvn_opts").write_text(CMVN_OPTS + "\n")
    _CACHE["dir"] = root
    return root


NUM_AUDIO_SPK, AUDIO_UTTS = 8, 6


def _write_audio_dir(d: Path, rows: list[tuple[str, str, str, float]]) -> Path:
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("".join(f"{u} {p}\n" for u, _, p, _ in rows))
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _, _ in rows))
    (d / "utt2dur").write_text("".join(f"{u} {dur:.3f}\n" for u, _, _, dur in rows))
    return d


def audio_data_dir(corpus: Path, root: Path) -> dict:
    """A training dir of speechocean762 utterances (as wav, flac and the corpus' ogg), MUSAN-like
    noise dirs made of other utterances, a synthetic RIR with its rir_list and a 30-bin fbank config."""
    import soundfile as sf

    spk2utt = {}
    for line in (corpus / "train" / "spk2utt").read_text().splitlines():
        spk, *utts = line.split()
        spk2utt[spk] = sorted(utts)
    wav = dict(line.split(maxsplit=1) for line in (corpus / "train" / "wav.scp").read_text().splitlines())
    speakers = sorted(spk2utt)
    rows, noise_rows = [], []
    for k, spk in enumerate(speakers[:NUM_AUDIO_SPK]):
        for n, utt in enumerate(spk2utt[spk][:AUDIO_UTTS]):
            samples, sr = sf.read(str(corpus / wav[utt]), dtype="int16")
            ext = ("wav", "flac", "ogg")[(k + n) % 3]
            path = corpus / wav[utt] if ext == "ogg" else root / "audio" / f"{utt}.{ext}"
            if ext != "ogg":
                path.parent.mkdir(exist_ok=True)
                sf.write(str(path), samples, sr)
            rows.append((utt, spk, str(path), len(samples) / sr))
    for spk in speakers[NUM_AUDIO_SPK:NUM_AUDIO_SPK + 4]:
        utt = spk2utt[spk][0]
        noise_rows.append((utt, utt, str(corpus / wav[utt]), sf.info(str(corpus / wav[utt])).duration))
    train = _write_audio_dir(root / "train", rows)
    noises = {kind: _write_audio_dir(root / f"musan_{kind}", noise_rows) for kind in ("noise", "music", "babble")}
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    rir = (rng.standard_normal(4000) * np.exp(-t / 0.05) * 0.3).astype(np.float32)
    rir[200] = 0.9
    sf.write(str(root / "rir1.wav"), rir, 16000)
    (root / "rir_list").write_text(f"--rir-id r1 --room-id room1 {root / 'rir1.wav'}\n")
    conf = root / "fbank.conf"
    conf.write_text("--num-mel-bins=30\n--snip-edges=false\n")
    return {"train": train, "noises": noises, "rir_list": root / "rir_list", "conf": conf, "root": root}


def kill_after_checkpoint(cmd: list, env: dict, cwd: Path, exp: Path, epoch: int, timeout: float = 120) -> None:
    """Start a training command and SIGKILL it right after its first mid-epoch checkpoint of ``epoch``
    (training goes on past it meanwhile); the resume tests then rerun ``cmd``."""
    import re
    import signal
    import subprocess
    import time

    import pytest

    log = exp / "log" / "train.log"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and re.search(rf"\(epoch {epoch}, batch [1-9]\d*, step", log.read_text()):
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        else:
            pytest.fail(f"no mid-epoch checkpoint within {timeout:.0f} s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (exp / "final.pt").exists()


def model_with_moved_norms(model_cfg, seed: int):
    """``build_model(model_cfg)`` from ``seed``, its batch norms' running statistics moved away
    from (0, 1) so that eval mode is visible in what the model computes."""
    import torch

    from sid.models import build_model

    torch.manual_seed(seed)
    model = build_model(model_cfg)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model
