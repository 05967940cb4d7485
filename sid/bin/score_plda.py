"""score_plda: the recipe's PLDA scoring pipe in one process, reading each embedding table once.

Usage: python -m sid.bin.score_plda [options] <plda> <enroll-rspecifier> <test-rspecifier> <trials> <scores> [<trials> <scores> ...]
e.g.: python -m sid.bin.score_plda --mean=backend/mean.vec --transform=backend/transform.mat backend/plda \
        scp:xvector.scp scp:xvector.scp data/voxceleb1_test/trials scores/trials.plda.score
Raw embeddings go through what Kaldi's recipe pipes into ivector-plda-scoring:
  ivector-subtract-global-mean mean.vec | ivector-transform transform.mat | ivector-normalize-length
(each stage only if its option is given; length normalisation unless --normalize-input=false),
then the PLDA (after ivector-copy-plda --smoothing) scores every trial like
ivector-plda-scoring: same scores (within float rounding), same "<key1> <key2> <score>" output.
Several trial lists may follow, each with its output file. A trial whose key has no vector is
an error (with --allow-partial, a warning, and the trial is not scored). Outputs are written
atomically.
"""

import logging

import numpy as np

from sid import kaldi_io
from sid.backend import limit_blas_threads, pipeline
from sid.backend.plda import Plda
from sid.backend.scoring import index_trials, read_trials, write_scores
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

log = logging.getLogger("score_plda")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("mean", "", "Mean vector to subtract first (as ivector-subtract-global-mean), e.g. mean.vec")
    po.register("transform", "", "Matrix to apply after the mean (as ivector-transform), e.g. transform.mat")
    po.register("normalize-input", True, "Scale the (transformed) vectors to length sqrt(dim) before PLDA "
                "(as ivector-normalize-length)")
    po.register("smoothing", 0.0, "Factor to smooth within-class covariance (as ivector-copy-plda --smoothing)")
    po.register("normalize-length", True, "If true, do length normalization as part of PLDA")
    po.register("simple-length-normalization", False, "If true, replace the default length normalization by "
                "scaling to length sqrt(dim) in the PLDA space")
    po.register("allow-partial", False, "Score the trials that have both vectors, warning about the others")
    opts, args = po.parse(num_args=(5, 1001))
    if len(args) % 2 == 0:
        raise SidError(f"each trials file needs its scores file; got {len(args) - 3} file names after the tables")
    limit_blas_threads()
    plda = Plda.read(args[0])
    if opts.smoothing:
        plda.smooth_within_class_covariance(opts.smoothing)
    mean = kaldi_io.read_vector(opts.mean) if opts.mean else None
    transform = kaldi_io.read_matrix(opts.transform) if opts.transform else None

    def to_plda(x: np.ndarray) -> np.ndarray:
        if x.shape[1] != plda.dim:
            raise SidError(f"vectors have dimension {x.shape[1]} after the given transforms, "
                           f"the PLDA model {args[0]} has {plda.dim}")
        return plda.transform_vectors(x, 1, opts.normalize_length, opts.simple_length_normalization,
                                      in_place=True)[0]

    def read(rspecifier: str) -> tuple[list[str], np.ndarray]:
        # Read, transformed and PLDA-transformed a block at a time: the raw vectors are never held whole.
        keys, x = pipeline.read_prepared(rspecifier, mean, transform, opts.normalize_input, to_plda)
        if not keys:
            raise SidError(f"No iVectors present in {rspecifier}")
        return keys, x

    enroll_keys, enroll = read(args[1])
    test_keys, test = (enroll_keys, enroll) if args[2] == args[1] else read(args[2])
    log.info("Read %d enrolment and %d test vectors", len(enroll_keys), len(test_keys))
    for trials, out in zip(args[3::2], args[4::2]):
        trial_list = read_trials(trials)
        ei, ti, ok = index_trials(trial_list, enroll_keys, test_keys, opts.allow_partial)
        scores = plda.log_likelihood_ratios(enroll, np.ones(len(enroll_keys), dtype=np.int64), test, ei[ok], ti[ok])
        write_scores(out, trial_list.raw1[ok], trial_list.raw2[ok], scores)
        log.info("%s: mean score was %g, standard deviation was %g", trials, scores.mean(), scores.std())
        log.info("%s: processed %d trials, %d had errors.", trials, int(ok.sum()), int((~ok).sum()))
    return 0

if __name__ == "__main__":
    run_main(main)
