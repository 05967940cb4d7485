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
    # A block at a time, as Kaldi streams it; the log's statistics are accumulated.
    count, total, sumsq = 0, 0.0, 0.0
    with kaldi_io.TableWriter(args[2]) as w:
        for keys, x in kaldi_io.iter_vector_blocks(args[1]):
            y = apply_transform(transform, x)
            kaldi_io.write_vector_block(w, keys, y)
            y64 = y.astype(np.float64)
            total = total + y64.sum(axis=0)
            sumsq += float(np.einsum("ij,ij->", y64, y64))
            count += len(keys)
    log.info("Processed %d iVectors.", count)
    if count:
        log.info("Norm of mean was %g (should be close to zero), length divided by sqrt(dim) was %g "
                 "(should probably be close to one)", np.linalg.norm(total / count),
                 np.sqrt(sumsq / count / transform.shape[0]))
    return 0


if __name__ == "__main__":
    run_main(main)
