"""ivector-subtract-global-mean: subtract the mean of the input (or a given mean vector) from each vector.

Usage: python -m sid.bin.ivector_subtract_global_mean [options] <ivector-rspecifier> <ivector-wspecifier>
   or: python -m sid.bin.ivector_subtract_global_mean [options] <mean-rxfilename> <ivector-rspecifier> <ivector-wspecifier>
e.g.: python -m sid.bin.ivector_subtract_global_mean mean.vec scp:xvector.scp ark:-
"""

import logging

import numpy as np

from sid import kaldi_io
from sid.backend import limit_blas_threads
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

log = logging.getLogger("ivector_subtract_global_mean")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("subtract-mean", True, "If true, subtract mean; if false, just copy the input.")
    opts, args = po.parse(num_args=(2, 3))
    limit_blas_threads()
    if len(args) == 3:
        # With the mean given, a block at a time, as Kaldi streams it.
        mean = kaldi_io.read_vector(args[0])
        count = 0
        with kaldi_io.TableWriter(args[2]) as w:
            for keys, x in kaldi_io.iter_vector_blocks(args[1]):
                if mean.shape[0] != x.shape[1]:
                    raise SidError(f"{args[0]}: mean has dimension {mean.shape[0]}, vectors in {args[1]} "
                                   f"have {x.shape[1]}")
                if opts.subtract_mean:
                    x = x - mean.astype(np.float32)
                kaldi_io.write_vector_block(w, keys, x)
                count += len(keys)
        log.info("Wrote %d mean-subtracted iVectors", count)
        return 0
    keys, x = kaldi_io.read_vectors(args[0])
    mean = x.mean(axis=0, dtype=np.float64) if keys else np.zeros(0)
    log.info("Read %d iVectors.", len(keys))
    log.info("Norm of iVector mean was %g", np.linalg.norm(mean))
    if opts.subtract_mean and keys:
        x -= mean.astype(np.float32)
    kaldi_io.write_vectors(args[-1], keys, x)
    log.info("Wrote %d mean-subtracted iVectors", len(keys))
    return 0


if __name__ == "__main__":
    run_main(main)
