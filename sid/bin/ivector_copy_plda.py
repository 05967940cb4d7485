"""ivector-copy-plda: copy a PLDA model, optionally smoothing its within-class covariance.

Usage: python -m sid.bin.ivector_copy_plda [options] <plda-in> <plda-out>
e.g.: python -m sid.bin.ivector_copy_plda --binary=false plda plda.txt
"""

from sid.backend.plda import Plda
from sid.cli import KaldiOptions, run_main


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("binary", True, "Write output in binary mode")
    po.register("smoothing", 0.0, "Factor (e.g. 0.1) of the between-class covariance added to the within-class one")
    opts, args = po.parse(num_args=2)
    plda = Plda.read(args[0])
    if opts.smoothing != 0.0:
        plda.smooth_within_class_covariance(opts.smoothing)
    plda.write(args[1], opts.binary)
    return 0


if __name__ == "__main__":
    run_main(main)
