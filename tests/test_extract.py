"""Embedding extraction: Kaldi's chunking semantics, batching invariance, and
steps/extract_embeddings.sh end to end on real features (with speaker means)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from sid.config import parse_config
from sid.errors import SidError
from sid.extract import WindowMean, chunk_spans, embed_utterances, pad_chunk
from sid.models import build_model

sys.path.insert(0, str(Path(__file__).parent))
from training_data import corpus_features  # noqa: E402


class MeanModel(torch.nn.Module):
    """Embedding = mean over time: makes chunk weighting and padding visible."""
    min_frames = 1

    def embed(self, x):
        return x.mean(dim=1)


def test_chunk_spans_as_kaldi():
    assert chunk_spans(25000, 10000) == [(0, 10000), (10000, 10000), (20000, 5000)]
    assert chunk_spans(300, 10000) == [(0, 300)]
    assert chunk_spans(20000, 10000) == [(0, 10000), (10000, 10000)]
    assert chunk_spans(7, -1) == [(0, 7)]


def test_pad_chunk_repeats_edges_half_each_side():
    x = np.arange(3, dtype=np.float32)[:, None] + 1
    padded = pad_chunk(x, 8)
    # (8 - 3) // 2 = 2 copies of the first frame on the left, 3 of the last on the right.
    assert padded[:, 0].tolist() == [1, 1, 1, 2, 3, 3, 3, 3]
    assert pad_chunk(x, 3) is x


@pytest.mark.parametrize("window, shift", [(40, 15), (20, 7)])
def test_window_mean_graph_equals_window_extraction(window, shift):
    """WindowMean (export's graph) and its trace, run at other lengths, give what extraction
    gives: windows every shift frames, the last moved back to the end, one short window below a
    window's length, windows under 25 frames padded, the unit-length mean re-normalised."""
    torch.manual_seed(0)
    model = build_model(parse_config({"model": {"type": "gru", "feat_dim": 8, "hidden": 16, "num_layers": 1,
                                                "embed_dim": 8}}).model).eval()
    graph = WindowMean(model, window, shift, 25)
    with torch.no_grad():
        traced = torch.jit.trace(graph, torch.randn(2, 3 * window + 5, 8))
    rng = np.random.default_rng(0)
    for n in (3, 19, window, window + 1, window + shift, 2 * window + 3, 100):
        feats = rng.standard_normal((n, 8)).astype(np.float32)
        ref = dict(embed_utterances(model, [("u", feats)], torch.device("cpu"), windows=(window, shift)))["u"]
        with torch.no_grad():
            for g in (graph, traced):
                assert np.abs(g(torch.from_numpy(feats)[None])[0].numpy() - ref).max() < 1e-6, n


def test_long_utterances_average_chunks_weighted_by_length():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((250, 4)).astype(np.float32)
    (utt, emb), = embed_utterances(MeanModel(), [("u", x)], torch.device("cpu"), max_chunk_frames=100,
                                   min_chunk_frames=80)
    # Chunks 0-99, 100-199 (weight 100 each) and 200-249 padded to 80 frames (weight 50).
    tail = pad_chunk(x[200:], 80).mean(0)
    expect = (100 * x[:100].mean(0) + 100 * x[100:200].mean(0) + 50 * tail) / 250
    assert utt == "u" and np.allclose(emb, expect, atol=1e-5)


def test_batching_never_changes_an_embedding():
    torch.manual_seed(0)
    model = build_model({"type": "xvector", "feat_dim": 10, "channels": 16, "stats_channels": 24,
                         "embed_dim": 8, "hidden_dim": 8}).eval()
    rng = np.random.default_rng(1)
    items = [(f"u{i}", rng.standard_normal((n, 10)).astype(np.float32)) for i, n in enumerate([40, 40, 12, 300, 40, 90])]
    together = dict(embed_utterances(model, items, torch.device("cpu"), max_chunk_frames=100))
    alone = {u: dict(embed_utterances(model, [(u, x)], torch.device("cpu"), max_chunk_frames=100))[u] for u, x in items}
    small = dict(embed_utterances(model, items, torch.device("cpu"), max_chunk_frames=100, batch_frames=50))
    assert sorted(together) == sorted(alone)
    for u in alone:
        assert np.allclose(together[u], alone[u], atol=1e-5)
        assert np.allclose(small[u], alone[u], atol=1e-5)


def test_batches_bound_frames_padding_included():
    from sid.extract import _batches

    rng = np.random.default_rng(2)
    lengths = [int(n) for n in rng.integers(20, 900, 300)] + [1500]
    for padded in (True, False):
        batches = list(_batches(lengths, 2000, padded))
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for b in batches:
            longest = max(lengths[i] for i in b)
            assert len(b) == 1 or len(b) * longest <= 2000
            assert padded or len({lengths[i] for i in b}) == 1
    # Sorted by length, padded batches hold many chunks of neighbouring lengths.
    assert len(list(_batches(lengths, 2000, True))) < len(lengths) / 2


class Alone(torch.nn.Module):
    """The model without ``lengths``: the extractor then batches equal lengths only, so one
    utterance at a time means each chunk alone, unpadded (the reference)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.min_frames = model.min_frames

    def embed(self, x):
        return self.model.embed(x)


# Each architecture with every layer kind of the full-size configs, narrower to keep the test fast.
MODEL_TYPES = {
    "xvector": {"type": "xvector", "feat_dim": 30, "channels": 128, "stats_channels": 300},
    "ecapa_tdnn": {"type": "ecapa_tdnn", "feat_dim": 30, "channels": 128, "mfa_channels": 384},
    "resnet34": {"type": "resnet", "feat_dim": 30, "base_channels": 8, "num_blocks": [3, 4, 6, 3]},
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def mixed_utterances(corpus, tmp_path_factory):
    """10 real utterances (prepared 30-dim fbank) of 10 different lengths, longest first."""
    feats = corpus_features(corpus, tmp_path_factory.mktemp("extract_feats"))
    table = kaldiio.load_scp(str(feats / "train" / "feats.scp"))
    by_len = {}
    for utt in sorted(table):
        by_len.setdefault(table[utt].shape[0], utt)
    lengths = sorted(by_len)
    picked = [by_len[n] for n in lengths[::max(1, len(lengths) // 10)][:10]]
    return [(u, table[u]) for u in sorted(picked, key=lambda u: -table[u].shape[0])]


def _randomise_batchnorm(model):
    """Batch norm statistics and affine terms as training leaves them (nonzero shifts), so
    padding would not stay zero through a layer and any leak into valid frames shows."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            if m.affine:
                m.weight.data.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.data.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
    return model.eval()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(MODEL_TYPES))
def test_padded_batches_equal_one_at_a_time_on_real_speech(mixed_utterances, name, device):
    torch.manual_seed(0)
    model = _randomise_batchnorm(build_model(MODEL_TYPES[name])).to(device)
    dev = torch.device(device)
    lengths = [x.shape[0] for _, x in mixed_utterances]
    assert len(set(lengths)) == len(lengths) >= 10 and max(lengths) > 2 * min(lengths)
    # Long utterances are cut into 300-frame chunks and a last shorter one; chunks under 120
    # frames are edge-padded; 2500 frames per batch make several batches of mixed lengths.
    opts = dict(max_chunk_frames=300, min_chunk_frames=120)
    alone = {u: dict(embed_utterances(Alone(model), [(u, x)], dev, **opts))[u] for u, x in mixed_utterances}
    batched = dict(embed_utterances(model, mixed_utterances, dev, batch_frames=2500, **opts))
    assert sorted(batched) == sorted(alone)
    for u, ref in alone.items():
        scale = np.abs(ref).max()
        assert np.abs(batched[u] - ref).max() <= 1e-4 * scale, (u, np.abs(batched[u] - ref).max(), scale)

    # The check has teeth: a chunk padded with zeros and embedded without its length
    # differs from its embedding alone.
    x = torch.from_numpy(mixed_utterances[0][1][:150].copy()).to(dev)
    pad = torch.cat([x, torch.zeros(60, x.shape[1], device=dev)])[None]
    with torch.no_grad():
        ref = model.embed(x[None])
        assert not torch.allclose(model.embed(pad), ref, atol=1e-3)
        assert torch.allclose(model.embed(pad, torch.tensor([150], device=dev)), ref, atol=1e-4 * float(ref.abs().max()))


@pytest.fixture(scope="module")
def trained(corpus, repo, tmp_path_factory):
    """A small x-vector trained 2 epochs on the corpus subset (in-process)."""
    from sid.train.trainer import TrainOptions, Trainer

    feats = corpus_features(corpus, tmp_path_factory.mktemp("extract_feats"))
    cfg = yaml.safe_load((repo / "conf" / "xvector_small.yaml").read_text())
    cfg["training"]["epochs"] = 2
    cfg = parse_config(cfg)
    exp = tmp_path_factory.mktemp("extract_exp") / "xvector"
    # Validation on the way: held-out utterances, and an EER on trials among them.
    utt2spk = dict(line.split() for line in (feats / "train" / "utt2spk").read_text().splitlines())
    utts = sorted(utt2spk)
    trials = exp.parent / "trials"
    trials.write_text("".join(f"{a} {b} {'target' if utt2spk[a] == utt2spk[b] else 'nontarget'}\n"
                              for a in utts[::10] for b in utts[5::10]))
    Trainer(str(feats / "train"), str(exp), cfg,
            TrainOptions(num_workers=0, progress=False, valid_interval=2, valid_utts=20, checkpoint_minutes=0.0005,
                         valid_data=str(feats / "train"), valid_trials=str(trials))).run()
    return feats, exp


def test_training_validation_and_tensorboard(trained):
    _, exp = trained
    log = (exp / "log" / "train.log").read_text()
    assert re.search(r"Validation after epoch 2: held-out loss [\d.]+, accuracy [\d.]+; EER [\d.]+% on ", log)
    assert "Validation after epoch 1" not in log     # --valid-interval 2
    # A fractional --checkpoint-minutes (30 ms here) checkpoints mid-epoch.
    assert re.search(r"Saved checkpoint .*last.pt \(epoch 1, batch [1-9]", log)
    assert list((exp / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_extract_embeddings_step(trained, sid_env, repo, tmp_path):
    feats, exp = trained
    out = tmp_path / "emb"
    cmd = ["bash", "steps/extract_embeddings.sh", "--nj", "2", str(exp), str(feats / "raw"), str(out)]
    res = subprocess.run(cmd, env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    emb = dict(kaldiio.load_scp(str(out / "xvector.scp")).items())
    utt2spk = dict(line.split() for line in (feats / "raw" / "utt2spk").read_text().splitlines())
    assert sorted(emb) == sorted(utt2spk) and next(iter(emb.values())).shape == (64,)

    # In-process CMN + VAD selection give the training features: same embeddings as on those.
    from sid.extract import load_model_dir
    model, _ = load_model_dir(exp, torch.device("cpu"))
    train = kaldiio.load_scp(str(feats / "train" / "feats.scp"))
    direct = dict(embed_utterances(model, [(u, train[u]) for u in sorted(emb)[:20]], torch.device("cpu")))
    for u, e in direct.items():
        assert np.allclose(emb[u], e, atol=1e-4), u

    spk = dict(kaldiio.load_scp(str(out / "spk_xvector.scp")).items())
    num_utts = dict(line.split() for line in (out / "num_utts.ark").read_text().splitlines())
    assert len(spk) == 20 and set(num_utts.values()) == {"10"}
    s0 = sorted(spk)[0]
    members = [u for u in emb if utt2spk[u] == s0]
    assert np.allclose(spk[s0], np.mean([emb[u] for u in members], axis=0), atol=1e-5)

    # Trained embeddings separate speakers: same-speaker cosine above different-speaker.
    keys = sorted(emb)
    x = np.stack([emb[k] for k in keys])
    x -= x.mean(axis=0)   # as the back-ends do before cosine scoring
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cos = x @ x.T
    same = np.array([[utt2spk[a] == utt2spk[b] for b in keys] for a in keys])
    off = ~np.eye(len(keys), dtype=bool)
    assert cos[same & off].mean() > cos[~same].mean() + 0.2

    # A rerun skips the finished jobs.
    stamp = (out / "xvector.1.scp").stat().st_mtime_ns
    res = subprocess.run(cmd, env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "xvector.1.scp").stat().st_mtime_ns == stamp
    assert "up to date" in (out / "log" / "extract.1.log").read_text()


def test_skip_done_redoes_a_job_made_otherwise(trained, sid_env, repo, tmp_path):
    """--skip-done keeps a job's output only when its record (<scp>.made_by: chunking options,
    model, config, features, VAD) is unchanged: other options or another model extract again."""
    feats, exp = trained
    model = tmp_path / "exp"
    model.mkdir()
    for name in ("config.yaml", "final.pt"):
        shutil.copy(exp / name, model / name)
    utts = (feats / "raw" / "feats.scp").read_text().splitlines()[:4]
    (tmp_path / "feats.scp").write_text("\n".join(utts) + "\n")
    scp = tmp_path / "x.scp"

    def extract(*opts):
        res = subprocess.run([sys.executable, "-m", "sid.bin.extract_embeddings", "--skip-done=true", *opts, str(model),
                              f"scp:{tmp_path}/feats.scp", f"scp:{feats}/raw/vad.scp", f"ark,scp:{tmp_path}/x.ark,{scp}"],
                             env=sid_env, capture_output=True, text=True, cwd=repo)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout + res.stderr, dict(kaldiio.load_scp(str(scp)).items())

    _, first = extract()
    out, again = extract()
    assert "up to date" in out
    out, chunked = extract("--max-chunk-frames=60")
    assert "+options max_chunk_frames=60" in out and "up to date" not in out
    assert not all(np.allclose(first[u], chunked[u]) for u in first)
    # Another model in the same files (retrained): extracted again.
    from sid.train import checkpoint
    ckpt = checkpoint.load(model / "final.pt")
    for v in ckpt["model"].values():
        if v.is_floating_point():
            v.add_(0.05 * torch.randn_like(v))
    checkpoint.save_atomic(ckpt, model / "final.pt")
    out, retrained = extract("--max-chunk-frames=60")
    assert f"input {model / 'final.pt'}" in out and "up to date" not in out
    assert not all(np.allclose(chunked[u], retrained[u]) for u in chunked)


def test_extract_tool_errors(trained, sid_env, repo, tmp_path):
    feats, exp = trained
    res = subprocess.run([sys.executable, "-m", "sid.bin.extract_embeddings", str(tmp_path), f"scp:{feats}/raw/feats.scp",
                          f"scp:{feats}/raw/vad.scp", f"ark:{tmp_path}/x.ark"], env=sid_env, capture_output=True,
                         text=True, cwd=repo)
    assert res.returncode == 1 and "config.yaml not found" in res.stderr
    res = subprocess.run([sys.executable, "-m", "sid.bin.extract_embeddings", "--use-gpu=maybe", str(exp),
                          f"scp:{feats}/raw/feats.scp", f"scp:{feats}/raw/vad.scp", f"ark:{tmp_path}/x.ark"],
                         env=sid_env, capture_output=True, text=True, cwd=repo)
    assert res.returncode == 1 and "--use-gpu" in res.stderr


def test_extract_truncated_archive_fails_naming_it(trained, sid_env, repo, tmp_path):
    from sid import kaldi_io

    feats, exp = trained
    utts = sorted(kaldi_io.ScpTable.open(str(feats / "raw" / "feats.scp")))[:3]
    raw = kaldi_io.random_access(f"scp:{feats}/raw/feats.scp")
    with kaldi_io.TableWriter(f"ark,scp:{tmp_path}/f.ark,{tmp_path}/f.scp") as w:
        for u in utts:
            w.write(u, raw[u])
    data = (tmp_path / "f.ark").read_bytes()
    (tmp_path / "f.ark").write_bytes(data[:len(data) - 100])   # the last utterance is cut short
    for rspec in (f"scp:{tmp_path}/f.scp", f"ark:{tmp_path}/f.ark"):
        out = f"ark,scp:{tmp_path}/x.ark,{tmp_path}/x.scp"
        res = subprocess.run([sys.executable, "-m", "sid.bin.extract_embeddings", str(exp), rspec,
                              f"scp:{feats}/raw/vad.scp", out], env=sid_env, capture_output=True, text=True, cwd=repo)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert re.search(rf"{tmp_path}/f.ark: truncated archive.*'{utts[-1]}'", res.stderr), res.stderr[-2000:]
        assert not (tmp_path / "x.ark").exists() and not (tmp_path / "x.scp").exists()


def test_exp_records_how_its_features_were_made(trained):
    """A user holding only the exp dir can tell how to make features for new audio."""
    from sid import provenance
    from sid.config import load_config
    from training_data import CMVN_OPTS, FBANK_CONF

    feats, exp = trained
    text = (exp / "config.yaml").read_text()
    assert text.startswith("# ") and "steps/make_<features.type>.sh" in text
    record = load_config(exp / "config.yaml", recorded=True).features
    assert (record.type, record.config, record.cmvn_opts) == ("fbank", FBANK_CONF, CMVN_OPTS)
    assert record.checksum == provenance.read_marker(feats / "raw")["options_md5"]
    assert "config: |" in text     # the feature config stays readable, one option a line
    assert load_config(exp / "config.yaml", recorded=True).train_data.num_utts == 200


def test_extraction_takes_cmn_from_the_exp(trained, tmp_path):
    """The CMN extraction applies is the one recorded from the training data (no YAML cmvn: block)."""
    from sid.extract import Extractor
    from sid.features.cmvn import apply_cmvn_sliding

    feats, exp = trained
    other = tmp_path / "exp"
    shutil.copytree(exp, other, ignore=shutil.ignore_patterns("models", "tensorboard", "log"))
    cfg = other / "config.yaml"
    cfg.write_text(cfg.read_text().replace("--cmn-window=300", "--cmn-window=50"))
    x = np.random.default_rng(0).standard_normal((400, 30)).astype(np.float32)
    got = Extractor(other, torch.device("cpu")).prepare("u", x, None)
    np.testing.assert_allclose(got, apply_cmvn_sliding(x, window=50, center=True), atol=1e-6)
    assert not np.allclose(got, apply_cmvn_sliding(x, window=300, center=True), atol=1e-3)
    cfg.write_text(cfg.read_text().replace("--cmn-window=50", "--cmn-windw=50"))
    with pytest.raises(SidError, match=f"invalid option --cmn-windw .*{cfg}"):
        Extractor(other, torch.device("cpu"))


def test_extraction_refuses_features_made_with_another_config(trained, sid_env, repo, tmp_path):
    from sid import provenance

    feats, exp = trained
    test = tmp_path / "test"
    shutil.copytree(feats / "raw", test)
    conf = tmp_path / "fbank40.conf"
    conf.write_text("--num-mel-bins=40\n--dither=0\n")
    provenance.write_record(test, "fbank", conf)
    out = tmp_path / "emb"
    res = subprocess.run(["bash", "steps/extract_embeddings.sh", "--nj", "1", str(exp), str(test), str(out)],
                         env=sid_env, capture_output=True, text=True, cwd=repo)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"{test}/.feats_done" in res.stderr and f"{exp}/config.yaml" in res.stderr
    assert not out.exists() or not list(out.glob("xvector*"))
    (test / ".feats_done").unlink()
    res = subprocess.run([sys.executable, "-m", "sid.bin.feature_record", "match", str(exp), str(test)],
                         env=sid_env, capture_output=True, text=True, cwd=repo)
    assert res.returncode == 1 and f"{test}/.feats_done not found" in res.stderr


def test_resume_with_other_data_or_settings_says_what_changed(trained, tmp_path):
    from sid.config import load_config
    from sid.train.trainer import TrainOptions, Trainer

    feats, exp = trained
    other = tmp_path / "exp"
    other.mkdir()
    shutil.copy(exp / "config.yaml", other)
    shutil.copy(exp / "spk2id", other)
    cfg = load_config(exp / "config.yaml", recorded=True)
    user_cfg = dataclasses.replace(cfg, num_classes=None, features=None, train_data=None)
    opts = TrainOptions(num_workers=0, progress=False, tensorboard=False)
    # Fewer utterances (as a larger --min-len leaves): stop, naming what changed.
    fewer = tmp_path / "fewer"
    shutil.copytree(feats / "train", fewer)
    lines = (fewer / "feats.scp").read_text().splitlines()
    (fewer / "feats.scp").write_text("\n".join(lines[::2]) + "\n")
    with pytest.raises(SidError, match=r"train_data.num_utts: 200 -> 100.*Use a new exp dir"):
        Trainer(str(fewer), str(other), user_cfg, opts)
    # Another setting: named with its old and new value.
    changed = dataclasses.replace(user_cfg, optim=dataclasses.replace(user_cfg.optim, lr=0.5))
    with pytest.raises(SidError, match=r"optim.lr: 0.05 -> 0.5"):
        Trainer(str(feats / "train"), str(other), changed, opts)
    # Loader augmentation of audio chunks asked of a features source: refused (not silently skipped).
    for aug in ({"speed_perturb": "speakers"}, {"aug_prob": 0.5}):
        asked = dataclasses.replace(user_cfg, data=dataclasses.replace(user_cfg.data, **aug))
        with pytest.raises(SidError, match=r"augment chunks of audio \(data.source: audio\)"):
            Trainer(str(feats / "train"), str(tmp_path / "aug_exp"), asked, opts)
    # Training data that does not record how its features were made is refused.
    (fewer / "cmvn_opts").unlink()
    with pytest.raises(SidError, match=f"{fewer}/cmvn_opts not found"):
        Trainer(str(fewer), str(tmp_path / "new_exp"), user_cfg, opts)
