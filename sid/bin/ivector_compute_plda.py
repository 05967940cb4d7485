"""ivector-compute-plda: train Kaldi's two-covariance PLDA model with EM.

Usage: python -m sid.bin.ivector_compute_plda [options] <spk2utt-rspecifier> <ivector-rspecifier> <plda-out>
e.g.: python -m sid.bin.ivector_compute_plda ark:data/train/spk2utt "ark:ivector-normalize-length scp:xvector.scp ark:- |" plda
"""

import logging

import numpy as np

from sid import kaldi_io
from sid.backend import limit_blas_threads
from sid.backend.plda import estimate_plda
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

log = logging.getLogger("ivector_compute_plda")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("binary", True, "Write output in binary mode")
    po.register("num-em-iters", 10, "Number of iterations of E-M used for PLDA estimation")
    opts, args = po.parse(num_args=3)
    limit_blas_threads()
    spk2utt = kaldi_io.read_pairs(args[0])
    keys, x = kaldi_io.read_vectors(args[1])
    row = {k: i for i, k in enumerate(keys)}
    rows, spk_idx = [], []
    num_spk = num_spk_err = num_utt_err = 0
    for spk, utts in spk2utt:
        found = [row[u] for u in utts if u in row]
        num_utt_err += len(utts) - len(found)
        if not found:
            log.warning("Not producing output for speaker %s since no utterances had iVectors", spk)
            num_spk_err += 1
            continue
        rows.extend(found)
        spk_idx.extend([num_spk] * len(found))
        num_spk += 1
    log.info("Accumulated stats from %d speakers (%d with no utterances), consisting of %d utterances "
             "(%d absent from input).", num_spk, num_spk_err, len(rows), num_utt_err)
    if num_spk == 0:
        raise SidError(f"No stats accumulated, unable to estimate PLDA: no vector of {args[1]} is in {args[0]}")
    if len(rows) == len(x) and len(set(rows)) == len(x):
        # Every vector used once: train on the table in its own order, not on a reordered copy.
        idx = np.empty(len(x), dtype=np.int64)
        idx[rows] = spk_idx
        plda = estimate_plda(x, idx, opts.num_em_iters)
    else:
        plda = estimate_plda(x[rows], np.array(spk_idx), opts.num_em_iters)
    plda.write(args[2], opts.binary)
    return 0


if __name__ == "__main__":
    run_main(main)
