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
    # A block at a time, as Kaldi streams it; the log's statistics are accumulated.
    count, ratio_sum, ratio_sumsq = 0, 0.0, 0.0
    with kaldi_io.TableWriter(args[1]) as w:
        for keys, x in kaldi_io.iter_vector_blocks(args[0]):
            norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
            ratio = norm / np.sqrt(x.shape[1]) if opts.scaleup else norm
            zero = ratio == 0
            for k in np.flatnonzero(zero):
                log.warning("Zero iVector for key %s", keys[k])
            if opts.normalize:
                x = x / np.where(zero, 1.0, ratio).astype(np.float32)[:, None]
            kaldi_io.write_vector_block(w, keys, x)
            count += len(keys)
            ratio_sum += float(ratio.sum())
            ratio_sumsq += float(np.square(ratio).sum())
    if count:
        mean = ratio_sum / count
        log.info("Processed %d iVectors.", count)
        log.info("Average ratio of iVector to expected length was %g, standard deviation was %g",
                 mean, np.sqrt(max(ratio_sumsq / count - mean ** 2, 0.0)))
    return 0


if __name__ == "__main__":
    run_main(main)
