#!/usr/bin/env python3
"""Usage: local/convert_m4a.py [--format flac|wav] [--nj 4] <data-dir> <audio-dir>

Converts once the m4a (AAC) files a data dir's wav.scp names into 16-bit flac or
wav under <audio-dir>/<speaker>/<utt>.<format>, in parallel, then points wav.scp
at them (the old one is kept as <data-dir>/.backup/wav.scp). Resumable: a file
already converted (each is written under a temporary name, then renamed) is not
converted again, and entries that are not m4a are left as they are, so a rerun
after an interruption or on a converted data dir only finishes what is missing.
Not needed: m4a files are decoded in-process when features are made.
e.g. local/convert_m4a.py --nj 8 data/voxceleb2_dev /data/voxceleb2_flac
"""

import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from sid.cli import doc_argparser, progress, run_main, setup_logging
from sid.data.audio import read_audio
from sid.data.table import read_dict, write_sorted
from sid.errors import AudioError, DataDirError


def convert(job: tuple[str, str, str]) -> str:
    """Convert one file; returns '' or the error."""
    utt, spec, out = job
    if os.path.isfile(out):
        return ""
    try:
        samples, sr = read_audio(spec, utt=utt)
        tmp = f"{out}.tmp.{os.getpid()}"
        sf.write(tmp, np.clip(np.round(samples), -32768, 32767).astype(np.int16), sr, subtype="PCM_16",
                 format=Path(out).suffix[1:].upper())
        os.replace(tmp, out)
    except (AudioError, OSError, RuntimeError) as err:
        return str(err)
    return ""


def main():
    ap = doc_argparser(__doc__)
    ap.add_argument("--format", choices=["flac", "wav"], default="flac")
    ap.add_argument("--nj", type=int, default=4, help="parallel conversions")
    ap.add_argument("data_dir")
    ap.add_argument("audio_dir")
    args = ap.parse_args()
    setup_logging()
    data = Path(args.data_dir)
    if (data / "segments").is_file():
        raise DataDirError(f"{data}/segments exists: convert the recordings' data dir, not a segmented one")
    wav = read_dict(data / "wav.scp")
    utt2spk = read_dict(data / "utt2spk")
    audio_dir = Path(args.audio_dir).resolve()
    jobs, new = [], dict(wav)
    for utt, spec in wav.items():
        if not spec.lower().endswith(".m4a"):
            continue
        if utt not in utt2spk:
            raise DataDirError(f"{data}/utt2spk: no speaker for '{utt}'; run utils/fix_data_dir.sh {data}")
        out = audio_dir / utt2spk[utt] / f"{utt}.{args.format}"
        out.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((utt, spec, str(out)))
        new[utt] = str(out)
    if not jobs:
        logging.info("%s/wav.scp names no m4a files: nothing to convert", data)
        return
    with ProcessPoolExecutor(max(1, args.nj)) as pool:
        errors = [e for e in progress(pool.map(convert, jobs, chunksize=16), total=len(jobs), desc="convert",
                                      unit="file") if e]
    if errors:
        more = "; ..." if len(errors) > 5 else ""
        raise AudioError(f"{len(errors)} of {len(jobs)} files could not be converted "
                         f"(rerun to retry only those): {'; '.join(errors[:5])}{more}")
    (data / ".backup").mkdir(exist_ok=True)
    shutil.copyfile(data / "wav.scp", data / ".backup" / "wav.scp")
    write_sorted(data / "wav.scp", new)
    logging.info("converted %d files to %s under %s; %s/wav.scp now names them", len(jobs), args.format,
                 audio_dir, data)


if __name__ == "__main__":
    run_main(main)
