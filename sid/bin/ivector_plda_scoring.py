"""ivector-plda-scoring: PLDA log-likelihood ratios for trials.

Usage: python -m sid.bin.ivector_plda_scoring [options] <plda> <train-ivector-rspecifier> <test-ivector-rspecifier> <trials-rxfilename> <scores-wxfilename>
The trials file has lines "<key1> <key2>" (a third field, e.g. target, is
ignored); the output has lines "<key1> <key2> <score>". A trial whose key has
no vector is an error; with --allow-partial it is skipped with a warning, as
Kaldi does. Train (enrolment)
vectors may be speaker means: --num-utts gives the number of utterances
each was averaged over (default 1).
e.g.: python -m sid.bin.ivector_plda_scoring --num-utts=ark:num_utts.ark plda ark:spk_ivectors.ark ark:ivectors.ark trials scores
"""

import logging

import numpy as np

from sid import kaldi_io
from sid.backend import limit_blas_threads
from sid.backend.plda import Plda
from sid.backend.scoring import index_trials, read_trials, write_scores
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

log = logging.getLogger("ivector_plda_scoring")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("normalize-length", True, "If true, do length normalization as part of PLDA")
    po.register("simple-length-normalization", False, "If true, replace the default length normalization by "
                "scaling to length sqrt(dim) in the PLDA space")
    po.register("num-utts", "", "Table to read the number of utterances per speaker, e.g. ark:num_utts.ark")
    po.register("allow-partial", False, "Score the trials that have both vectors, warning about the others "
                "(Kaldi's behaviour)")
    opts, args = po.parse(num_args=5)
    limit_blas_threads()
    plda = Plda.read(args[0])
    # The trial list first: parsing it briefly needs about its own size again, which then does
    # not come on top of the tables.
    trials = read_trials(args[3])
    train_keys0, train0 = kaldi_io.read_vectors(args[1])
    train_keys, train = train_keys0, train0
    if opts.num_utts:
        num_utts = kaldi_io.read_int_table(opts.num_utts)
        has = np.array([k in num_utts for k in train_keys], dtype=bool)
        for k in np.asarray(train_keys, dtype=object)[~has][:10]:
            log.warning("Number of utterances not given for speaker %s", k)
        train_keys = [k for k, h in zip(train_keys, has) if h]
        train = train[has]
        train_n = np.array([num_utts[k] for k in train_keys], dtype=np.int64)
        if np.any(train_n <= 0):
            raise SidError(f"{opts.num_utts}: numbers of utterances must be positive")
    else:
        train_n = np.ones(len(train_keys), dtype=np.int64)
    if not train_keys:
        raise SidError(f"No training iVectors present in {args[1]}")
    if train.shape[1] != plda.dim:
        raise SidError(f"{args[1]}: vectors have dimension {train.shape[1]}, the PLDA model {args[0]} has {plda.dim}")
    # In place: the raw rows are not needed again (test rows of the same table reuse the result).
    e, e_scale = plda.transform_vectors(train, train_n, opts.normalize_length, opts.simple_length_normalization,
                                        in_place=True)
    log.info("Read %d training iVectors; average renormalization scale was %g", len(train_keys), e_scale.mean())
    # Kaldi reads both tables; when they are the same (utterance trials) one read serves both.
    test_keys, test = (train_keys0, train0) if args[2] == args[1] else kaldi_io.read_vectors(args[2])
    if not test_keys:
        raise SidError(f"No test iVectors present in {args[2]}")
    if test.shape[1] != plda.dim:
        raise SidError(f"{args[2]}: vectors have dimension {test.shape[1]}, the PLDA model {args[0]} has {plda.dim}")
    if test is train0 and train is train0 and np.all(train_n == 1):
        t, t_scale = e, e_scale  # same vectors, same single-utterance transform
    else:
        t, t_scale = plda.transform_vectors(test, 1, opts.normalize_length, opts.simple_length_normalization,
                                            in_place=True)  # train is a copy here, or another table
    log.info("Read %d test iVectors; average renormalization scale was %g", len(test_keys), t_scale.mean())
    ei, ti, ok = index_trials(trials, train_keys, test_keys, opts.allow_partial, sides=("train", "test"))
    scores = plda.log_likelihood_ratios(e, train_n, t, ei[ok], ti[ok])
    write_scores(args[4], trials.raw1[ok], trials.raw2[ok], scores)
    log.info("Mean score was %g, standard deviation was %g", scores.mean(), scores.std())
    log.info("Processed %d trials, %d had errors.", int(ok.sum()), int((~ok).sum()))
    return 0


if __name__ == "__main__":
    run_main(main)
