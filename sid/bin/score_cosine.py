"""score_cosine: cosine similarity of trial pairs.

Usage: python -m sid.bin.score_cosine <enroll-rspecifier> <test-rspecifier> <trials-rxfilename> <scores-wxfilename>
Trials have lines "<key1> <key2> [target|nontarget]"; output lines are
"<key1> <key2> <score>". Trials whose key has no vector are skipped with a
warning. Pipe the vectors through ivector_subtract_global_mean /
ivector_transform first for mean subtraction and LDA.
e.g.: python -m sid.bin.score_cosine "ark:python -m sid.bin.ivector_subtract_global_mean mean.vec scp:xvector.scp ark:- |" "ark:..." trials scores
"""

import logging

from sid.backend import kaldi_io, limit_blas_threads
from sid.backend.scoring import cosine_scores, index_trials, read_trials, write_scores
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

log = logging.getLogger("score_cosine")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    _, args = po.parse(num_args=4)
    limit_blas_threads()
    enroll_keys, enroll = kaldi_io.read_vectors(args[0])
    test_keys, test = (enroll_keys, enroll) if args[1] == args[0] else kaldi_io.read_vectors(args[1])
    if not enroll_keys or not test_keys:
        raise SidError(f"no vectors read from {args[0] if not enroll_keys else args[1]}")
    if enroll.shape[1] != test.shape[1]:
        raise SidError(f"enrolment vectors have dimension {enroll.shape[1]}, test vectors {test.shape[1]}")
    k1, k2, _ = read_trials(args[2])
    ei, ti, ok = index_trials(k1, k2, enroll_keys, test_keys)
    scores = cosine_scores(enroll, test, ei[ok], ti[ok])
    write_scores(args[3], k1[ok], k2[ok], scores)
    log.info("Processed %d trials, %d had errors.", int(ok.sum()), int((~ok).sum()))
    return 0 if ok.any() else 1


if __name__ == "__main__":
    run_main(main)
