"""plot_scores: DET curves of several back-ends and their target/non-target score histograms.

Usage: python -m sid.bin.plot_scores [options] <trials> <out-dir> <backend>=<scores> [<backend>=<scores> ...]
Writes <out-dir>/det_<trials-name>.png (one curve per back-end, EER marked)
and <out-dir>/hist_<trials-name>_<backend>.png for each back-end.
e.g.: python -m sid.bin.plot_scores data/test/trials exp/results cosine=exp/scores/trials.cosine.score plda=exp/scores/trials.plda.score
"""

import os

from sid.backend.scoring import match_scores, read_scores, read_trials
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError
from sid.metrics import det_points, eer_of, error_rates
from sid.plots import plot_det, plot_histograms


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("trials-name", "", "Name used in titles and file names (default: the trials file's basename)")
    po.register("allow-partial", False, "Plot score files that cover only part of the trials (else an error)")
    opts, args = po.parse(num_args=(3, 100))
    trials, out_dir, pairs = args[0], args[1], args[2:]
    name = opts.trials_name or os.path.basename(trials)
    trial_list = read_trials(trials, need_labels=True)
    curves = {}
    for pair in pairs:
        backend, eq, path = pair.partition("=")
        if not eq or not backend or not path:
            raise SidError(f"expected <backend>=<scores-file>, got '{pair}'")
        scored, scores = read_scores(path)
        labels = match_scores(trial_list, scored, opts.allow_partial)
        rates = error_rates(scores, labels)
        fpr, fnr = det_points(rates)
        curves[backend] = (fpr, fnr, eer_of(rates) * 100.0)
        plot_histograms(scores[labels], scores[~labels], os.path.join(out_dir, f"hist_{name}_{backend}.png"),
                        title=f"{name}: {backend} scores")
    plot_det(curves, os.path.join(out_dir, f"det_{name}.png"), title=f"DET: {name}")
    return 0


if __name__ == "__main__":
    run_main(main)
