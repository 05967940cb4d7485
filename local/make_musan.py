#!/usr/bin/env python3
"""Usage: local/make_musan.py [--use-vocals true|false] [--nj 4] <musan-root> <out-dir>

Kaldi's steps/data/make_musan.sh for the MUSAN layout (<musan-root>/{music,noise,speech}/
<subset>/*.wav, music/<subset>/ANNOTATIONS): writes <out-dir>/musan_music,
<out-dir>/musan_noise and <out-dir>/musan_speech, each with wav.scp, utt2spk,
spk2utt (every file its own speaker) and utt2dur. --use-vocals false leaves out
music whose ANNOTATIONS say it has vocals (Kaldi's default keeps it). Files at
another sample rate are resampled when a recipe uses them. Each data dir appears
only when complete.
e.g. local/make_musan.py /data/musan data
"""

import logging
from pathlib import Path

from sid import voxceleb
from sid.cli import doc_argparser, parse_bool, run_main, setup_logging
from sid.errors import DataDirError, SidError


def music_vocals(subset: Path) -> dict[str, bool]:
    """``utt -> has vocals`` from a music subset's ANNOTATIONS (``utt genres Y|N artist ...``)."""
    ann = subset / "ANNOTATIONS"
    if not ann.is_file():
        return {}
    out = {}
    with open(ann, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 3 or fields[2] not in ("Y", "N"):
                raise DataDirError(f"{ann}:{lineno}: expected '<utt> <genres> Y|N ...', got '{line.strip()}'")
            out[fields[0]] = fields[2] == "Y"
    return out


def collect(root: Path, part: str, use_vocals: bool) -> list[tuple[str, str, str]]:
    part_dir = root / part
    if not part_dir.is_dir():
        raise SidError(f"{part_dir}: no such directory (expected MUSAN's music/, noise/ and speech/)")
    utts = []
    for subset in sorted(p for p in part_dir.iterdir() if p.is_dir()):
        vocals = music_vocals(subset) if part == "music" else {}
        for wav in sorted(subset.glob("*.wav")):
            if not use_vocals and vocals.get(wav.stem, False):
                continue
            utts.append((wav.stem, wav.stem, str(wav.resolve())))
    if not utts:
        raise SidError(f"{part_dir}: no <subset>/*.wav files")
    return utts


def main():
    ap = doc_argparser(__doc__)
    ap.add_argument("--use-vocals", type=parse_bool, default=True, help="keep music with vocals")
    ap.add_argument("--nj", type=int, default=4, help="processes reading durations")
    ap.add_argument("root")
    ap.add_argument("out_dir")
    args = ap.parse_args()
    setup_logging()
    root = Path(args.root)
    for part in ("music", "noise", "speech"):
        utts = collect(root, part, args.use_vocals)
        durs = voxceleb.durations([p for _, _, p in utts], args.nj)
        voxceleb.write_data_dir(Path(args.out_dir) / f"musan_{part}", utts, durs)
        logging.info("musan_%s: %d files, %.1f hours", part, len(utts), sum(durs) / 3600)


if __name__ == "__main__":
    run_main(main)
