#!/usr/bin/env python3
"""Usage: local/make_voxceleb1_trials.py [--data-dir DIR] <official-list> <kaldi-trials>

Converts an official VoxCeleb1 trial list (veri_test.txt, veri_test2.txt,
list_test_hard(2).txt, list_test_all(2).txt; '1|0 path1 path2', optionally .gz)
into Kaldi trials '<utt1> <utt2> target|nontarget' with utterance ids like
id10270-x6uYqmx31kE-00001. With --data-dir every utterance a trial names must be
in its utt2spk, else the error counts and lists the missing ones.
e.g. local/make_voxceleb1_trials.py --data-dir data/voxceleb1_test veri_test2.txt data/voxceleb1_test/trials_vox1_O_clean
"""

import logging
from pathlib import Path

from sid import voxceleb
from sid.cli import doc_argparser, run_main, setup_logging
from sid.data.table import read_keys
from sid.errors import DataDirError


def main():
    ap = doc_argparser(__doc__)
    ap.add_argument("--data-dir", help="test data dir whose utt2spk must hold every trial's utterances")
    ap.add_argument("official_list")
    ap.add_argument("trials")
    args = ap.parse_args()
    setup_logging()
    utts = None
    if args.data_dir:
        utt2spk = Path(args.data_dir) / "utt2spk"
        if not utt2spk.is_file():
            raise DataDirError(f"{utt2spk}: no such file")
        utts = set(read_keys(utt2spk))
    n, n_target = voxceleb.convert_trials(args.official_list, args.trials, utts)
    logging.info("%s: %d trials (%d target, %d nontarget) from %s", args.trials, n, n_target, n - n_target,
                 args.official_list)


if __name__ == "__main__":
    run_main(main)
