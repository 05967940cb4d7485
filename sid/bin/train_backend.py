"""train_backend: the recipe's mean, LDA and PLDA training in one process, never holding the embeddings whole.

Usage: python -m sid.bin.train_backend [options] <ivector-rspecifier> <utt2spk-rspecifier> <backend-dir>
e.g.: python -m sid.bin.train_backend --lda-dim=200 scp:exp/xvector/embeddings/train/xvector.scp data/train/utt2spk exp/scores/backend_plda
Writes <backend-dir>/mean.vec (text, as ivector_mean), transform.mat (unless
--lda-dim=0) and plda (unless --plda=false): the files of Kaldi's pipes
  ivector-mean scp:X mean.vec
  ivector-compute-lda --dim=N "ark:ivector-subtract-global-mean scp:X ark:- |" ark:utt2spk transform.mat
  ivector-compute-plda ark:spk2utt "ark:ivector-subtract-global-mean scp:X ark:- |
      ivector-transform transform.mat ark:- ark:- | ivector-normalize-length ark:- ark:- |" plda
with speakers taken from utt2spk. The table is read three times, a block at a time (files again
from the page cache; a pipe once into memory). Each file is written atomically.
"""

import logging
import os

from sid import kaldi_io
from sid.backend import limit_blas_threads, pipeline
from sid.cli import KaldiOptions, run_main

log = logging.getLogger("train_backend")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("lda-dim", 200, "LDA dimension; 0 for no LDA")
    po.register("total-covariance-factor", 0.0, "LDA's interpolation of total and within-class covariance")
    po.register("num-em-iters", 10, "Number of iterations of E-M used for PLDA estimation")
    po.register("plda", True, "Train the PLDA model (false: mean and LDA only, for cosine scoring)")
    po.register("binary", True, "Write transform.mat and plda in binary mode")
    opts, args = po.parse(num_args=3)
    limit_blas_threads()
    utt2spk = kaldi_io.read_token_map(args[1])
    mean, lda, plda = pipeline.train_passes(kaldi_io.vector_passes(args[0]), utt2spk, opts.lda_dim,
                                            opts.total_covariance_factor, opts.num_em_iters, opts.plda, args[0])
    os.makedirs(args[2], exist_ok=True)
    kaldi_io.write_object(os.path.join(args[2], "mean.vec"), mean, False)
    if lda is not None:
        kaldi_io.write_object(os.path.join(args[2], "transform.mat"), lda, opts.binary)
    if plda is not None:
        plda.write(os.path.join(args[2], "plda"), opts.binary)
    log.info("Wrote the back-end to %s", args[2])
    return 0


if __name__ == "__main__":
    run_main(main)
