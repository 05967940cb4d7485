"""copy_feats: Kaldi's copy-feats.

Usage: copy_feats [options] <feature-rspecifier> <feature-wspecifier>
 e.g.: copy_feats --compress=true ark:- ark,scp:foo.ark,foo.scp
Copies features, optionally compressing them (kaldiio implements Kaldi's compressed
matrix formats, readable by Kaldi).
"""

import contextlib
import logging

from sid.cli import KaldiOptions, run_main
from sid.kaldi_io import AUTOMATIC_COMPRESSION, ScalarWriter, TableWriter, read_matrices

log = logging.getLogger("copy_feats")


def main(argv=None) -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("compress", False, "If true, write output in compressed form (only currently supported for wxfilename, "
                "i.e. archive/script, output)")
    po.register("compression-method", AUTOMATIC_COMPRESSION, "Only relevant if --compress=true; the method "
                "(1 through 7) to compress the matrix.  Search for CompressionMethod in src/matrix/compressed-matrix.h.")
    po.register("write-num-frames", "", "Wspecifier to write length in frames of each utterance. e.g. "
                "'ark,t:utt2num_frames'.  Only applicable if writing tables, not when this program is writing "
                "individual files.")
    opts, (rspecifier, wspecifier) = po.parse(argv, num_args=2)
    method = opts.compression_method if opts.compress else None
    num_done = 0
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(TableWriter(wspecifier, compression_method=method))
        nf = stack.enter_context(ScalarWriter(opts.write_num_frames)) if opts.write_num_frames else None
        for utt, feats in read_matrices(rspecifier):
            writer.write(utt, feats)
            if nf:
                nf.write(utt, feats.shape[0])
            num_done += 1
    log.info(f"Copied {num_done} feature matrices.")
    return 0 if num_done != 0 else 1


if __name__ == "__main__":
    run_main(main)
