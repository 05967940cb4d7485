"""Front-end modules (voxceleb_trainer's log-mel, raw waveform rows), their alignment to
Kaldi's frames, compute_frontend_feats, and d-vector window averaging in extraction."""

from __future__ import annotations

import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import torch

from sid.augment import apply_recipe
from sid.config import load_config
from sid.data.audio import read_audio
from sid.extract import embed_utterances, window_spans
from sid.features.frontends import VTMel, Waveform, build_frontend, frontend_features, htk_mel_filters, kaldi_frames


def _vt_mel_numpy(x: np.ndarray, bins: int) -> np.ndarray:
    """The recipe written out step by step in numpy, in float64."""
    x = x.astype(np.float64)
    y = x - 0.97 * np.concatenate([[x[1]], x[:-1]])
    y = np.pad(y, 256, mode="reflect")
    n = np.arange(400)
    win = np.zeros(512)
    win[56:456] = 0.54 - 0.46 * np.cos(2 * np.pi * n / 400)      # periodic Hamming, centred in the FFT frame
    frames = np.stack([y[i:i + 512] * win for i in range(0, len(y) - 512 + 1, 160)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)                # noqa: E731
    corners = 700 * (10 ** (np.linspace(0, mel(8000), bins + 2) / 2595) - 1)
    freqs = np.arange(257) * 8000 / 256
    fb = np.zeros((257, bins))
    for k in range(bins):
        lo, c, hi = corners[k:k + 3]
        fb[:, k] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    return np.log(power @ fb + 1e-6)


def test_vt_mel_matches_step_by_step_numpy():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(8000) * 3000).astype(np.float32)
    got = VTMel(40)(torch.from_numpy(x)[None])[0].numpy()
    want = _vt_mel_numpy(x, 40)
    assert got.shape == want.shape == (51, 40)
    assert np.abs(got - want).max() < 2e-3


def test_htk_filters_peak_at_their_centres():
    fb = htk_mel_filters(40, 512, 16000)
    assert fb.shape == (257, 40) and fb.max() <= 1.0 and (fb.sum(axis=0) > 0).all()
    assert (np.diff(fb.argmax(axis=0)) >= 0).all()


@pytest.mark.parametrize("snip", [False, True])
@pytest.mark.parametrize("n", [400, 16000, 16079, 16081, 23456])
def test_frontend_frames_equal_kaldis(n, snip):
    from sid.features.options import FrameExtractionOptions
    from sid.features.window import num_frames

    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    kaldi = num_frames(n, FrameExtractionOptions(snip_edges=snip))
    assert kaldi_frames(n, snip) == kaldi
    assert frontend_features(VTMel(40), x, snip).shape == (kaldi, 40)
    rows = frontend_features(Waveform(160), x * 32768, snip)
    assert rows.shape == (kaldi, 160)
    flat = rows.reshape(-1)
    assert np.allclose(flat[:min(n, len(flat))], x[:len(flat)], atol=1e-6)   # rows are the samples, in order


def test_frontend_section_is_validated():
    from sid.config import FrontendConfig, parse_config
    from sid.errors import SidError

    assert build_frontend(FrontendConfig("fbank", 40)) is None
    assert isinstance(build_frontend(FrontendConfig("vt_mel", 64)), VTMel)
    with pytest.raises(SidError, match="frontend.type"):
        parse_config({"model": {"type": "dvector"}, "frontend": {"type": "mfcc"}})
    with pytest.raises(SidError, match="frontend.bins"):
        parse_config({"model": {"type": "dvector"}, "frontend": {"type": "vt_mel", "bins": 3}})


def test_window_spans():
    assert window_spans(100, 160, 80) == [(0, 100)]
    assert window_spans(160, 160, 80) == [(0, 160)]
    assert window_spans(400, 160, 80) == [(0, 160), (80, 160), (160, 160), (240, 160)]
    assert window_spans(410, 160, 80) == [(0, 160), (80, 160), (160, 160), (240, 160), (250, 160)]


class _FirstFrame(torch.nn.Module):
    """Embeds a chunk as its first frame, un-normalised."""
    min_frames = 1

    def embed(self, x):
        return x[:, 0]


def test_window_average_is_mean_of_unit_windows_renormalised():
    feats = np.zeros((400, 2), dtype=np.float32)
    feats[0], feats[80], feats[160], feats[240] = [3, 0], [0, 1], [0, 5], [2, 2]
    (_, emb), = embed_utterances(_FirstFrame(), [("u", feats)], torch.device("cpu"), windows=(160, 80))
    mean = (np.array([1, 0]) + np.array([0, 1]) + np.array([0, 1]) + np.array([1, 1]) / np.sqrt(2)) / 4
    assert np.allclose(emb, mean / np.linalg.norm(mean), atol=1e-6)
    (_, kaldi), = embed_utterances(_FirstFrame(), [("u", feats)], torch.device("cpu"), max_chunk_frames=160)
    assert np.allclose(kaldi, (160 * feats[0] + 160 * feats[160] + 80 * feats[320]) / 400, atol=1e-6)


def test_compute_frontend_feats_cli(corpus, repo, sid_env, tmp_path):
    wav = (corpus / "train" / "wav.scp").read_text().splitlines()[:2]
    (tmp_path / "wav.scp").write_text("".join(f"{u} {corpus / p}\n" for u, p in (line.split() for line in wav)))
    res = subprocess.run([sys.executable, "-m", "sid.bin.compute_frontend_feats", "--model-config=conf/resnetse34l_ap.yaml",
                          "--write-num-frames=ark,t:" + str(tmp_path / "nf"), f"scp:{tmp_path}/wav.scp",
                          f"ark,scp:{tmp_path}/fe.ark,{tmp_path}/fe.scp"], cwd=repo, env=sid_env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    feats = dict(kaldiio.load_scp(str(tmp_path / "fe.scp")))
    assert len(feats) == 2 and all(m.shape[1] == 40 for m in feats.values())
    nf = dict(line.split() for line in (tmp_path / "nf").read_text().splitlines())
    assert all(int(nf[u]) == m.shape[0] for u, m in feats.items())
    bad = subprocess.run([sys.executable, "-m", "sid.bin.compute_frontend_feats", "--model-config=conf/xvector_small.yaml",
                          f"scp:{tmp_path}/wav.scp", f"ark:{tmp_path}/x.ark"], cwd=repo, env=sid_env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "no 'frontend' section" in bad.stderr


def test_make_frontend_feats_step_records_the_frontend(corpus, repo, sid_env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    wav = (corpus / "train" / "wav.scp").read_text().splitlines()[:4]
    pairs = [line.split() for line in wav]
    (data / "wav.scp").write_text("".join(f"{u} {corpus / p}\n" for u, p in pairs))
    (data / "utt2spk").write_text("".join(f"{u} {u[:5]}\n" for u, _ in pairs))
    (data / "spk2utt").write_text(f"{pairs[0][0][:5]} {' '.join(u for u, _ in pairs)}\n")
    res = subprocess.run(["bash", "steps/make_frontend_feats.sh", "--nj", "1", "--model-config",
                          "conf/convgru_embedder.yaml", str(data)], cwd=repo, env=sid_env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "feat_type frontend" in (data / ".feats_done").read_text()
    assert "type: waveform" in (data / "conf" / "frontend.conf").read_text()
    feats = dict(kaldiio.load_scp(str(data / "feats.scp")))
    assert len(feats) == 4 and all(m.shape[1] == 160 for m in feats.values())
    # A speed-perturbed copy (utt2aug) gets the front-end of its perturbed audio.
    fast = tmp_path / "sp1.1"
    res = subprocess.run([sys.executable, "-m", "sid.bin.perturb_data_dir_speed", "1.1", str(data), str(fast)],
                         cwd=repo, env=sid_env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    for f in ("feats.scp", "utt2num_frames", ".feats_done"):
        (fast / f).unlink(missing_ok=True)
    res = subprocess.run(["bash", "steps/make_frontend_feats.sh", "--nj", "1", "--compress", "false", "--model-config",
                          "conf/convgru_embedder.yaml", str(fast)], cwd=repo, env=sid_env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    frontend = build_frontend(load_config(repo / "conf/convgru_embedder.yaml").frontend)
    perturbed = dict(kaldiio.load_scp(str(fast / "feats.scp")))
    assert sorted(perturbed) == sorted(f"sp1.1-{u}" for u in feats)
    for utt, path in pairs[:2]:
        samples = apply_recipe(read_audio(str(corpus / path))[0], 16000, '{"speed": 1.1}')
        assert perturbed[f"sp1.1-{utt}"].shape[0] == kaldi_frames(len(samples), False) < feats[utt].shape[0]
        assert np.allclose(perturbed[f"sp1.1-{utt}"], frontend_features(frontend, samples), atol=1e-4)
