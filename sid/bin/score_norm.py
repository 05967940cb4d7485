"""score_norm: S-norm or adaptive S-norm (AS-norm) of a score file with a cohort of embeddings.

Usage: python -m sid.bin.score_norm [options] <cohort-rspecifier> <enroll-rspecifier> <test-rspecifier> <scores-in> <scores-out>
Each enrolment and test vector is scored against every cohort vector (cosine,
or PLDA with --plda, the cohort taking the test side); the mean and standard
deviation of its --top-n best cohort scores (all for --method=snorm) give
  s' = ((s - mu_enroll) / sd_enroll + (s - mu_test) / sd_test) / 2.
The cohort is usually the speaker-mean embeddings of the training set, passed
through the same mean subtraction / LDA / length normalisation as the trials:
--mean / --transform / --normalize-input do that in process for all three tables
(as the pipe ivector_subtract_global_mean | ivector_transform | ivector_normalize_length).
e.g.: python -m sid.bin.score_norm --method=asnorm --top-n=300 ark:cohort.ark ark:enroll.ark ark:test.ark scores scores_asnorm
"""

import logging

import numpy as np

from sid import kaldi_io
from sid.backend import limit_blas_threads, pipeline
from sid.backend.plda import Plda
from sid.backend.scoring import cohort_stats, index_trials, length_normalize, read_scores, snorm, write_scores
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

log = logging.getLogger("score_norm")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("method", "asnorm", "snorm (whole cohort) or asnorm (top-N cohort scores)")
    po.register("top-n", 300, "Number of best cohort scores per vector for asnorm")
    po.register("plda", "", "Score against the cohort with this PLDA model (default: cosine)")
    po.register("num-utts", "", "With --plda: table of the number of utterances per enrolment vector")
    po.register("mean", "", "Mean vector to subtract from every table first (as ivector-subtract-global-mean)")
    po.register("transform", "", "Matrix to apply after the mean (as ivector-transform), e.g. transform.mat")
    po.register("normalize-input", False, "Scale every vector to length sqrt(dim) after the transforms "
                "(as ivector-normalize-length)")
    po.register("allow-partial", False, "Normalise the scores whose pair has both vectors, warning about "
                "the others (else an error)")
    opts, args = po.parse(num_args=5)
    limit_blas_threads()
    mean = kaldi_io.read_vector(opts.mean) if opts.mean else None
    transform = kaldi_io.read_matrix(opts.transform) if opts.transform else None
    if opts.method not in ("snorm", "asnorm"):
        raise SidError(f"--method must be snorm or asnorm, got '{opts.method}'")
    if opts.top_n <= 0:
        raise SidError(f"--top-n must be positive, got {opts.top_n}")
    def read(rspecifier):
        return pipeline.read_prepared(rspecifier, mean, transform, opts.normalize_input)

    cohort_keys, cohort = read(args[0])
    enroll_keys, enroll = read(args[1])
    test_keys, test = (enroll_keys, enroll) if args[2] == args[1] else read(args[2])
    for name, keys in (("cohort", cohort_keys), ("enrolment", enroll_keys), ("test", test_keys)):
        if not keys:
            raise SidError(f"no {name} vectors read")
    if not cohort.shape[1] == enroll.shape[1] == test.shape[1]:
        raise SidError(f"dimensions differ: cohort {cohort.shape[1]}, enrolment {enroll.shape[1]}, test {test.shape[1]}")
    scored, scores = read_scores(args[3])
    ei, ti, ok = index_trials(scored, enroll_keys, test_keys, opts.allow_partial)
    k1, k2, scores, ei, ti = scored.raw1[ok], scored.raw2[ok], scores[ok], ei[ok], ti[ok]
    top_n = opts.top_n if opts.method == "asnorm" else len(cohort_keys)

    if opts.plda:
        plda = Plda.read(opts.plda)
        n_enroll = np.ones(len(enroll_keys), dtype=np.int64)
        if opts.num_utts:
            table = kaldi_io.read_int_table(opts.num_utts)
            missing = [k for k in enroll_keys if k not in table]
            if missing:
                raise SidError(f"{opts.num_utts}: no number of utterances for '{missing[0]}'")
            n_enroll = np.array([table[k] for k in enroll_keys], dtype=np.int64)
        c, _ = plda.transform_vectors(cohort, 1)
        e, _ = plda.transform_vectors(enroll, n_enroll)
        t, _ = plda.transform_vectors(test, 1)
        e_score = lambda rows: plda.score_matrix(e[rows], n_enroll[rows], c)  # noqa: E731
        t_score = lambda rows: plda.score_matrix(t[rows], 1, c)  # noqa: E731
    else:
        cn = length_normalize(cohort.astype(np.float64))
        en = length_normalize(enroll.astype(np.float64))
        tn = length_normalize(test.astype(np.float64))
        e_score = lambda rows: en[rows] @ cn.T  # noqa: E731
        t_score = lambda rows: tn[rows] @ cn.T  # noqa: E731

    # Cohort statistics only for the vectors that appear in the trials.
    e_used, e_inv = np.unique(ei, return_inverse=True)
    t_used, t_inv = np.unique(ti, return_inverse=True)
    e_stats = cohort_stats(lambda sl: e_score(e_used[sl]), len(e_used), top_n)
    t_stats = cohort_stats(lambda sl: t_score(t_used[sl]), len(t_used), top_n)
    normed = snorm(scores, e_inv, t_inv, e_stats, t_stats)
    write_scores(args[4], k1, k2, normed)
    log.info("Normalised %d scores with %s against %d cohort vectors (top %d)",
             len(normed), opts.method, len(cohort_keys), min(top_n, len(cohort_keys)))
    return 0


if __name__ == "__main__":
    run_main(main)
