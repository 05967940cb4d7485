"""sid.features.graph: each front-end's waveform graph gives what extraction computes from
the same samples (Kaldi's fbank without dither, voxceleb_trainer's, SpeechBrain's and
Resemblyzer's mel, raw waveform rows), at any length, in torch and in onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sid.embedder import options_from_text
from sid.features.compute import Fbank
from sid.features.frontends import ResemblyzerMel, SBFbank, VTMel, Waveform, frontend_features
from sid.features.graph import (KaldiFbankGraph, ResemblyzerGraph, SBFbankGraph, UtteranceFrontend, VTMelGraph,
                               WaveformGraph)
from sid.features.options import FbankOptions

KALDI_CONFIGS = ("--num-mel-bins=80\n--snip-edges=false\n",                           # conf/fbank80.conf
                 "--num-mel-bins=80\n--window-type=hamming\n--snip-edges=true\n",     # WeSpeaker's
                 "--num-mel-bins=40\n--use-energy=true\n--preemphasis-coefficient=0\n--window-type=hanning\n")


@pytest.fixture(scope="module")
def speech(corpus) -> np.ndarray:
    from sid.data.audio import read_audio

    utt, path = (corpus / "train" / "wav.scp").read_text().splitlines()[0].split(maxsplit=1)
    return read_audio(str(corpus / path), utt=utt)[0]


def _graphs():
    """(name, graph, reference: samples -> features)."""
    out = []
    for text in KALDI_CONFIGS:
        opts = options_from_text(FbankOptions, text + "--dither=0\n", "test")
        out.append((text.split()[-1], KaldiFbankGraph(opts), lambda x, o=opts: Fbank(o).compute(x, "u")))
    for m, g in ((VTMel(40), VTMelGraph), (VTMel(64, preemphasis=0.0), VTMelGraph), (SBFbank(80), SBFbankGraph),
                 (Waveform(160), WaveformGraph)):
        out.append((type(m).__name__, g(m), lambda x, m=m: frontend_features(m, x, kaldi_count=False)))
    # (Resemblyzer's graph reads the samples its VAD trimmed: these stand for them.)
    m = ResemblyzerMel()
    out.append(("ResemblyzerMel", ResemblyzerGraph(m), lambda x: _resemblyzer_mel(m, x)))
    return out


def _resemblyzer_mel(m: ResemblyzerMel, trimmed: np.ndarray) -> np.ndarray:
    wav, frames = m.pad(trimmed)
    with torch.no_grad():
        return m(torch.from_numpy(wav)[None])[0, :frames].numpy()


def test_graphs_equal_extraction(speech):
    # Kaldi's fbank: float32 rounding of the FFT of int16-range frames, which the log of the
    # weakest bins magnifies to about 1e-3.
    for n in (len(speech), 1234, 401):
        x = speech[:n]
        for name, graph, reference in _graphs():
            ref = reference(x)
            with torch.no_grad():
                ours = graph(torch.from_numpy(x)[None])[0].numpy()
            assert ours.shape == ref.shape == (graph.num_frames(n), ref.shape[1]), (name, n)
            assert np.abs(ours - ref).max() <= 5e-3, (name, n)
    fe = UtteranceFrontend(WaveformGraph(Waveform(160)), cmn=True)
    feats = fe(torch.from_numpy(speech)[None])[0]
    assert torch.allclose(feats.mean(0), torch.zeros(160), atol=1e-6)
    assert fe.frontend.num_frames(fe.min_samples(25)) == 25 and fe.frontend.num_frames(fe.min_samples(25) - 1) == 24


def test_graphs_in_onnxruntime(speech, tmp_path):
    """All the graphs in one ONNX file (one output each), symbolic in the length."""
    import onnxruntime as ort

    graphs = _graphs()

    class All(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.graphs = torch.nn.ModuleList([g for _, g, _ in graphs])

        def forward(self, wav):
            return tuple(g(wav) for g in self.graphs)

    program = torch.onnx.export(All().eval(), (torch.from_numpy(speech[:5000])[None],), input_names=["waveform"],
                                dynamo=True, verbose=False,
                                dynamic_shapes={"wav": {0: torch.export.Dim("batch"),
                                                        1: torch.export.Dim("samples", min=400)}})
    program.save(str(tmp_path / "fe.onnx"))
    session = ort.InferenceSession(str(tmp_path / "fe.onnx"))
    for n in (len(speech), 777):
        x = np.stack([speech[:n], speech[-n:]])
        outs = session.run(None, {"waveform": x})
        with torch.no_grad():
            refs = All()(torch.from_numpy(x))
        for (name, _, _), out, ref in zip(graphs, outs, refs):
            assert out.shape == ref.shape, name
            # (log of power: relative error of float32 FFTs)
            assert np.abs(out - ref.numpy()).max() <= 5e-3 * max(1.0, float(ref.abs().max()) / 100), name
