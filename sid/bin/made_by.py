"""Whether a step's output is up to date with its options and inputs (sid.provenance.step_done)."""

from sid.cli import KaldiOptions, run_main

USAGE = """Check the record of what made a step's output (<output>.made_by: the step's options and a
fingerprint of each input file and of the archives an input scp points into).
Exit status 0: the record matches, the output is up to date. 3: it is missing or differs (what
changed is printed); the stale record is removed and the new one left in <marker>.new, which the
step renames to <marker> once it has made the output again (utils/made_by.sh does both).
Usage:  made_by <marker> <options> [<input> ...]
 e.g.:  made_by exp/scores/backend_plda/.made_by "lda_dim=200" exp/emb/train/xvector.scp data/train/utt2spk"""

REMAKE = 3


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("what", "", "Name printed with the message (the calling step)")
    opts, args = po.parse(num_args=(2, 100000))

    from sid.provenance import step_done

    return 0 if step_done(args[0], args[1], args[2:], opts.what) else REMAKE


if __name__ == "__main__":
    run_main(main)
