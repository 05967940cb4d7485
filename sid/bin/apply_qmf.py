"""apply_qmf: QMF-calibrated scores (LLRs) of AS-normalised cosine scores, and the decision threshold.

Usage: python -m sid.bin.apply_qmf [options] <qmf> <utt2dur> <cohort-rspecifier> <emb-rspecifier> <scores-in> <scores-out>
 e.g.: python -m sid.bin.apply_qmf --mean=exp/scores/backend_cosine/mean.vec --threshold-out=exp/scores/t.cosine_asnorm_qmf.threshold \
         exp/scores/backend_cosine/qmf.json data/test/utt2dur scp:exp/emb/train/spk_xvector.scp \
         scp:exp/emb/test/xvector.scp exp/scores/t.cosine_asnorm.score exp/scores/t.cosine_asnorm_qmf.score
<scores-in> are AS-norm scores (steps/score_norm.sh); the imposter means are those of the
model's top-N cohort scores of each enrolment and test embedding (<emb-rspecifier>, whose
durations are in <utt2dur>). --threshold-out gets '<p-target> <threshold>' per --p-targets:
accept a trial when its calibrated score exceeds the threshold (Bayes decision, costs 1).
"""

import logging

import numpy as np

from sid.cli import KaldiOptions, run_main

log = logging.getLogger("apply_qmf")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("mean", "", "Mean vector subtracted first (the one train_qmf used)")
    po.register("p-targets", "0.01,0.05", "Comma-separated target priors for --threshold-out")
    po.register("threshold-out", "", "File for '<p-target> <threshold>' lines")
    opts, (qmf_file, utt2dur_file, cohort_rspec, emb_rspec, scores_in, scores_out) = po.parse(num_args=6)
    from sid import kaldi_io
    from sid.backend import pipeline
    from sid.backend.qmf import QMF, bayes_threshold, features, imposter_stats
    from sid.backend.scoring import index_trials, read_scores, write_scores
    from sid.data.table import atomic_path, read_dict
    from sid.errors import SidError
    from sid.metrics import parse_p_targets

    priors = parse_p_targets(opts.p_targets)
    thresholds = [(p, bayes_threshold(p)) for p in priors]
    model = QMF.load(qmf_file)
    mean = kaldi_io.read_vector(opts.mean) if opts.mean else None
    keys, emb = pipeline.read_prepared(emb_rspec, mean, None, True)
    _, cohort = pipeline.read_prepared(cohort_rspec, mean, None, True)
    utt2dur = read_dict(utt2dur_file)
    scored, scores = read_scores(scores_in)
    ei, ti, _ = index_trials(scored, keys, keys)
    used, inv = np.unique(np.concatenate([ei, ti]), return_inverse=True)
    missing = [keys[i] for i in used if keys[i] not in utt2dur]
    if missing:
        raise SidError(f"{utt2dur_file}: no duration for '{missing[0]}' ({len(missing)} in all)")
    dur = np.array([float(utt2dur[keys[i]]) for i in used])
    imp, _ = imposter_stats(emb[used], cohort, model.top_n)
    e, t = inv[:len(ei)], inv[len(ei):]
    llr = model(features(scores, dur[e], dur[t], imp[e], imp[t]))
    write_scores(scores_out, scored.raw1, scored.raw2, llr)
    if opts.threshold_out:
        with atomic_path(opts.threshold_out) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.writelines(f"{p:g} {th:.6f}\n" for p, th in thresholds)
    log.info("Calibrated %d scores; thresholds %s", len(llr), ", ".join(f"{th:.3f} at p-target {p:g}" for p, th in thresholds))
    return 0


if __name__ == "__main__":
    run_main(main)
