"""score_cosine: cosine similarity of trial pairs.

Usage: python -m sid.bin.score_cosine <enroll-rspecifier> <test-rspecifier> <trials-rxfilename> <scores-wxfilename>
Trials have lines "<key1> <key2> [target|nontarget]"; output lines are
"<key1> <key2> <score>". A trial whose key has no vector is an error (with
--allow-partial, a warning, and the trial is not scored). --mean and --transform subtract a mean and apply a matrix (LDA) first,
in process, as the pipe ivector_subtract_global_mean | ivector_transform would;
the table is read once when enrolment and test rspecifiers are the same.
e.g.: python -m sid.bin.score_cosine --mean=mean.vec --transform=transform.mat scp:xvector.scp scp:xvector.scp trials scores
"""

import logging

from sid import kaldi_io
from sid.backend import limit_blas_threads, pipeline
from sid.backend.scoring import cosine_scores, index_trials, read_trials, write_scores
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

log = logging.getLogger("score_cosine")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("mean", "", "Mean vector to subtract first (as ivector-subtract-global-mean), e.g. mean.vec")
    po.register("transform", "", "Matrix to apply after the mean (as ivector-transform), e.g. transform.mat")
    po.register("allow-partial", False, "Score the trials that have both vectors, warning about the others")
    opts, args = po.parse(num_args=4)
    limit_blas_threads()
    mean = kaldi_io.read_vector(opts.mean) if opts.mean else None
    transform = kaldi_io.read_matrix(opts.transform) if opts.transform else None
    enroll_keys, enroll = pipeline.read_prepared(args[0], mean, transform, normalize=False)
    test_keys, test = ((enroll_keys, enroll) if args[1] == args[0]
                       else pipeline.read_prepared(args[1], mean, transform, normalize=False))
    if not enroll_keys or not test_keys:
        raise SidError(f"no vectors read from {args[0] if not enroll_keys else args[1]}")
    if enroll.shape[1] != test.shape[1]:
        raise SidError(f"enrolment vectors have dimension {enroll.shape[1]}, test vectors {test.shape[1]}")
    trials = read_trials(args[2])
    ei, ti, ok = index_trials(trials, enroll_keys, test_keys, opts.allow_partial)
    scores = cosine_scores(enroll, test, ei[ok], ti[ok])
    write_scores(args[3], trials.raw1[ok], trials.raw2[ok], scores)
    log.info("Processed %d trials, %d had errors.", int(ok.sum()), int((~ok).sum()))
    return 0


if __name__ == "__main__":
    run_main(main)
