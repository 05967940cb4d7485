#!/usr/bin/env python3
"""Usage: local/make_voxceleb2.py [--meta vox2_meta.csv] [--nj 4] [--no-utt2dur] <voxceleb2-root> dev|test <data-dir>

Writes a Kaldi data dir (wav.scp, utt2spk, spk2utt, utt2dur, and spk2gender when
--meta is given) for VoxCeleb2 dev or test from <voxceleb2-root>/<split>/aac/
idXXXXX/<video>/NNNNN.m4a. wav.scp names the m4a files themselves: they are
decoded in-process (PyAV) when features are made; local/convert_m4a.py converts
them to wav/flac once for those who prefer that. Utterance ids look like
id00012-21Uxsk56VDQ-00001. The data dir appears only when complete.
e.g. local/make_voxceleb2.py --nj 8 /data/voxceleb2 dev data/voxceleb2_dev
"""

import logging
from pathlib import Path

from sid import voxceleb
from sid.cli import doc_argparser, run_main, setup_logging
from sid.errors import SidError


def main():
    ap = doc_argparser(__doc__)
    ap.add_argument("--meta", help="vox2_meta.csv: speaker genders")
    ap.add_argument("--nj", type=int, default=4, help="processes reading durations")
    ap.add_argument("--no-utt2dur", action="store_true", help="skip reading every file's duration")
    ap.add_argument("root")
    ap.add_argument("split", choices=["dev", "test"])
    ap.add_argument("data_dir")
    args = ap.parse_args()
    setup_logging()
    split_dir = Path(args.root) / args.split
    audio_dir = next((split_dir / d for d in ("aac", "wav") if (split_dir / d).is_dir()), None)
    if audio_dir is None:
        raise SidError(f"{split_dir}: expected VoxCeleb2's aac/ folder in it")
    utts = voxceleb.scan_tree(audio_dir)
    durs = None if args.no_utt2dur else voxceleb.durations([p for _, _, p in utts], args.nj)
    genders = {s: g for s, (g, _) in voxceleb.read_meta(args.meta).items()} if args.meta else None
    voxceleb.write_data_dir(args.data_dir, utts, durs, genders)
    logging.info("VoxCeleb2 %s: %d utterances of %d speakers in %s", args.split, len(utts),
                 len({s for _, s, _ in utts}), args.data_dir)


if __name__ == "__main__":
    run_main(main)
