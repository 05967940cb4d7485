"""compute_metrics: EER and minDCFs of a score file, merged into results.json.

Usage: python -m sid.bin.compute_metrics [options] <trials> <scores> <results-json>
Trials: "<utt1> <utt2> target|nontarget"; scores: "<utt1> <utt2> <score>"
(every scored pair must be a trial, and every trial scored unless --allow-partial).
EER is Kaldi's compute-eer, minDCF is sid/compute_min_dcf.py with c-miss =
c-fa = 1, all from one sort; Cllr reads the scores as natural-log LLRs (meaningful
for calibrated scores). With --threshold=FILE ('<p-target> <threshold>' lines, as
sid.bin.apply_qmf writes beside calibrated scores) also the actual DCF of accepting
scores above each threshold. results.json holds
  {"<trials-name>": {"<backend>": {"eer": %, "mindcf_0.01": x, "mindcf_0.001": x, "mindcf_0.05": x,
                                   "cllr": x, ["actdcf_<p>": x,] "num_trials": n}}}
and is rewritten atomically with this entry added or replaced.
e.g.: python -m sid.bin.compute_metrics --backend=plda data/voxceleb1_test/trials exp/scores/trials.plda.score exp/results/results.json
"""

import json
import os

from sid.backend.scoring import match_scores, read_scores, read_trials
from sid.cli import KaldiOptions, run_main
from sid.data.table import atomic_path
from sid.errors import SidError
from sid.metrics import evaluate, parse_p_targets


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("backend", "", "Back-end name for results.json (default: from the score file name, "
                "<trials-name>.<backend>.score, else 'scores')")
    po.register("trials-name", "", "Trials-list name for results.json (default: the trials file's basename)")
    po.register("allow-partial", False, "Evaluate a score file that covers only part of the trials (else an error)")
    po.register("p-targets", "0.01,0.001,0.05", "Comma-separated target priors for minDCF")
    po.register("threshold", "", "File of '<p-target> <threshold>' lines: actual DCF at each")
    opts, args = po.parse(num_args=3)
    trials, scores_file, results = args
    name = opts.trials_name or os.path.basename(trials)
    backend = opts.backend
    if not backend:
        base = os.path.basename(scores_file)
        prefix, suffix = f"{name}.", ".score"
        backend = base[len(prefix):-len(suffix)] if base.startswith(prefix) and base.endswith(suffix) else "scores"
    p_targets = parse_p_targets(opts.p_targets)
    scored, scores = read_scores(scores_file)
    labels = match_scores(read_trials(trials, need_labels=True), scored, opts.allow_partial)
    thresholds = []
    if opts.threshold:
        try:
            with open(opts.threshold, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if line.strip():
                        p, th = line.split()
                        thresholds.append((float(p), float(th)))
        except OSError as err:
            raise SidError(f"cannot read --threshold {opts.threshold}: {err.strerror}") from None
        except ValueError:
            raise SidError(f"{opts.threshold}:{lineno}: expected '<p-target> <threshold>'") from None
    entry = evaluate(scores, labels, p_targets, thresholds)
    data = {}
    if os.path.exists(results):
        try:
            with open(results, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as err:
            raise SidError(f"{results}: cannot read existing results ({err})") from None
    data.setdefault(name, {})[backend] = entry
    with atomic_path(results) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    print(f"{name} {backend} EER: {entry['eer']:.4g}% " +
          " ".join(f"minDCF(p-target={p:g}): {entry[f'mindcf_{p:g}']:.4f}" for p in p_targets) +
          f" Cllr: {entry['cllr']:.4f}" +
          "".join(f" actDCF(p-target={p:g}): {entry[f'actdcf_{p:g}']:.4f}" for p, _ in thresholds))
    return 0


if __name__ == "__main__":
    run_main(main)
