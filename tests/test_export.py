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

pytest.importorskip("onnxruntime")

NUM_SPK, UTT_PER_SPK = 4, 3


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
