#!/usr/bin/env python3
"""Usage: local/make_voxceleb1.py [--meta vox1_meta.csv] [--nj 4] [--no-utt2dur] <voxceleb1-root> dev|test|all <data-dir>

Writes a Kaldi data dir (wav.scp, utt2spk, spk2utt, utt2dur, and spk2gender when
--meta is given) for VoxCeleb1 dev, test or both. <voxceleb1-root> holds
wav/idXXXXX/<video>/NNNNN.wav (dev and test unzipped together) or Kaldi's
dev/wav/... and test/wav/.... The test set is the official 40 speakers
(id10270..id10309), or the 'Set' column of --meta. Utterance ids look like
id10270-x6uYqmx31kE-00001. The data dir appears only when complete.
e.g. local/make_voxceleb1.py --meta vox1_meta.csv /data/voxceleb1 test data/voxceleb1_test
"""

import logging
from pathlib import Path

from sid import voxceleb
from sid.cli import doc_argparser, run_main, setup_logging
from sid.errors import SidError


def main():
    ap = doc_argparser(__doc__)
    ap.add_argument("--meta", help="vox1_meta.csv: speaker genders (and dev/test sets)")
    ap.add_argument("--nj", type=int, default=4, help="processes reading durations")
    ap.add_argument("--no-utt2dur", action="store_true", help="skip reading every file's duration")
    ap.add_argument("root")
    ap.add_argument("split", choices=["dev", "test", "all"])
    ap.add_argument("data_dir")
    args = ap.parse_args()
    setup_logging()
    root = Path(args.root)
    meta = voxceleb.read_meta(args.meta) if args.meta else None
    if meta is not None:
        test_spks = {s for s, (_, split) in meta.items() if split == "test"}
    else:
        test_spks = voxceleb.VOX1_TEST_SPEAKERS
    if (root / "wav").is_dir():
        utts = voxceleb.scan_tree(root / "wav")
        if args.split != "all":
            utts = [u for u in utts if (u[1] in test_spks) == (args.split == "test")]
    elif (root / "dev" / "wav").is_dir() or (root / "test" / "wav").is_dir():
        splits = ["dev", "test"] if args.split == "all" else [args.split]
        utts = sorted((u for s in splits for u in voxceleb.scan_tree(root / s / "wav")), key=lambda t: t[0].encode())
    else:
        raise SidError(f"{root}: expected VoxCeleb1's wav/ (or dev/wav/ and test/wav/) folder in it")
    if not utts:
        raise SidError(f"{root}: no {args.split} utterances found")
    durs = None if args.no_utt2dur else voxceleb.durations([p for _, _, p in utts], args.nj)
    genders = {s: g for s, (g, _) in meta.items()} if meta is not None else None
    voxceleb.write_data_dir(args.data_dir, utts, durs, genders)
    logging.info("VoxCeleb1 %s: %d utterances of %d speakers in %s", args.split, len(utts),
                 len({s for _, s, _ in utts}), args.data_dir)


if __name__ == "__main__":
    run_main(main)
