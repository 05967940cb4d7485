"""apply_cmvn_sliding: Kaldi's apply-cmvn-sliding.

Usage: apply_cmvn_sliding [options] <feats-rspecifier> <feats-wspecifier>
 e.g.: apply_cmvn_sliding --norm-vars=false --center=true --cmn-window=300 scp:feats.scp ark:-
Applies sliding-window cepstral mean (and optionally variance) normalization per utterance.
"""

import logging

from sid.cli import KaldiOptions, run_main
from sid.features.cmvn import SlidingCmn
from sid.features.options import SlidingWindowCmnOptions
from sid.kaldi_io import TableWriter, read_matrices

log = logging.getLogger("apply_cmvn_sliding")


def main(argv=None) -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    SlidingWindowCmnOptions().register(po)
    opts, (rspecifier, wspecifier) = po.parse(argv, num_args=2)
    cmn = SlidingWindowCmnOptions.from_opts(opts)
    normalise = SlidingCmn(cmn.cmn_window, cmn.min_window, cmn.center, cmn.normalize_variance)
    num_done = num_err = 0
    with TableWriter(wspecifier) as writer:
        for utt, feats in read_matrices(rspecifier):
            if feats.ndim != 2:
                log.warning(f"utterance {utt}: expected a feature matrix, got {feats.ndim} dimensions")
                num_err += 1
                continue
            writer.write(utt, normalise(feats))
            num_done += 1
    log.info(f"Applied sliding-window cepstral mean normalization to {num_done} utterances, {num_err} had errors.")
    return 0 if num_done != 0 else 1


if __name__ == "__main__":
    run_main(main)
