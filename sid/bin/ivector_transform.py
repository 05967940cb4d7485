"""ivector-transform: multiply vectors by a matrix (an affine one with a last offset column, like LDA's).

Usage: python -m sid.bin.ivector_transform <transform-rxfilename> <ivector-rspecifier> <ivector-wspecifier>
e.g.: python -m sid.bin.ivector_transform transform.mat ark:- ark:-
"""

import logging

import numpy as np

from sid import kaldi_io
from sid.backend import limit_blas_threads
from sid.backend.lda import apply_transform
from sid.cli import KaldiOptions, run_main

log = logging.getLogger("ivector_transform")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    _, args = po.parse(num_args=3)
    limit_blas_threads()
    transform = kaldi_io.read_matrix(args[0])
    keys, x = kaldi_io.read_vectors(args[1])
    y = apply_transform(transform, x) if keys else np.zeros((0, transform.shape[0]), np.float32)
    kaldi_io.write_vectors(args[2], keys, y)
    log.info("Processed %d iVectors.", len(keys))
    if keys:
        y64 = y.astype(np.float64)
        log.info("Norm of mean was %g (should be close to zero), length divided by sqrt(dim) was %g "
                 "(should probably be close to one)", np.linalg.norm(y64.mean(axis=0)),
                 np.sqrt((y64 * y64).sum(axis=1).mean() / y.shape[1]))
    return 0


if __name__ == "__main__":
    run_main(main)
