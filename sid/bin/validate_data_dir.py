"""validate_data_dir: check a Kaldi data dir and report every problem with its file and line.

Checks: each table sorted (C locale) with unique keys and no empty lines; utt2spk and
spk2utt consistent, utt2spk also sorted by speaker; every utterance-keyed file
(wav.scp without segments, segments, feats.scp, vad.scp, text, utt2dur,
utt2num_frames, utt2aug, ...) has exactly the utterances of utt2spk; speaker- and
recording-keyed files match; segments times and recordings valid; numeric files
numeric; optionally audio files exist and archive frame counts match utt2num_frames.
Exit status 1 if there is any problem.
"""

import logging
import sys

from sid.cli import KaldiOptions, run_main
from sid.data.datadir import validate

USAGE = """Usage: validate_data_dir [options] <data-dir>
Check a Kaldi data directory; every problem is printed with file:line.
 e.g.: validate_data_dir --no-feats=true data/train"""

log = logging.getLogger("validate_data_dir")


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("no-feats", False, "Do not require feats.scp (it is still checked if present)")
    po.register("no-wav", False, "Do not require wav.scp (it is still checked if present)")
    po.register("no-text", False, "Accepted for Kaldi compatibility: text is never required here")
    po.register("non-print", False, "Allow non-printable (control) characters in text")
    po.register("no-spk-sort", False, "Do not require utt2spk to be sorted by speaker as well")
    po.register("check-audio", False, "Check that every audio file in wav.scp exists")
    po.register("check-frames", True, "With utt2num_frames, compare frame counts in feats.scp/vad.scp archives")
    opts, (data,) = po.parse(num_args=1)
    errors, warnings = validate(data, no_feats=opts.no_feats, no_wav=opts.no_wav, no_spk_sort=opts.no_spk_sort,
                                non_print=opts.non_print,
                                check_audio=opts.check_audio, check_frames=opts.check_frames)
    for w in warnings:
        log.warning("%s", w)
    if errors:
        out = sys.stderr
        for e in errors:
            out.write(e + "\n")
        log.error("%d problems in %s", len(errors), data)
        return 1
    print(f"Successfully validated data-directory {data}")
    return 0


if __name__ == "__main__":
    run_main(main)
