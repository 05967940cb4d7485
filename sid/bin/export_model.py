"""Usage: python -m sid.bin.export_model [options] --format onnx|torchscript <exp> <out>

Export an exp dir's model for serving without this toolkit or PyTorch.
 e.g.:  python -m sid.bin.export_model --format onnx exp/resnet exp/resnet/model.onnx
Output "embedding" (batch, embed-dim). The input, --input auto (default) choosing:
* waveform in, where the exp's front-end can be in the graph: a model trained from audio
  (features.source: audio) on a Kaldi fbank without dither or on its own front-end
  (voxceleb_trainer's log-mel, raw waveform rows), and WeSpeaker, voxceleb_trainer and
  SpeechBrain imports. Input "waveform" (batch, samples), float32 in the int16 range (16-bit
  PCM samples as numbers: a float file's [-1, 1] times 32768) at the exp's sample rate, one
  whole utterance per row (a batch's rows equally long), any length from the record's
  min_samples on. The graph computes the features (frames gathered by index, rfft, mel,
  log) and subtracts the utterance mean as sid.Embedder does, then embeds the whole input
  at once: for sid's embeddings, utterances of at most 100 s (extraction averages 100 s
  chunks of longer ones).
* features in, for the rest: input "feats" (batch, frames, dim), float32, any number of
  frames from min_frames on, the features as sid.Embedder.features prepares them. Their
  front-end cannot be in the graph: the recipe's features are dithered with a per-utterance
  seed and stored through Kaldi's compression, the energy VAD decides on MFCCs, the CMN is
  sliding; Resemblyzer's front-end trims with WebRTC's VAD; a Kaldi fbank of a model trained
  from audio may be dithered (seeded by the utterance id); d-vectors average overlapping
  windows. --input waveform forces a waveform graph where only the dither stands in the way
  (left out: embeddings then differ from sid's by that noise); elsewhere it is an error.
<out>.frontend.yaml beside the model says which input it takes (input: name, shape, sample
rate and scale or min_frames, what it must hold, why not waveform), the exp's features
record (type, Kaldi feature config, source, cmvn_opts, compress), the model's own front-end
where it has one, the VAD (its config and the features it decides on; none for a model that
reads audio) and the chunking.
--quantize=int8 (ONNX only) stores the weights of the convolutions, LSTMs and matrix
products as 8-bit integers (per output channel), quantising activations on the fly
(onnxruntime's dynamic quantisation, after its shape inference and graph preprocessing);
a waveform graph's front-end and the first layer after it stay float. The float model's
size and its own are logged. bench/onnx_eer.py prints both files' EER on a trial list."""

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
    every graph (an LSTM's, a front-end's), so without it where it fails, and without the
    shapes it leaves where they contradict the quantiser's inference (a front-end's)."""
    import contextlib
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from sid.errors import SidError

    path = path.resolve()
    with tempfile.TemporaryDirectory(dir=path.parent) as d, contextlib.chdir(d):
        # (in the temporary folder: a failed symbolic inference leaves sym_shape_infer_temp.onnx
        # in the working directory)
        pre = Path(d) / "pre.onnx"
        try:
            quant_pre_process(str(path), str(pre))
        except Exception:   # noqa: BLE001 (any failure of its symbolic inference)
            quant_pre_process(str(path), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre))
        del graph.graph.value_info[:]
        onnx.save(graph, str(pre))
        # A waveform graph's front-end stays float (the mel filters' product reads power spectra),
        # and so does the first weighted layer after it: it reads the features themselves,
        # whose range (Resemblyzer's mel power spans decades) 8-bit activations cannot hold.
        weighted = [n for n in graph.graph.node if n.op_type in WEIGHTED_OPS]
        front = [n.name for n in weighted if _in_frontend(n)]
        model = [n.name for n in weighted if not _in_frontend(n)]
        try:
            quantize_dynamic(str(pre), str(path), weight_type=QuantType.QUInt8, per_channel=True,
                             nodes_to_exclude=front + model[:1])
        except Exception as err:   # noqa: BLE001
            raise SidError(f"int8 quantisation of the exported graph failed: {type(err).__name__}: {err}") from None


def _in_frontend(node) -> bool:
    """Whether an exported node belongs to the graph's front-end module (the exporter's record
    of the module path that made it)."""
    import ast

    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = ast.literal_eval(prop.value)
            return len(scopes) > 1 and scopes[1] == "frontend"
    return False


def main() -> int:
    from sid.embedder import DEFAULT_VAD_CONFIG

    parser = doc_argparser(__doc__)
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    parser.add_argument("--input", choices=("auto", "waveform", "features"), default="auto",
                        help="what the graph reads: waveform (the front-end in the graph), features, or auto: "
                             "waveform where the exp's front-end allows it (default: %(default)s)")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="onnx: dynamic int8 quantisation of the weights (default: %(default)s)")
    parser.add_argument("--vad-config", default=None,
                        help="VAD options recorded beside the model, for an exp that does not record its own "
                             f"(features.vad; default then: {DEFAULT_VAD_CONFIG})")
    parser.add_argument("exp", help="exp dir of the model (config.yaml, final.pt)")
    parser.add_argument("out", help="model file to write")
    opts = parser.parse_args()
    setup_logging()
    export(opts.exp, opts.out, opts.format, opts.quantize, opts.vad_config, opts.input)
    return 0


def waveform_obstacle(cfg, allow_dither: bool = False) -> str | None:
    """Why an exp's model cannot be exported waveform-in (``sid.features.graph.graph_obstacle``,
    or its window chunking), None when it can; ``allow_dither``: a dither is no obstacle."""
    from sid.features.graph import graph_obstacle

    obstacle = graph_obstacle(cfg, allow_dither)
    if obstacle is None and cfg.extract.chunking == "windows":
        return "its utterances are embedded as the mean of overlapping windows, which the graph does not cut"
    return obstacle


def export(exp: str | Path, out: str | Path, fmt: str, quantize: str = "none", vad_config: str | Path | None = None,
           input: str = "auto") -> str:
    """Write the ``fmt`` (onnx, torchscript) model of ``exp`` to ``out`` and its front-end record
    beside it; ``input``: waveform, features or auto (waveform where ``waveform_obstacle`` finds
    nothing). Returns the input the graph takes."""
    from sid.errors import SidError

    if quantize != "none" and fmt != "onnx":
        raise SidError(f"--quantize={quantize} needs --format onnx")
    if input not in ("auto", "waveform", "features"):
        raise SidError(f"--input must be auto, waveform or features, got '{input}'")
    import torch
    import yaml

    from sid.data.table import atomic_path
    from sid.extract import load_model_dir

    model, cfg = load_model_dir(exp, torch.device("cpu"))
    if cfg.features is None:
        raise SidError(f"{Path(exp) / 'config.yaml'} has no 'features' record: the exported model's input "
                       "could not be described")
    obstacle = waveform_obstacle(cfg)
    undithered = False
    if input == "waveform" and obstacle is not None:
        # (the obstacle named first may be the dither, with another one behind it)
        beyond_dither = waveform_obstacle(cfg, allow_dither=True)
        if beyond_dither is not None:
            raise SidError(f"{exp}: --input waveform is not possible: {beyond_dither} (use --input features)")
        undithered = True
        log.warning("%s: %s; the waveform graph computes it without dither, so its embeddings differ from "
                    "sid's extraction by that noise", exp, obstacle)
    waveform = input == "waveform" or (input == "auto" and obstacle is None)
    min_frames = max(getattr(model, "min_frames", 1), 25)

    class Embed(torch.nn.Module):
        """Features (batch, frames, dim), or with a front-end graph the waveform (batch,
        samples), to embeddings: the model's ``embed``."""

        def __init__(self, frontend=None):
            super().__init__()
            self.model = model
            self.frontend = frontend

        def forward(self, x):
            return self.model.embed(x if self.frontend is None else self.frontend(x))

    if waveform:
        from sid.features.graph import waveform_frontend

        frontend = waveform_frontend(cfg, undithered)
        min_samples = frontend.min_samples(min_frames)
        graph = Embed(frontend).eval()
        name, dynamic, example = "waveform", "samples", torch.randn(2, 3 * min_samples + 123) * 3000
    else:
        graph = Embed().eval()
        name, dynamic, example = "feats", "frames", torch.randn(2, 2 * min_frames, model.feat_dim)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if fmt == "onnx":
            length = torch.export.Dim(dynamic, min=min_samples if waveform else min_frames)
            program = torch.onnx.export(graph, (example,), input_names=[name], output_names=["embedding"],
                                        dynamo=True, verbose=False,
                                        dynamic_shapes={"x": {0: torch.export.Dim("batch"), 1: length}})
            program.save(str(tmp), external_data=False)
            if quantize == "int8":
                float_size = os.path.getsize(tmp)
                quantize_int8(tmp)
                log.info("int8: %.1f kB, float32: %.1f kB", os.path.getsize(tmp) / 1e3, float_size / 1e3)
        else:
            with torch.no_grad():
                traced = torch.jit.trace(graph, example)
            traced.save(str(tmp))
    if waveform:
        rate = int(frontend.sample_rate)
        inp = {"name": "waveform", "shape": ["batch", "samples"], "sample_rate": rate, "min_samples": min_samples,
               "scale": "float32 in the int16 range (16-bit PCM samples as numbers; a float file's samples in [-1, 1] "
                        "times 32768), as sid.data.audio reads audio",
               "what": _waveform_what(cfg, undithered)}
    else:
        inp = {"name": "feats", "shape": ["batch", "frames", model.feat_dim], "min_frames": min_frames,
               "what": _input_what(cfg),
               **({"why_not_waveform": obstacle} if obstacle is not None else {})}
    record = {"input": inp,
              "output": {"name": "embedding", "dim": model.embed_dim},
              "features": {"type": cfg.features.type, "config": cfg.features.config, "source": cfg.features.source,
                           "cmvn_opts": cfg.features.cmvn_opts, "compress": cfg.features.compress},
              "frontend": None if cfg.frontend is None else dataclasses.asdict(cfg.frontend),
              "vad": _vad_record(cfg, exp, vad_config),
              "chunking": _waveform_chunking() if waveform else _chunking(cfg)}
    side = out.with_name(out.name + ".frontend.yaml")
    with atomic_path(side) as tmp:
        tmp.write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
    log.info("Wrote %s (%s%s, %s in, %.1f kB) and %s", out, fmt, " int8" if quantize == "int8" else "", name,
             os.path.getsize(out) / 1e3, side)
    return name


def _waveform_what(cfg, undithered: bool) -> str:
    made = f"the front-end below ({cfg.frontend.type})" if cfg.features.type == "frontend" else \
        "the Kaldi fbank of the feature config below"
    mean = "no mean subtracted" if cfg.features.cmvn_opts == "none" else "less the utterance's mean"
    note = (" It leaves out the config's dither, which sid's extraction adds (seeded by the utterance id): "
            "its embeddings differ from sid's by that noise.") if undithered else ""
    return (f"one utterance per row, the whole of it (the rows of a batch equally long: pad nothing, run utterances "
            f"of other lengths in other batches); the graph computes {made} from it, {mean}, no energy VAD, as "
            f"sid.Embedder does.{note}")


def _waveform_chunking() -> str:
    return ("the whole input is embedded at once; sid's extraction (--max-chunk-frames 10000) averages the "
            "embeddings of 100 s chunks of a longer utterance's features, weighted by length: for the same "
            "embeddings cut recordings into utterances of at most 100 s")


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
