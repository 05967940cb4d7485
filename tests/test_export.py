"""sid.bin.export_model: the ONNX graph, run by onnxruntime in a process without torch, gives
the PyTorch embeddings of real utterances (max |diff| <= 1e-4) and the same EER on a trial
list; its int8 quantisation is smaller and close; the TorchScript file gives them too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sid import Embedder
from sid.metrics import compute_eer

sys.path.insert(0, str(Path(__file__).parent))
from test_embedder import write_exp  # noqa: E402
from training_data import model_with_moved_norms  # noqa: E402

pytest.importorskip("onnxruntime")

NUM_SPK, UTT_PER_SPK = 4, 3
NUM_WESPEAKER = 4   # utterances through the (bigger) WeSpeaker ResNet
NUM_RESEMBLYZER = 4  # and through Resemblyzer's LSTM


@pytest.fixture(scope="module")
def prepared(corpus, repo, tmp_path_factory):
    """The exp, and (utt, speaker, prepared features) of a few real utterances."""
    exp = write_exp(tmp_path_factory.mktemp("export") / "exp", repo, seed=1)
    e = Embedder.from_exp(exp, device="no")
    spk2utt = [line.split() for line in (corpus / "train" / "spk2utt").read_text().splitlines()][:NUM_SPK]
    wav = dict(line.split(maxsplit=1) for line in (corpus / "train" / "wav.scp").read_text().splitlines())
    items = []
    for spk, *utts in spk2utt:
        for utt in sorted(utts)[:UTT_PER_SPK]:
            samples, sr = e.read(str(corpus / wav[utt]), utt)
            items.append((utt, spk, e.features(samples, sr, utt, int16_range=True)))
    ref = dict(e.extractor.embed((u, f) for u, _, f in items))
    return exp, items, np.stack([ref[u] for u, _, _ in items])


def _eer(emb: np.ndarray, spks: list[str]) -> float:
    tgt, non = [], []
    for i, j in combinations(range(len(spks)), 2):
        s = emb[i] @ emb[j] / np.linalg.norm(emb[i]) / np.linalg.norm(emb[j])
        (tgt if spks[i] == spks[j] else non).append(s)
    return compute_eer(np.array(tgt), np.array(non))[0]


def test_onnx_matches_pytorch_without_torch(prepared, repo, sid_env, tmp_path):
    from sid.bin.export_model import quantize_int8

    exp, items, ref = prepared
    out = tmp_path / "model.onnx"
    res = subprocess.run([sys.executable, "-m", "sid.bin.export_model", "--format", "onnx", str(exp), str(out)],
                         env=sid_env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr
    side = yaml.safe_load((tmp_path / "model.onnx.frontend.yaml").read_text())
    assert side["features"]["type"] == "mfcc" and "--num-ceps=30" in side["features"]["config"]
    int8 = tmp_path / "int8.onnx"
    int8.write_bytes(out.read_bytes())
    quantize_int8(int8)
    np.savez(tmp_path / "feats.npz", **{f"u{i}": f for i, (_, _, f) in enumerate(items)})
    # Each utterance alone, at its own length (dynamic frames axis); torch must stay unloaded.
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import onnxruntime as ort
        feats = np.load({str(tmp_path / 'feats.npz')!r})
        for name in ("model", "int8"):
            session = ort.InferenceSession({str(tmp_path)!r} + f"/{{name}}.onnx")
            emb = [session.run(None, {{"feats": feats[f"u{{i}}"][None]}})[0][0] for i in range({len(items)})]
            np.save({str(tmp_path)!r} + f"/{{name}}.npy", np.stack(emb))
        assert "torch" not in sys.modules
    """)
    res = subprocess.run([sys.executable, "-c", script], env=sid_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    onnx_emb = np.load(tmp_path / "model.npy")
    assert len({f.shape[0] for _, _, f in items}) > 1
    assert np.abs(onnx_emb - ref).max() <= 1e-4
    spks = [s for _, s, _ in items]
    assert _eer(onnx_emb, spks) == _eer(ref, spks)
    # int8 weights: a smaller file whose embeddings point where the float ones do.
    q = np.load(tmp_path / "int8.npy")
    assert int8.stat().st_size < 0.8 * out.stat().st_size
    cos = np.einsum("ij,ij->i", q, ref) / np.linalg.norm(q, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99 and np.abs(q - ref).max() > 1e-6


def test_torchscript_matches_pytorch(prepared, tmp_path):
    from sid.bin.export_model import export

    exp, items, ref = prepared
    out = tmp_path / "model.pt"
    export(exp, out, "torchscript")
    model = torch.jit.load(str(out))
    with torch.no_grad():
        emb = np.stack([model(torch.from_numpy(f)[None])[0].numpy() for _, _, f in items])
    assert np.abs(emb - ref).max() <= 1e-4


def test_export_errors(repo, sid_env, tmp_path):
    res = subprocess.run([sys.executable, "-m", "sid.bin.export_model", "--format", "tflite", str(tmp_path),
                          str(tmp_path / "m")], env=sid_env, capture_output=True, text=True, cwd=repo)
    assert res.returncode != 0 and "invalid choice: 'tflite'" in res.stderr
    res = subprocess.run([sys.executable, "-m", "sid.bin.export_model", "--format", "onnx", str(tmp_path),
                          str(tmp_path / "m.onnx")], env=sid_env, capture_output=True, text=True, cwd=repo)
    assert res.returncode == 1 and "config.yaml not found" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "m.onnx").exists()


# -- waveform in: the front-end in the graph ------------------------------------------------------------
def audio_exp(exp: Path) -> Path:
    """A small ResNetSE trained from audio as steps/train_xvector.sh records it (voxceleb_trainer's
    log-mel front-end, the utterance mean subtracted at extraction), random weights."""
    from sid.config import FeaturesRecord, parse_config
    from sid.provenance import frontend_record_text, options_md5
    from sid.train import checkpoint

    cfg = parse_config({"frontend": {"type": "vt_mel", "num_mel_bins": 40},
                        "model": {"type": "resnet_se", "variant": "L", "feat_dim": 40, "base_channels": 8,
                                  "num_blocks": [1, 1, 1, 1], "embed_dim": 16}})
    text = frontend_record_text(cfg.frontend)
    cfg.features = FeaturesRecord("frontend", text, options_md5(text), "", source="audio")
    cfg.num_classes = 10
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    model = model_with_moved_norms(cfg.model, 0)
    checkpoint.save_atomic({"model": model.state_dict()}, exp / "final.pt")
    return exp


def wespeaker_exp(tmp: Path) -> Path:
    """An imported WeSpeaker ResNet18 with random weights (Kaldi fbank 80, utterance CMN); its
    embedding layer scaled so that embeddings are of order one, as trained ones are."""
    from test_import_model import save, wespeaker_resnet34_state

    from sid.pretrained import import_checkpoint

    state = wespeaker_resnet34_state(blocks=(2, 2, 2, 2))
    state["seg_1.weight"] *= 1e-3
    state["seg_1.bias"] *= 1e-3
    (tmp / "config.yaml").write_text("model: ResNet18\nmodel_args:\n  feat_dim: 80\n  embed_dim: 256\n")
    import_checkpoint("wespeaker", save(state, tmp / "avg_model.pt"), tmp / "config.yaml", tmp / "exp")
    return tmp / "exp"


GRU = {"type": "gru", "feat_dim": 40, "hidden": 32, "num_layers": 2, "embed_dim": 16}
GE2E = {"type": "dvector", "feat_dim": 40, "hidden": 48, "num_layers": 2, "proj_dim": 16, "embed_dim": 16}


def windowed_exp(exp: Path, model: dict, windows: bool = True) -> Path:
    """A recurrent model trained from audio as steps/train_xvector.sh records it (conf/gru_embedder.yaml
    and conf/dvector_ge2e.yaml smaller: Kaldi fbank front-end, the utterance mean subtracted and no
    dither at extraction, the mean of 1.6 s windows every 0.8 s, or without ``windows`` the whole
    utterance at once), random weights."""
    from sid.config import FeaturesRecord, parse_config
    from sid.provenance import frontend_record_text, options_md5
    from sid.train import checkpoint

    cfg = parse_config({"frontend": {"type": "fbank", "num_mel_bins": 40},
                        "model": model, "extract": {"chunking": "windows", "window_frames": 160, "window_shift": 80}
                        if windows else {"chunking": "kaldi"}})
    text = frontend_record_text(cfg.frontend)
    cfg.features = FeaturesRecord("frontend", text, options_md5(text), "", source="audio")
    cfg.num_classes = 10
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    checkpoint.save_atomic({"model": model_with_moved_norms(cfg.model, 0).state_dict()}, exp / "final.pt")
    return exp


def resemblyzer_exp(tmp: Path) -> Path:
    """An imported Resemblyzer (random weights): its trimmed mel, 1.6 s partials every 77 frames."""
    from test_import_model import resemblyzer_state, save

    from sid.pretrained import import_checkpoint

    import_checkpoint("resemblyzer", save({"model_state": resemblyzer_state()}, tmp / "r.pt"), None, tmp / "rexp")
    return tmp / "rexp"


@pytest.fixture(scope="module")
def audio(corpus):
    """(utt, speaker, samples in the int16 range) of a few real utterances."""
    from sid.data.audio import read_audio

    spk2utt = [line.split() for line in (corpus / "train" / "spk2utt").read_text().splitlines()][:NUM_SPK]
    wav = dict(line.split(maxsplit=1) for line in (corpus / "train" / "wav.scp").read_text().splitlines())
    return [(utt, spk, read_audio(str(corpus / wav[utt]), utt=utt)[0])
            for spk, *utts in spk2utt for utt in sorted(utts)[:UTT_PER_SPK]]


def _onnx_embeddings_without_torch(tmp: Path, inputs: dict, runs: dict, batched: str, sid_env) -> dict:
    """Embeddings from the ONNX files ``tmp/<name>.onnx`` run in onnxruntime in a process that
    never imports torch: ``runs`` maps each name to (input name, key prefix, count), whose inputs
    ``inputs[f"{prefix}{i}"]`` run one at a time; ``batched`` also runs ``inputs["batch"]``
    (a waveform batch), returned as ``"batch"``."""
    np.savez(tmp / "inputs.npz", **inputs)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import onnxruntime as ort
        inputs = np.load({str(tmp / 'inputs.npz')!r})
        for name, (input, key, count) in {runs!r}.items():
            session = ort.InferenceSession({str(tmp)!r} + f"/{{name}}.onnx")
            emb = [session.run(None, {{input: inputs[f"{{key}}{{i}}"][None]}})[0][0] for i in range(count)]
            np.save({str(tmp)!r} + f"/{{name}}.npy", np.stack(emb))
            if name == {batched!r}:
                np.save({str(tmp)!r} + "/batch.npy", session.run(None, {{"waveform": inputs["batch"]}})[0])
        assert "torch" not in sys.modules
    """)
    res = subprocess.run([sys.executable, "-c", script], env=sid_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return {name: np.load(tmp / f"{name}.npy") for name in [*runs, "batch"]}


def test_waveform_onnx_matches_embedder_without_torch(audio, sid_env, tmp_path):
    """Waveform in, embedding out, in onnxruntime without torch, equal to sid.Embedder's
    embeddings (max |diff| <= 1e-4) for a model trained from audio and an imported WeSpeaker
    model; any length, a batch of equal lengths; the same EER; int8 with the front-end float."""
    from sid.bin.export_model import export, quantize_int8

    exps = {"trained": audio_exp(tmp_path / "trained"), "wespeaker": wespeaker_exp(tmp_path)}
    for name, exp in exps.items():
        assert export(exp, tmp_path / f"{name}.onnx", "onnx") == "waveform"
        side = yaml.safe_load((tmp_path / f"{name}.onnx.frontend.yaml").read_text())
        assert side["input"]["name"] == "waveform" and side["input"]["sample_rate"] == 16000
        assert "int16 range" in side["input"]["scale"] and side["vad"] is None
    int8 = tmp_path / "trained.int8.onnx"
    int8.write_bytes((tmp_path / "trained.onnx").read_bytes())
    quantize_int8(int8)
    samples = {f"u{i}": s for i, (_, _, s) in enumerate(audio)}
    # (The WeSpeaker ResNet reads the first 2 s: its speed, not its front-end, is at stake.)
    samples.update({f"w{i}": s[:32000] for i, (_, _, s) in enumerate(audio[:NUM_WESPEAKER])})
    short = min(len(s) for s in samples.values())
    samples["batch"] = np.stack([audio[0][2][:short], audio[1][2][:short]])
    runs = {"trained": ("waveform", "u", len(audio)), "wespeaker": ("waveform", "w", NUM_WESPEAKER),
            "trained.int8": ("waveform", "u", len(audio))}
    out = _onnx_embeddings_without_torch(tmp_path, samples, runs, "trained", sid_env)
    assert len({len(s) for _, _, s in audio}) > 1
    spks = [s for _, s, _ in audio]
    for name, exp in exps.items():
        e = Embedder.from_exp(exp, device="no")
        key, count = ("w", NUM_WESPEAKER) if name == "wespeaker" else ("u", len(audio))
        ref = np.stack([e.embed(samples[f"{key}{i}"], 16000, utt, int16_range=True)
                        for i, (utt, _, _) in enumerate(audio[:count])])
        onnx_emb = out[name]
        assert np.abs(ref).max() > 0.1 and np.abs(onnx_emb - ref).max() <= 1e-4, name
        if name == "trained":
            assert _eer(onnx_emb, spks) == _eer(ref, spks)
            batch = out["batch"]
            cut = [e.embed(audio[i][2][:short], 16000, int16_range=True) for i in (0, 1)]
            assert np.abs(batch - np.stack(cut)).max() <= 1e-4
            q = out["trained.int8"]
            cos = np.einsum("ij,ij->i", q, ref) / np.linalg.norm(q, axis=1) / np.linalg.norm(ref, axis=1)
            assert cos.min() > 0.99 and np.abs(q - ref).max() > 1e-6


def test_windowed_onnx_matches_embedder_without_torch(audio, sid_env, tmp_path):
    """Models embedded by windows, the windows and their mean in the graph: in onnxruntime
    without torch, equal to sid.Embedder (max |diff| <= 1e-4) at each utterance's length, for a
    GRU d-vector trained from audio (waveform in, features in, a batch, the same EER, int8), a
    GE2E d-vector (an LSTM with projections; features in, and embedding whole utterances, waveform
    in) and an imported Resemblyzer (the samples its VAD trimmed in)."""
    from sid.bin.export_model import export, quantize_int8
    from sid.features.frontends import ResemblyzerMel

    gru, ge2e = windowed_exp(tmp_path / "gru", GRU), windowed_exp(tmp_path / "ge2e", GE2E)
    rz = resemblyzer_exp(tmp_path)
    whole = windowed_exp(tmp_path / "whole", GE2E, windows=False)
    assert export(whole, tmp_path / "whole.onnx", "onnx") == "waveform"
    assert export(gru, tmp_path / "gru.onnx", "onnx") == "waveform"
    assert export(gru, tmp_path / "gru_feats.onnx", "onnx", input="features") == "feats"
    assert export(ge2e, tmp_path / "ge2e.onnx", "onnx", input="features") == "feats"
    assert export(rz, tmp_path / "rz.onnx", "onnx") == "trimmed_waveform"
    side = yaml.safe_load((tmp_path / "rz.onnx.frontend.yaml").read_text())
    assert "WebRTC's VAD" in side["input"]["what"] and "in the graph" in side["chunking"]
    (tmp_path / "gru.int8.onnx").write_bytes((tmp_path / "gru.onnx").read_bytes())
    quantize_int8(tmp_path / "gru.int8.onnx")
    e_gru, e_ge2e, e_rz = (Embedder.from_exp(x, device="no") for x in (gru, ge2e, rz))
    inputs = {f"w{i}": s for i, (_, _, s) in enumerate(audio)}
    inputs.update({f"f{i}": e_gru.features(s, 16000, utt, int16_range=True) for i, (utt, _, s) in enumerate(audio)})
    inputs.update({f"r{i}": ResemblyzerMel().trim(s) for i, (_, _, s) in enumerate(audio[:NUM_RESEMBLYZER])})
    inputs.update({f"g{i}": e_ge2e.features(s, 16000, utt, int16_range=True)
                   for i, (utt, _, s) in enumerate(audio[:NUM_RESEMBLYZER])})
    short = min(len(s) for _, _, s in audio)
    inputs["batch"] = np.stack([audio[0][2][:short], audio[1][2][:short]])
    runs = {"gru": ("waveform", "w", len(audio)), "gru.int8": ("waveform", "w", len(audio)),
            "gru_feats": ("feats", "f", len(audio)), "rz": ("trimmed_waveform", "r", NUM_RESEMBLYZER),
            "ge2e": ("feats", "g", NUM_RESEMBLYZER), "whole": ("waveform", "w", NUM_RESEMBLYZER)}
    out = _onnx_embeddings_without_torch(tmp_path, inputs, runs, "gru", sid_env)
    ref = np.stack([e_gru.embed(s, 16000, utt, int16_range=True) for utt, _, s in audio])
    # (several windows, one moved back to the end: not all lengths a multiple of the shift)
    assert len({len(s) // 160 % 80 for _, _, s in audio}) > 1 and max(len(s) for _, _, s in audio) > 3 * 16000
    for name in ("gru", "gru_feats"):
        assert np.abs(out[name] - ref).max() <= 1e-4, name
    spks = [s for _, s, _ in audio]
    assert _eer(out["gru"], spks) == _eer(ref, spks)
    cut = [e_gru.embed(audio[i][2][:short], 16000, int16_range=True) for i in (0, 1)]
    assert np.abs(out["batch"] - np.stack(cut)).max() <= 1e-4
    q = out["gru.int8"]
    assert np.einsum("ij,ij->i", q, ref).min() > 0.99 and np.abs(q - ref).max() > 1e-6
    for name, e in (("rz", e_rz), ("ge2e", e_ge2e), ("whole", Embedder.from_exp(whole, device="no"))):
        ref = np.stack([e.embed(s, 16000, utt, int16_range=True) for utt, _, s in audio[:NUM_RESEMBLYZER]])
        assert np.abs(out[name] - ref).max() <= 1e-4, name


def test_waveform_torchscript_matches_embedder(audio, tmp_path):
    """The TorchScript file of a whole-utterance and of a window-averaging model, waveform in."""
    from sid.bin.export_model import export

    for exp in (audio_exp(tmp_path / "exp"), windowed_exp(tmp_path / "gru", GRU)):
        assert export(exp, tmp_path / "model.pt", "torchscript") == "waveform"
        model = torch.jit.load(str(tmp_path / "model.pt"))
        e = Embedder.from_exp(exp, device="no")
        for utt, _, s in audio[:3]:
            with torch.no_grad():
                emb = model(torch.from_numpy(s)[None])[0].numpy()
            assert np.abs(emb - e.embed(s, 16000, utt, int16_range=True)).max() <= 1e-4, exp


def test_input_choice(prepared, repo, sid_env, tmp_path):
    """auto: features in where the front-end cannot be in the graph, the reason recorded;
    --input waveform then an error naming it; --input features for a waveform-capable exp."""
    from sid.config import load_config
    from sid.embedder import options_from_text
    from sid.errors import SidError
    from sid.features.compute import Fbank
    from sid.features.graph import graph_obstacle, waveform_frontend
    from sid.features.options import FbankOptions

    exp, _, _ = prepared
    res = subprocess.run([sys.executable, "-m", "sid.bin.export_model", "--format", "onnx", "--input", "waveform",
                          str(exp), str(tmp_path / "m.onnx")], env=sid_env, capture_output=True, text=True, cwd=repo)
    assert res.returncode == 1 and "--input waveform is not possible" in res.stderr and "energy VAD" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "m.onnx").exists()
    # Trained from audio on conf/fbank80.conf (Kaldi's dither in training), extracted without dither
    # (extract.dither: 0): a function of the samples alone, exportable waveform in.
    plain = write_exp(tmp_path / "plain", repo, source="audio")
    record = load_config(plain / "config.yaml", recorded=True).features
    assert options_from_text(FbankOptions, record.config, "test").frame_opts.dither == 1.0
    assert graph_obstacle(load_config(plain / "config.yaml", recorded=True)) is None
    # An exp recording a dither at extraction: its noise, seeded by the utterance id, is no graph.
    dithered = write_exp(tmp_path / "dithered", repo, source="audio")
    record = yaml.safe_load((dithered / "config.yaml").read_text())
    record["extract"]["dither"] = 1.0
    (dithered / "config.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    cfg = load_config(dithered / "config.yaml", recorded=True)
    assert "dithers the Kaldi fbank (extract.dither: 1)" in graph_obstacle(cfg)
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 1000
    for exp, same in ((plain, True), (dithered, False)):
        e = Embedder.from_exp(exp, device="no")
        a, b = (e.features(x, 16000, utt, int16_range=True) for utt in ("a", "b"))
        assert np.array_equal(a, b) == same
    # Forced (--input waveform): the fbank without its dither, less the utterance mean.
    with pytest.raises(SidError, match="dithers"):
        waveform_frontend(cfg)
    opts = options_from_text(FbankOptions, cfg.features.config + "--dither=0\n", "test")
    ref = Fbank(opts).compute(x)
    with torch.no_grad():
        ours = waveform_frontend(cfg, undithered=True)(torch.from_numpy(x)[None])[0].numpy()
    assert np.abs(ours - (ref - ref.mean(0))).max() < 1e-3
    assert graph_obstacle(load_config(audio_exp(tmp_path / "a") / "config.yaml", recorded=True)) is None
