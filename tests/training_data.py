"""Shared test data for the training and extraction tests (no tests here).

``corpus_features(corpus, root)`` computes, once per test session, 30-dim log-mel
filterbanks of 10 utterances of each of 20 speakers of the shared speechocean762
corpus with kaldi_native_fbank, and writes two data dirs:

* ``raw``: raw features and a simple energy VAD (the input of extraction);
* ``train``: sliding-CMN'd (sid.features.cmvn, window 300, centred), voiced-only
  features with utt2spk/spk2utt/utt2num_frames (what steps/prepare_feats_for_egs.sh
  writes).

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
