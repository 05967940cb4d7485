"""Usage: python -m sid.bin.export_model [options] --format onnx|torchscript <exp> <out>

Export an exp dir's model for serving without this toolkit or PyTorch.
 e.g.:  python -m sid.bin.export_model --format onnx exp/xvector exp/xvector/model.onnx
The graph maps prepared features to embeddings: input "feats" (batch, frames, dim),
float32, any number of frames (at least the model's context), output "embedding"
(batch, embed-dim). The front-end is not in the graph: its dither, Kaldi compression,
energy VAD and sliding CMN are Kaldi's, not ONNX operators. Everything needed to
reproduce it is written beside the model as <out>.frontend.yaml (the exp's features
record: type, Kaldi feature config, source, cmvn_opts, compress; the model's own front-end
where it has one; the VAD: its config and the features it decides on, none for a model that
reads audio, e.g. an imported one; the exp's chunking), and sid.Embedder.features computes it.
--quantize=int8 (ONNX only) stores the weights of the convolutions, LSTMs and matrix
products as 8-bit integers (per output channel), quantising activations on the fly
(onnxruntime's dynamic quantisation, after its shape inference and graph preprocessing); the
float model's size and its own are logged. bench/onnx_eer.py prints both files' EER on a
trial list. Waveform-in graphs are not made: the recipe's features are dithered with a
per-utterance seed and stored through Kaldi's compression, the energy VAD decides on MFCCs,
and Resemblyzer's front-end trims with WebRTC's VAD; none of which ONNX reproduces to 1e-4."""

import dataclasses
import logging
import os
from pathlib import Path

from sid.cli import doc_argparser, run_main, setup_logging

log = logging.getLogger("export_model")


WEIGHTED_OPS = ("Conv", "MatMul", "Gemm", "LSTM", "GRU")


def quantize_int8(path: Path) -> None:
    """Dynamic int8 quantisation of an ONNX file in place: per-channel unsigned 8-bit weights
    (onnxruntime's CPU ConvInteger takes uint8 only; per tensor, an LSTM's gates lose too
    much). onnxruntime's preprocessing first, since the dynamo exporter's value-info shapes
    make the quantiser's own inference fail; its symbolic shape inference does not handle
    every graph (an LSTM's), so without it where it fails."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from sid.errors import SidError

    with tempfile.TemporaryDirectory(dir=path.parent) as d:
        pre = Path(d) / "pre.onnx"
        try:
            quant_pre_process(str(path), str(pre))
        except Exception:   # noqa: BLE001 (any failure of its symbolic inference)
            quant_pre_process(str(path), str(pre), skip_symbolic_shape=True)
        # The first weighted layer stays float: it reads the features themselves, whose range
        # (Resemblyzer's mel power spans decades) 8-bit activations cannot hold.
        import onnx

        weighted = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in WEIGHTED_OPS]
        try:
            quantize_dynamic(str(pre), str(path), weight_type=QuantType.QUInt8, per_channel=True,
                             nodes_to_exclude=weighted[:1])
        except Exception as err:   # noqa: BLE001
            raise SidError(f"int8 quantisation of the exported graph failed: {type(err).__name__}: {err}") from None


def main() -> int:
    from sid.embedder import DEFAULT_VAD_CONFIG

    parser = doc_argparser(__doc__)
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="onnx: dynamic int8 quantisation of the weights (default: %(default)s)")
    parser.add_argument("--vad-config", default=None,
                        help="VAD options recorded beside the model, for an exp that does not record its own "
                             f"(features.vad; default then: {DEFAULT_VAD_CONFIG})")
    parser.add_argument("exp", help="exp dir of the model (config.yaml, final.pt)")
    parser.add_argument("out", help="model file to write")
    opts = parser.parse_args()
    setup_logging()
    export(opts.exp, opts.out, opts.format, opts.quantize, opts.vad_config)
    return 0


def export(exp: str | Path, out: str | Path, fmt: str, quantize: str = "none", vad_config: str | Path | None = None) -> None:
    """Write the ``fmt`` (onnx, torchscript) model of ``exp`` to ``out`` and its front-end record beside it."""
    from sid.errors import SidError

    if quantize != "none" and fmt != "onnx":
        raise SidError(f"--quantize={quantize} needs --format onnx")
    import torch
    import yaml

    from sid.data.table import atomic_path
    from sid.extract import load_model_dir

    model, cfg = load_model_dir(exp, torch.device("cpu"))
    if cfg.features is None:
        raise SidError(f"{Path(exp) / 'config.yaml'} has no 'features' record: the exported model's input "
                       "could not be described")
    feat_dim = model.feat_dim
    min_frames = max(getattr(model, "min_frames", 1), 25)
    class Embed(torch.nn.Module):
        """Features (batch, frames, dim) to embeddings: the model's ``embed``."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, feats):
            return self.model.embed(feats)

    graph = Embed().eval()
    example = torch.randn(2, 2 * min_frames, feat_dim)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if fmt == "onnx":
            frames = torch.export.Dim("frames", min=min_frames)
            program = torch.onnx.export(graph, (example,), input_names=["feats"], output_names=["embedding"],
                                        dynamo=True, verbose=False,
                                        dynamic_shapes={"feats": {0: torch.export.Dim("batch"), 1: frames}})
            program.save(str(tmp), external_data=False)
            if quantize == "int8":
                float_size = os.path.getsize(tmp)
                quantize_int8(tmp)
                log.info("int8: %.1f kB, float32: %.1f kB", os.path.getsize(tmp) / 1e3, float_size / 1e3)
        else:
            with torch.no_grad():
                traced = torch.jit.trace(graph, example)
            traced.save(str(tmp))
    record = {"input": {"name": "feats", "shape": ["batch", "frames", feat_dim], "min_frames": min_frames,
                        "what": _input_what(cfg)},
              "output": {"name": "embedding", "dim": model.embed_dim},
              "features": {"type": cfg.features.type, "config": cfg.features.config, "source": cfg.features.source,
                           "cmvn_opts": cfg.features.cmvn_opts, "compress": cfg.features.compress},
              "frontend": None if cfg.frontend is None else dataclasses.asdict(cfg.frontend),
              "vad": _vad_record(cfg, exp, vad_config),
              "chunking": _chunking(cfg)}
    side = out.with_name(out.name + ".frontend.yaml")
    with atomic_path(side) as tmp:
        tmp.write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
    log.info("Wrote %s (%s%s, %.1f kB) and %s", out, fmt, " int8" if quantize == "int8" else "",
             os.path.getsize(out) / 1e3, side)


def _input_what(cfg) -> str:
    if cfg.features.source == "audio":
        mean = "no mean subtracted" if cfg.features.cmvn_opts == "none" else "the utterance's mean subtracted"
        made = "the front-end below" if cfg.frontend is not None else "the feature config below"
        return (f"features as sid.Embedder.features gives them: {made} computed on the whole utterance's audio, "
                f"{mean}, no energy VAD")
    return ("features as sid.Embedder.features gives them: the config below, Kaldi compression as "
            "steps/make_features.sh stores them, energy VAD, sliding CMN, voiced frames only")


def _vad_record(cfg, exp, vad_config) -> dict | None:
    """The energy VAD the input went through: the exp's record, none for a model that reads audio."""
    from sid.embedder import DEFAULT_VAD_CONFIG
    from sid.errors import SidError

    if cfg.features.vad is not None or cfg.features.source == "audio":
        if vad_config:
            raise SidError(f"{Path(exp) / 'config.yaml'} records the model's VAD (features.vad, or none for "
                           "features.source: audio): do not give --vad-config")
        vad = cfg.features.vad
        return None if vad is None else {"config": vad.config, "features_type": vad.features_type,
                                         "features_config": vad.features_config}
    vad_config = vad_config or DEFAULT_VAD_CONFIG
    try:
        return {"config": Path(vad_config).read_text(encoding="utf-8"), "features_type": cfg.features.type,
                "features_config": cfg.features.config}
    except OSError as err:
        raise SidError(f"cannot read VAD config {vad_config}: {err.strerror}") from None


def _chunking(cfg) -> str:
    if cfg.extract.chunking == "windows":
        return (f"windows of {cfg.extract.window_frames} frames every {cfg.extract.window_shift} frames, each "
                "embedding unit length, averaged and re-normalised (sid.extract)")
    return ("utterances longer than 10000 frames: chunks of 10000 embedded and averaged, weighted by length "
            "(sid.extract's default --max-chunk-frames)")


if __name__ == "__main__":
    run_main(main)
