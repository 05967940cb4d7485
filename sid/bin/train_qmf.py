"""train_qmf: fit QMF score calibration on trials drawn from the training speakers.

Usage: python -m sid.bin.train_qmf [options] <utt2spk> <utt2dur> <emb-rspecifier> <cohort-rspecifier> <qmf-out>
 e.g.: python -m sid.bin.train_qmf --mean=exp/scores/backend_cosine/mean.vec --top-n=300 data/train/utt2spk \
         data/train/utt2dur scp:exp/emb/train/xvector.scp scp:exp/emb/train/spk_xvector.scp exp/scores/qmf.json
Draws --num-trials calibration trials (half target) among the utterances of <utt2spk>,
scores them as steps/score_cosine.sh and steps/score_norm.sh score evaluation trials
(cosine of mean-subtracted embeddings, AS-norm with the --top-n best cohort scores; the
cohort is keyed by speaker and a side's own speaker is left out), and fits a logistic
regression from [AS-norm score, log durations, imposter means] to an LLR (sid.backend.qmf),
weighted for target prior --p-fit.
"""

import logging

import numpy as np

from sid.cli import KaldiOptions, run_main

log = logging.getLogger("train_qmf")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("num-trials", 20000, "Calibration trials to draw (half target)")
    po.register("top-n", 300, "Cohort scores per vector for AS-norm and the imposter means")
    po.register("seed", 777, "Seed of the calibration trial draw")
    po.register("mean", "", "Mean vector subtracted from embeddings and cohort (as steps/score_cosine.sh)")
    po.register("p-fit", 0.5, "Target prior the regression is weighted for (0.5: classes weigh equally); the "
                "LLRs it gives are most accurate near the thresholds of target priors around it")
    opts, (utt2spk_file, utt2dur_file, emb_rspec, cohort_rspec, out) = po.parse(num_args=5)
    from sid import kaldi_io
    from sid.backend import pipeline
    from sid.backend.qmf import QMF, asnorm_trials, draw_trials, features
    from sid.data.table import read_dict
    from sid.errors import SidError

    mean = kaldi_io.read_vector(opts.mean) if opts.mean else None
    keys, emb = pipeline.read_prepared(emb_rspec, mean, None, True)
    ckeys, cohort = pipeline.read_prepared(cohort_rspec, mean, None, True)
    utt2spk = read_dict(utt2spk_file)
    utt2dur = {u: float(d) for u, d in read_dict(utt2dur_file).items()}
    row = {k: i for i, k in enumerate(keys)}
    usable = {u: s for u, s in utt2spk.items() if u in row and u in utt2dur}
    if len(usable) < len(utt2spk):
        log.warning("%d of %d utterances have no embedding or duration; drawing trials from the rest",
                    len(utt2spk) - len(usable), len(utt2spk))
    ei, ti, labels = draw_trials(usable, opts.num_trials, opts.seed)
    utts = sorted(usable, key=str.encode)
    rows = np.array([row[u] for u in utts])
    crow = {k: i for i, k in enumerate(ckeys)}
    exclude = np.array([crow.get(usable[u], -1) for u in utts])
    if (exclude < 0).all():
        raise SidError(f"{cohort_rspec}: no cohort vector is keyed by a speaker of {utt2spk_file} "
                       "(expected speaker-mean embeddings, spk_xvector.scp)")
    _, asn, imp = asnorm_trials(emb[rows], cohort, ei, ti, opts.top_n, exclude)
    dur = np.array([utt2dur[u] for u in utts])
    model = QMF.fit(features(asn, dur[ei], dur[ti], imp[ei], imp[ti]), labels, opts.top_n, opts.p_fit)
    model.save(out)
    log.info("QMF from %d calibration trials (%d target) of %d utterances: weights %s, bias %.4g",
             len(labels), int(labels.sum()), len(utts), np.array2string(model.weights, precision=4), model.bias)
    return 0


if __name__ == "__main__":
    run_main(main)
