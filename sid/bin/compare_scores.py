"""compare_scores: two systems' scores on the same trials, and whether their difference is more
than the luck of which speakers were tested.

Usage: python -m sid.bin.compare_scores [options] <trials> <utt2spk> <scores-a> <scores-b>
Prints, for A, B and B - A, the EER (%) and the minDCF at each --p-targets (as compute_metrics
does), with each difference's --confidence interval and the share of resamples in which B is
worse, over --num-resamples paired speaker-level bootstrap resamples: the test speakers drawn
with replacement, each trial counted once per copy of its speakers (trials that share a speaker
are not independent, so resampling trials alone would give too narrow an interval), A and B
scored on the same draw. <utt2spk> gives each trial utterance's speaker (for pooled folds, the
folds' test utt2spk files concatenated); a target trial between two speakers, or a nontarget
one within one, is an error naming its line. Both score files must score every trial.
e.g.: python -m sid.bin.compare_scores data/test/trials/test data/test/utt2spk \\
        exp/scores_resemblyzer/test.cosine.score exp/scores_resemblyzer_ft/test.cosine.score
"""

import numpy as np

from sid.backend.scoring import match_scores, read_scores, read_trials
from sid.cli import KaldiOptions, progress, run_main
from sid.data.table import read_dict
from sid.errors import SidError
from sid.metrics import evaluate, parse_p_targets, speaker_bootstrap


def aligned_scores(trials, path: str) -> np.ndarray:
    """The scores of ``path`` in the trial list's order; every trial must be scored."""
    scored, scores = read_scores(path)
    match_scores(trials, scored)
    out = np.empty(len(trials))
    out[trials.rows_of(scored)] = scores
    return out


def trial_speakers(trials, utt2spk_path: str) -> tuple[np.ndarray, np.ndarray]:
    utt2spk = read_dict(utt2spk_path)
    sides = []
    for keys in (trials.keys1, trials.keys2):
        missing = [i for i, k in enumerate(keys) if k not in utt2spk]
        if missing:
            i = missing[0]
            raise SidError(f"{trials.where(i)}: utterance '{keys[i]}' is not in {utt2spk_path} "
                           f"({len(missing)} trial side(s) lack a speaker)")
        sides.append(np.array([utt2spk[k] for k in keys]))
    same = sides[0] == sides[1]
    bad = np.flatnonzero(same != trials.labels)
    if len(bad):
        i = int(bad[0])
        label = "target" if trials.labels[i] else "nontarget"
        raise SidError(f"{trials.where(i)}: '{trials.pair(i)}' is a {label} trial, but {utt2spk_path} gives "
                       f"speakers '{sides[0][i]}' and '{sides[1][i]}'")
    return sides[0], sides[1]


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("num-resamples", 1000, "Speaker-level bootstrap resamples")
    po.register("seed", 0, "Random seed of the resamples")
    po.register("confidence", 0.95, "Coverage of the printed intervals of B - A")
    po.register("p-targets", "0.01", "Comma-separated target priors for minDCF")
    opts, args = po.parse(num_args=4)
    trials_path, utt2spk_path, path_a, path_b = args
    p_targets = parse_p_targets(opts.p_targets)
    if opts.num_resamples < 1:
        raise SidError(f"--num-resamples must be at least 1, got {opts.num_resamples}")
    if not 0 < opts.confidence < 1:
        raise SidError(f"--confidence must be between 0 and 1, got {opts.confidence}")
    trials = read_trials(trials_path, need_labels=True)
    spk1, spk2 = trial_speakers(trials, utt2spk_path)
    systems = [aligned_scores(trials, path_a), aligned_scores(trials, path_b)]
    full = [evaluate(s, trials.labels, p_targets) for s in systems]
    draws = speaker_bootstrap(systems, trials.labels, spk1, spk2, opts.num_resamples, opts.seed, p_targets,
                              progress=lambda it: progress(it, desc="speaker resamples", unit="resample"))
    diffs = draws[:, 1] - draws[:, 0]
    tail = (1 - opts.confidence) / 2 * 100
    num_spk = len(np.unique(np.concatenate([spk1, spk2])))
    print(f"# A: {path_a}\n# B: {path_b}\n# {len(trials)} trials ({int(trials.labels.sum())} target) of "
          f"{num_spk} speakers; {opts.num_resamples} speaker resamples, seed {opts.seed}")
    print(f"{'figure':<16}{'A':>10}{'B':>10}{'B - A':>10}   {opts.confidence:.0%} interval of B - A   B worse in")
    keys = [("EER (%)", "eer")] + [(f"minDCF({p:g})", f"mindcf_{p:g}") for p in p_targets]
    for f, (name, key) in enumerate(keys):
        a, b = full[0][key], full[1][key]
        lo, hi = np.percentile(diffs[:, f], [tail, 100 - tail])
        worse = np.mean(diffs[:, f] > 0) * 100
        print(f"{name:<16}{a:>10.4f}{b:>10.4f}{b - a:>+10.4f}   [{lo:+.4f}, {hi:+.4f}]{worse:>18.1f}%")
    return 0


if __name__ == "__main__":
    run_main(main)
