"""Print a model config's parameter counts and compute per second of audio."""

from sid.cli import KaldiOptions, run_main

USAGE = """Print the parameter count of a model config without and with the output layer, and its
multiply-adds per second of input audio (convolution and linear layers; 100 frames per second).
Usage:  model_info [options] --model-config=<yaml>
 e.g.:  model_info --model-config=conf/ecapa_c512.yaml --num-classes=5994"""


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("model-config", "", "YAML config with model (and loss) sections")
    po.register("num-classes", 5994, "Speakers of the output layer (5994: VoxCeleb2 dev)")
    po.register("frames-per-second", 100, "Feature frames per second of audio (10 ms shift)")
    opts, _ = po.parse(num_args=0)

    from sid.errors import SidError
    from sid.losses import build_head
    from sid.config import load_config
    from sid.models import build_model, count_parameters
    from sid.models.complexity import macs_per_second

    if not opts.model_config:
        raise SidError("--model-config=<yaml> is required")
    if opts.num_classes < 1:
        raise SidError("--num-classes must be positive")
    cfg = load_config(opts.model_config)
    model = build_model(cfg.model)
    head = build_head(cfg.loss, model.output_dim, opts.num_classes, cfg.data.utts_per_speaker)
    feat_dim = model.feat_dim
    n_model, n_head = count_parameters(model), count_parameters(head)
    per_sec, per_chunk = macs_per_second(model, feat_dim, opts.frames_per_second)
    two_s = 2 * per_sec + per_chunk
    print(f"config                        {opts.model_config}")
    print(f"model                         {cfg.model.type} ({feat_dim}-dim input, {model.embed_dim}-dim embedding)")
    print(f"parameters without output     {n_model:,} ({n_model / 1e6:.2f}M)")
    print(f"parameters with output        {n_model + n_head:,} ({(n_model + n_head) / 1e6:.2f}M, "
          f"{opts.num_classes} classes, {cfg.loss.type})")
    print(f"multiply-adds per second      {per_sec / 1e9:.3f} G (a 2 s chunk: {two_s / 1e9:.3f} G)")
    return 0


if __name__ == "__main__":
    run_main(main)
