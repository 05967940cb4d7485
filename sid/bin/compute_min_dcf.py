"""compute_min_dcf: minimum detection cost exactly as egs/sre08/v1 sid/compute_min_dcf.py.

Usage: python -m sid.bin.compute_min_dcf [--p-target 0.01] [--c-miss 1] [--c-fa 1] <scores-file> <trials-file>
Scores: "<utt1> <utt2> <score>"; trials: "<utt1> <utt2> target|nontarget".
Prints minDCF (4 decimals) on stdout and the threshold on stderr. Options
take Kaldi's script form (--p-target 0.01 or --p-target=0.01).
"""

import sys

from sid.backend.scoring import match_scores, read_scores, read_trials
from sid.cli import argparser, parse_bool, run_main
from sid.errors import SidError
from sid.metrics import error_rates, min_dcf


def main() -> int:
    parser = argparser(
        usage="python -m sid.bin.compute_min_dcf [options] <scores-file> <trials-file>",
        description="Compute the minimum detection cost function along with the threshold at which it occurs.")
    # Defaults stay ints, as in the original script, so the log line prints 'c-miss=1'.
    parser.add_argument("--p-target", type=float, default=0.01, help="Prior probability of a target trial (default %(default)s).")
    parser.add_argument("--c-miss", type=float, default=1, help="Cost of a missed detection (default %(default)s).")
    parser.add_argument("--c-fa", type=float, default=1, help="Cost of a spurious detection (default %(default)s).")
    parser.add_argument("--allow-partial", type=parse_bool, default=False,
                        help="Evaluate a score file that covers only part of the trials (else an error).")
    parser.add_argument("scores_filename", help="<utt1> <utt2> <score> lines")
    parser.add_argument("trials_filename", help="<utt1> <utt2> <target/nontarget> lines")
    args = parser.parse_args()
    sys.stderr.write(" ".join(sys.argv) + "\n")  # as Kaldi's script logs its command line (not on --help)
    if args.c_fa <= 0:
        raise SidError("--c-fa must be greater than 0")
    if args.c_miss <= 0:
        raise SidError("--c-miss must be greater than 0")
    if not 0 < args.p_target < 1:
        raise SidError("--p-target must be greater than 0 and less than 1")
    trials = read_trials(args.trials_filename, need_labels=True)
    scored, scores = read_scores(args.scores_filename)
    labels = match_scores(trials, scored, args.allow_partial)
    mindcf, threshold = min_dcf(error_rates(scores, labels), args.p_target, args.c_miss, args.c_fa)
    sys.stdout.write("{0:.4f}\n".format(mindcf))
    sys.stderr.write("minDCF is {0:.4f} at threshold {1:.4f} (p-target={2}, c-miss={3},"
                     "c-fa={4})\n".format(mindcf, threshold, args.p_target, args.c_miss, args.c_fa))
    return 0


if __name__ == "__main__":
    run_main(main)
