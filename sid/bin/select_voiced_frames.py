"""select_voiced_frames: Kaldi's select-voiced-frames.

Usage: select_voiced_frames [options] <feats-rspecifier> <vad-rspecifier> <feats-wspecifier>
 e.g.: select_voiced_frames scp:feats.scp scp:vad.scp ark:-
Keeps the frames whose VAD value is 1. Utterances without VAD, with a frame-count
mismatch or with no voiced frames are warned about and skipped.
"""

import logging

from sid.cli import KaldiOptions, run_main
from sid.errors import SidError
from sid.kaldi_io import TableWriter, random_access, read_matrices
from sid.features.vad import select_voiced_frames

log = logging.getLogger("select_voiced_frames")


def main(argv=None) -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("select-unvoiced-frames", False, "If true, select unvoiced frames instead of voiced frames")
    opts, (feats_rspecifier, vad_rspecifier, wspecifier) = po.parse(argv, num_args=3)
    vads = random_access(vad_rspecifier)
    num_done = num_err = 0
    with TableWriter(wspecifier) as writer:
        for utt, feats in read_matrices(feats_rspecifier):
            if utt not in vads:
                log.warning(f"No VAD input found for utterance {utt}")
                num_err += 1
                continue
            try:
                voiced = select_voiced_frames(feats, vads[utt], opts.select_unvoiced_frames, utt)
            except SidError as err:
                log.warning(str(err))
                num_err += 1
                continue
            if voiced.shape[0] == 0:
                log.warning(f"No features were judged as voiced for utterance {utt}")
                num_err += 1
                continue
            writer.write(utt, voiced)
            num_done += 1
    log.info(f"Done selecting voiced frames; processed {num_done} utterances, {num_err} had errors.")
    return 0 if num_done != 0 else 1


if __name__ == "__main__":
    run_main(main)
