"""Usage: python -m sid.bin.export_model [options] --format onnx|torchscript <exp> <out>

Export an exp dir's model for serving without this toolkit or PyTorch.
 e.g.:  python -m sid.bin.export_model --format onnx exp/resnet exp/resnet/model.onnx
Output "embedding" (batch, embed-dim). The input, --input auto (default) choosing:
* waveform in, where the exp's front-end can be in the graph: a model trained from audio
  (features.source: audio) on a Kaldi fbank (extracted without dither: extract.dither 0) or
  on its own front-end (voxceleb_trainer's log-mel, raw waveform rows), and WeSpeaker,
  voxceleb_trainer, SpeechBrain and Resemblyzer imports. Input "waveform" (batch, samples),
  float32 in the int16 range (16-bit PCM samples as numbers: a float file's [-1, 1] times
  32768) at the exp's sample rate, one whole utterance per row (a batch's rows equally long),
  any length from the record's min_samples on. The graph computes the features (frames
  gathered by index, rfft, mel, log) and subtracts the utterance mean as sid.Embedder does,
  then embeds the whole input at once (for sid's embeddings, utterances of at most 100 s:
  extraction averages 100 s chunks of longer ones), or, for a model embedded by windows
  (extract.chunking: windows; d-vectors, GRUs, Resemblyzer's 1.6 s partials), cuts the
  windows as extraction does (the last one ending at the last frame, a short utterance one
  short window) and averages their unit-length embeddings, re-normalised.
  Resemblyzer: input "trimmed_waveform", the samples its WebRTC VAD left (Resemblyzer's
  preprocess_wav, times 32768; sid.features.frontends.ResemblyzerMel.trim): that VAD is no
  graph; the graph pads them to its partials' grid.
* features in, for the rest: input "feats" (batch, frames, dim), float32, any number of
  frames from min_frames on, the features as sid.Embedder.features prepares them (chunked or
  windowed in the graph as above). Their front-end cannot be in the graph: the recipe's
  features are dithered with a per-utterance seed and stored through Kaldi's compression,
  the energy VAD decides on MFCCs, the CMN is sliding; an exp recording a dither at
  extraction (extract.dither) adds noise seeded by the utterance id. --input waveform forces
  a waveform graph where only that dither stands in the way (left out: embeddings then
  differ from sid's by that noise); elsewhere it is an error.
<out>.frontend.yaml beside the model says which input it takes (input: name, shape, sample
rate and scale or min_frames, what it must hold, why not waveform), the exp's features
record (type, Kaldi feature config, source, cmvn_opts, compress), the model's own front-end
where it has one, the VAD (its config and the features it decides on; none for a model that
reads audio) and the chunking.
--quantize=int8 (ONNX only) stores the weights of the convolutions, LSTMs and matrix
products as 8-bit integers (per output channel), quantising activations on the fly
(onnxruntime's dynamic quantisation, after its shape inference and graph preprocessing);
a waveform graph's front-end and the first layer after it stay float. The float model's
size and its own are logged. bench/onnx_eer.py prints both files' EER on a trial list.
A recurrent model (LSTM, GRU; windowed or not) is exported in two parts joined at the
features: the front-end by the dynamo exporter, the windows and the model by the
TorchScript-based one (the dynamo one cannot decompose an LSTM or GRU over a symbolic batch
or length), an LSTM with projections as LSTMs without (sid.models.recurrent.UnprojectedLSTM;
ONNX has none)."""

import dataclasses
import logging
import os
import tempfile
import warnings
from pathlib import Path

from sid.cli import doc_argparser, run_main, setup_logging

log = logging.getLogger("export_model")


WEIGHTED_OPS = ("Conv", "MatMul", "Gemm", "LSTM", "GRU")
OPSET = 17      # of a features-in window-averaging graph (a waveform one takes its front-end's)


def quantize_int8(path: Path) -> None:
    """Dynamic int8 quantisation of an ONNX file in place: per-channel unsigned 8-bit weights
    (onnxruntime's CPU ConvInteger takes uint8 only; per tensor, an LSTM's gates lose too
    much). onnxruntime's preprocessing first, since the dynamo exporter's value-info shapes
    make the quantiser's own inference fail; its symbolic shape inference does not handle
    every graph (an LSTM's, a front-end's), so without it where it fails, and without the
    shapes it leaves where they contradict the quantiser's inference (a front-end's)."""
    import contextlib

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
    of the module path that made it, or the name ``_export_windowed`` gives it)."""
    import ast

    if node.name.startswith("frontend/"):
        return True
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


def export(exp: str | Path, out: str | Path, fmt: str, quantize: str = "none", vad_config: str | Path | None = None,
           input: str = "auto") -> str:
    """Write the ``fmt`` (onnx, torchscript) model of ``exp`` to ``out`` and its front-end record
    beside it; ``input``: waveform, features or auto (waveform where
    ``sid.features.graph.graph_obstacle`` finds nothing). Returns the graph's input name."""
    from sid.errors import SidError

    if quantize != "none" and fmt != "onnx":
        raise SidError(f"--quantize={quantize} needs --format onnx")
    if input not in ("auto", "waveform", "features"):
        raise SidError(f"--input must be auto, waveform or features, got '{input}'")
    import torch
    import yaml

    from sid.data.table import atomic_path
    from sid.extract import load_model_dir
    from sid.features.graph import graph_obstacle

    model, cfg = load_model_dir(exp, torch.device("cpu"))
    if cfg.features is None:
        raise SidError(f"{Path(exp) / 'config.yaml'} has no 'features' record: the exported model's input "
                       "could not be described")
    obstacle = graph_obstacle(cfg)
    undithered = False
    if input == "waveform" and obstacle is not None:
        # (the obstacle named first may be the dither, with another one behind it)
        beyond_dither = graph_obstacle(cfg, allow_dither=True)
        if beyond_dither is not None:
            raise SidError(f"{exp}: --input waveform is not possible: {beyond_dither} (use --input features)")
        undithered = True
        log.warning("%s: %s; the waveform graph computes it without dither, so its embeddings differ from "
                    "sid's extraction by that noise", exp, obstacle)
    waveform = input == "waveform" or (input == "auto" and obstacle is None)
    from sid.models.recurrent import without_projections

    min_frames = max(getattr(model, "min_frames", 1), 25)
    windows = cfg.extract.chunking == "windows"
    # (ONNX has no LSTM with projections; the dynamo exporter cannot decompose an LSTM or GRU whose
    # batch or length is symbolic: the TorchScript-based one exports those, _export_two_part)
    recurrent = any(isinstance(m, (torch.nn.LSTM, torch.nn.GRU)) for m in model.modules())
    if fmt == "onnx":
        model = without_projections(model)

    class Embedding(torch.nn.Module):
        """The model's ``embed`` as its forward."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.embed(x)

    if windows:
        from sid.extract import WindowMean

        # The graph cuts the windows, and pads short ones as extraction does: any length.
        embedder = WindowMean(model, cfg.extract.window_frames, cfg.extract.window_shift, min_frames)
        min_frames = 1
    else:
        embedder = Embedding(model)

    class Embed(torch.nn.Module):
        """Features (batch, frames, dim), or with a front-end graph the waveform (batch,
        samples), to embeddings: the model's ``embed``, or the mean of its windows'."""

        def __init__(self, frontend=None):
            super().__init__()
            self.model = embedder
            self.frontend = frontend

        def forward(self, x):
            return self.model(x if self.frontend is None else self.frontend(x))

    if waveform:
        from sid.features.graph import waveform_frontend

        frontend = waveform_frontend(cfg, undithered)
        min_samples = frontend.min_samples(min_frames)
        graph = Embed(frontend).eval()
        name = "trimmed_waveform" if frontend.trimmed else "waveform"
        # (windowed: several windows, the last moved back, so that the trace meets each step)
        length = frontend.min_samples(4 * cfg.extract.window_frames + 7) if windows else 3 * min_samples + 123
        dynamic, example = "samples", torch.randn(2, length) * 3000
    else:
        graph = Embed().eval()
        length = 4 * cfg.extract.window_frames + 7 if windows else 2 * min_frames
        name, dynamic, example = "feats", "frames", torch.randn(2, length, model.feat_dim)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if fmt == "onnx" and (windows or recurrent):
            _export_two_part(graph, example, name, min_samples if waveform else 0, tmp)
        elif fmt == "onnx":
            length = torch.export.Dim(dynamic, min=min_samples if waveform else min_frames)
            program = torch.onnx.export(graph, (example,), input_names=[name], output_names=["embedding"],
                                        dynamo=True, verbose=False,
                                        dynamic_shapes={"x": {0: torch.export.Dim("batch"), 1: length}})
            program.save(str(tmp), external_data=False)
        if fmt == "onnx":
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
        inp = {"name": name, "shape": ["batch", "samples"], "sample_rate": rate, "min_samples": min_samples,
               "scale": "float32 in the int16 range (16-bit PCM samples as numbers; a float file's samples in [-1, 1] "
                        "times 32768), as sid.data.audio reads audio",
               "what": _waveform_what(cfg, undithered, frontend.trimmed)}
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
              "chunking": _chunking(cfg, waveform)}
    side = out.with_name(out.name + ".frontend.yaml")
    with atomic_path(side) as tmp:
        tmp.write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
    log.info("Wrote %s (%s%s, %s in, %.1f kB) and %s", out, fmt, " int8" if quantize == "int8" else "", name,
             os.path.getsize(out) / 1e3, side)
    return name


def _export_two_part(graph, example, name: str, min_samples: int, path: Path) -> None:
    """The ONNX file of an ``Embed`` ``graph`` of a recurrent model (or of its windows,
    ``sid.extract.WindowMean``): the model part through the TorchScript-based exporter, as the
    dynamo one's decomposition of an LSTM or GRU fails on a symbolic batch (the windows: a size
    computed from the length) or length (an LSTM whose projections are unfolded); a front-end
    (``min_samples``: waveform in) through the dynamo one, as the other has no rfft, the two
    joined at the features (node names: ``frontend/``, ``windows/``)."""
    import onnx
    import torch
    from onnx import compose

    feats = example
    parts = []
    if min_samples:
        dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("samples", min=min_samples)},)
        program = torch.onnx.export(graph.frontend, (example,), input_names=[name], output_names=["feats"],
                                    dynamo=True, verbose=False, dynamic_shapes=dims)
        parts.append(compose.add_prefix(program.model_proto, "frontend/", rename_inputs=False, rename_outputs=False))
        with torch.no_grad():
            feats = graph.frontend(example)
    opset = parts[0].opset_import[0].version if parts else OPSET
    with tempfile.TemporaryDirectory() as d, torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        torch.onnx.export(graph.model, (feats,), f"{d}/windows.onnx", input_names=["feats"],
                          output_names=["embedding"], dynamo=False, opset_version=opset,
                          dynamic_axes={"feats": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}})
        windows = onnx.load(f"{d}/windows.onnx")
    if not parts:
        onnx.save(windows, str(path))
        return
    windows = compose.add_prefix(windows, "windows/", rename_inputs=False, rename_outputs=False)
    windows.ir_version = parts[0].ir_version
    joined = compose.merge_models(parts[0], windows, io_map=[("feats", "feats")])
    # (merge_models lists the default domain of both: once, else onnxruntime's quantiser fails)
    opsets = {op.domain: op.version for op in joined.opset_import}
    del joined.opset_import[:]
    joined.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets.items())
    onnx.save(joined, str(path))


def _waveform_what(cfg, undithered: bool, trimmed: bool) -> str:
    made = f"the front-end below ({cfg.frontend.type})" if cfg.features.type == "frontend" else \
        "the Kaldi fbank of the feature config below"
    mean = "no mean subtracted" if cfg.features.cmvn_opts == "none" else "less the utterance's mean"
    note = (" It leaves out the dither of extract.dither, which sid's extraction adds (seeded by the utterance "
            "id): its embeddings differ from sid's by that noise.") if undithered else ""
    what = "one utterance per row, the whole of it"
    if trimmed:
        what = ("one utterance per row, the samples Resemblyzer's voice-activity trimming leaves of it (volume "
                "scaled up to -30 dBFS, silences cut by WebRTC's VAD, as Resemblyzer's preprocess_wav and "
                "sid.features.frontends.ResemblyzerMel.trim make them; the VAD is no graph), not padded")
    return (f"{what} (the rows of a batch equally long: pad nothing, run utterances of other lengths in other "
            f"batches); the graph computes {made} from it, {mean}, no energy VAD, as sid.Embedder does.{note}")


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


def _chunking(cfg, waveform: bool) -> str:
    if cfg.extract.chunking == "windows":
        return (f"windows of {cfg.extract.window_frames} frames every {cfg.extract.window_shift} frames (the last "
                "one ending at the last frame; an utterance shorter than a window is one window), each embedding "
                "unit length, averaged and re-normalised, as sid.extract does: in the graph, which reads the "
                "whole utterance")
    if waveform:
        return ("the whole input is embedded at once; sid's extraction (--max-chunk-frames 10000) averages the "
                "embeddings of 100 s chunks of a longer utterance's features, weighted by length: for the same "
                "embeddings cut recordings into utterances of at most 100 s")
    return ("utterances longer than 10000 frames: chunks of 10000 embedded and averaged, weighted by length "
            "(sid.extract's default --max-chunk-frames)")


if __name__ == "__main__":
    run_main(main)
