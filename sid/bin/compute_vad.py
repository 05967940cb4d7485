"""compute_vad: Kaldi's compute-vad (energy-based voice activity detection).

Usage: compute_vad [options] <feats-rspecifier> <vad-wspecifier>
 e.g.: compute_vad --config=conf/vad.conf scp:feats.scp ark,scp:vad.ark,vad.scp
Uses column 0 of the features (log-energy of MFCCs with --use-energy=true) and writes a
0/1 float vector per utterance.
"""

import logging

from sid.cli import KaldiOptions, run_main
from sid.kaldi_io import TableWriter, read_matrices
from sid.features.options import VadEnergyOptions
from sid.features.vad import compute_vad

log = logging.getLogger("compute_vad")


def main(argv=None) -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    VadEnergyOptions().register(po)
    po.register("omit-unvoiced-utts", False, "If true, do not write out voicing information for "
                "utterances that were judged 100% unvoiced.")
    opts, (feats_rspecifier, vad_wspecifier) = po.parse(argv, num_args=2)
    vad_opts = VadEnergyOptions.from_opts(opts)
    num_done = num_err = num_unvoiced = 0
    total_voiced = total_frames = 0.0
    with TableWriter(vad_wspecifier) as writer:
        for utt, feats in read_matrices(feats_rspecifier):
            if feats.ndim != 2 or feats.shape[0] == 0:
                log.warning(f"Empty features for utterance {utt}")
                num_err += 1
                continue
            vad = compute_vad(feats, vad_opts)
            voiced = float(vad.sum())
            if voiced == 0.0:
                log.warning(f"No frames were judged voiced for utterance {utt}")
                num_unvoiced += 1
            else:
                num_done += 1
            total_voiced += voiced
            total_frames += len(vad)
            if voiced == 0.0 and opts.omit_unvoiced_utts:
                continue
            writer.write(utt, vad)
    log.info(f"Applied energy based voice activity detection; processed {num_done} utterances successfully; "
             f"{num_err} had empty features, and {num_unvoiced} were completely unvoiced.")
    if total_frames:
        log.info(f"Proportion of voiced frames was {total_voiced / total_frames:g} over {int(total_frames)} frames.")
    return 0 if num_done != 0 else 1


if __name__ == "__main__":
    run_main(main)
