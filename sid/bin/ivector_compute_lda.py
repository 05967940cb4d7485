"""ivector-compute-lda: an LDA transform (with its mean offset) from vectors and speaker labels.

Usage: python -m sid.bin.ivector_compute_lda [options] <ivector-rspecifier> <utt2spk-rspecifier> <lda-matrix-out>
e.g.: python -m sid.bin.ivector_compute_lda --dim=200 --total-covariance-factor=0.0 scp:xvector.scp ark:data/train/utt2spk transform.mat
Writes a dim x (D+1) matrix (Kaldi binary unless --binary=false). Rows are
the leading eigenvectors, each signed so its largest entry is positive.
"""

import logging

from sid import kaldi_io
from sid.backend import limit_blas_threads
from sid.backend.lda import compute_lda, speaker_index
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

log = logging.getLogger("ivector_compute_lda")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("dim", 100, "Dimension we keep with the LDA transform")
    po.register("total-covariance-factor", 0.1, "If this is 0.0 we normalize to make the within-class "
                "covariance unit; if 1.0, the total covariance; if between, we normalize an interpolated matrix.")
    po.register("covariance-floor", 1.0e-06, "Floor the eigenvalues of the interpolated covariance matrix "
                "to the product of its largest eigenvalue and this number.")
    po.register("binary", True, "Write output in binary mode")
    opts, args = po.parse(num_args=3)
    limit_blas_threads()
    keys, x = kaldi_io.read_vectors(args[0])
    utt2spk = kaldi_io.read_token_map(args[1])
    idx, spks = speaker_index(keys, utt2spk)
    for k in (keys[i] for i in (idx < 0).nonzero()[0][:10]):
        log.warning("utt2spk has no entry for utterance %s, skipping it.", k)
    log.info("Read %d utterances, %d with errors.", int((idx >= 0).sum()), int((idx < 0).sum()))
    if not (idx >= 0).any():
        raise SidError(f"no vector of {args[0]} has a speaker in {args[1]}")
    keep = idx >= 0
    log.info("Computing within-class covariance.")
    if not keep.all():  # a copy of the table only when some rows are left out
        x, idx = x[keep], idx[keep]
    lda = compute_lda(x, idx, opts.dim, opts.total_covariance_factor, opts.covariance_floor)
    kaldi_io.write_object(args[2], lda, opts.binary)
    log.info("Wrote LDA transform to %s", args[2])
    return 0


if __name__ == "__main__":
    run_main(main)
