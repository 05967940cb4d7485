"""ivector-normalize-length: scale each vector to length sqrt(dim) (or 1 with --scaleup=false).

Usage: python -m sid.bin.ivector_normalize_length [options] <ivector-rspecifier> <ivector-wspecifier>
e.g.: python -m sid.bin.ivector_normalize_length ark:ivectors.ark ark:normalized_ivectors.ark
"""

import logging

import numpy as np

from sid import kaldi_io
from sid.backend import limit_blas_threads
from sid.cli import KaldiOptions, run_main

log = logging.getLogger("ivector_normalize_length")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("normalize", True, "Set this to false to disable normalization")
    po.register("scaleup", True, "If 'true', the normalized iVector is scaled-up by 'sqrt(dim)'")
    opts, args = po.parse(num_args=2)
    limit_blas_threads()
    keys, x = kaldi_io.read_vectors(args[0])
    if keys:
        norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        ratio = norm / np.sqrt(x.shape[1]) if opts.scaleup else norm
        zero = ratio == 0
        for k in np.flatnonzero(zero):
            log.warning("Zero iVector for key %s", keys[k])
        if opts.normalize:
            x /= np.where(zero, 1.0, ratio).astype(np.float32)[:, None]
        log.info("Processed %d iVectors.", len(keys))
        log.info("Average ratio of iVector to expected length was %g, standard deviation was %g",
                 ratio.mean(), np.sqrt(max(np.mean(ratio ** 2) - ratio.mean() ** 2, 0.0)))
    kaldi_io.write_vectors(args[1], keys, x)
    return 0


if __name__ == "__main__":
    run_main(main)
