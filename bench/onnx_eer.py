"""EER and size of an exp's ONNX export and of its int8 quantisation, beside PyTorch's.

Usage: python bench/onnx_eer.py <exp> <data-dir> <trials> [auto|waveform|features]
 e.g.: python bench/onnx_eer.py egs/speechocean762/exp/ft_resemblyzer egs/speechocean762/data/test \\
         egs/speechocean762/data/test/trials/test
Every utterance of the trials (<data-dir>/wav.scp) is embedded three ways: by sid.Embedder
(the PyTorch model, as the recipe extracts it), by the graph of
`python -m sid.bin.export_model --format onnx --input <last argument, default auto>` and by the
same with `--quantize int8`, both in onnxruntime. A features-in graph gets the features
sid.Embedder.features prepares, cut into the exp's chunks (sid.extract.embed_utterances), or
whole where the graph cuts the exp's windows itself (extract.chunking: windows); a waveform-in
graph gets each utterance's samples (int16 range) whole, Resemblyzer's ("trimmed_waveform")
those its VAD leaves (ResemblyzerMel.trim). Prints, for each, the EER
of plain cosine scoring on the trials, the largest difference of its embeddings to PyTorch's,
and the model file's size.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from sid import Embedder
from sid.backend.scoring import read_trials
from sid.bin.export_model import export, quantize_int8
from sid.data.table import read_dict
from sid.extract import embed_utterances
from sid.metrics import compute_eer


class OnnxModel(torch.nn.Module):
    """An exported graph in onnxruntime, with the interface sid.extract embeds through."""

    def __init__(self, path: Path, min_frames: int):
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path))
        self.min_frames = min_frames

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"feats": x.numpy()})[0])


def main() -> None:
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    exp, data, trials_path = sys.argv[1:4]
    wanted = sys.argv[4] if len(sys.argv) == 5 else "auto"
    trials = read_trials(trials_path, need_labels=True)
    wav = read_dict(Path(data) / "wav.scp")
    utts = sorted(set(trials.keys1) | set(trials.keys2))
    e = Embedder.from_exp(exp, device="no")
    ex = e.extractor
    audio, prepared = {}, []
    for utt in utts:
        samples, sr = e.read(wav[utt], utt)
        if sr != e.sample_rate:
            sys.exit(f"{wav[utt]}: {sr} Hz, the model's rate is {e.sample_rate} Hz")
        audio[utt] = np.asarray(samples, dtype=np.float32)
        prepared.append((utt, e.features(samples, sr, utt, where=wav[utt], int16_range=True)))
    trim = getattr(getattr(ex.audio_frontend, "module", None), "trim", None)   # (Resemblyzer's VAD)

    def embed(model) -> dict[str, np.ndarray]:
        return dict(embed_utterances(model, prepared, torch.device("cpu"), ex.max_chunk_frames, ex.min_chunk_frames,
                                     ex.batch_frames, ex.windows))

    def embed_whole(path: Path, kind: str) -> dict[str, np.ndarray]:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path))
        inputs = {"waveform": audio, "trimmed_waveform": {u: trim(x) for u, x in audio.items()} if trim else None,
                  "feats": dict(prepared)}[kind]
        return {u: session.run(None, {kind: x[None]})[0][0] for u, x in inputs.items()}

    def eer(emb: dict[str, np.ndarray]) -> float:
        norm = {u: v / np.linalg.norm(v) for u, v in emb.items()}
        scores = np.array([norm[a] @ norm[b] for a, b in zip(trials.keys1, trials.keys2)])
        return 100 * compute_eer(scores[trials.labels], scores[~trials.labels])[0]

    ref = embed(ex.model)
    print(f"{len(utts)} utterances, {len(trials.keys1)} trials of {trials_path}")
    print(f"pytorch      EER {eer(ref):.4f}%")
    with tempfile.TemporaryDirectory() as d:
        onnx_path, int8_path = Path(d) / "model.onnx", Path(d) / "model.int8.onnx"
        kind = export(exp, onnx_path, "onnx", input=wanted)
        shutil.copy(onnx_path, int8_path)
        quantize_int8(int8_path)
        print(f"graphs: {kind} in")
        min_frames = max(getattr(ex.model, "min_frames", 1), 25)
        for name, path in (("onnx", onnx_path), ("onnx int8", int8_path)):
            whole = kind != "feats" or ex.windows is not None
            emb = embed_whole(path, kind) if whole else embed(OnnxModel(path, min_frames))
            diff = max(float(np.abs(emb[u] - ref[u]).max()) for u in utts)
            print(f"{name:<12} EER {eer(emb):.4f}%  max |diff| {diff:.2e}  {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
