"""ivector-mean: the global mean of vectors, or per-speaker mean vectors (Kaldi's ivector-mean).

Usage: python -m sid.bin.ivector_mean <spk2utt-rspecifier> <ivector-rspecifier> <ivector-wspecifier> [<num-utt-wspecifier>]
   or: python -m sid.bin.ivector_mean <ivector-rspecifier> <mean-wxfilename>
With 3 or 4 arguments, averages the vectors of each speaker's utterances
(the optional 4th table gets the number of utterances per speaker, for
PLDA scoring with --num-utts); with 2, writes the mean of all vectors
(a double vector, text unless --binary=true, as Kaldi).
e.g.: python -m sid.bin.ivector_mean ark:data/train/spk2utt scp:xvector.scp ark:spk_xvector.ark ark,t:num_utts.ark
"""

import logging

import numpy as np

from sid import kaldi_io
from sid.backend import limit_blas_threads
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError

log = logging.getLogger("ivector_mean")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("binary", False, "Write output in binary mode (only for the 2-argument form)")
    opts, args = po.parse(num_args=(2, 4))
    limit_blas_threads()
    if len(args) == 2:
        # Streamed a block at a time, as Kaldi streams it: memory does not grow with the table.
        total, count = None, 0
        for keys, x in kaldi_io.iter_vector_blocks(args[0], 1024):
            part = x.sum(axis=0, dtype=np.float64)
            total = part if total is None else total + part
            count += len(keys)
        if not count:
            raise SidError(f"{args[0]}: no vectors read")
        mean = total / count
        kaldi_io.write_object(args[1], mean, opts.binary)
        log.info("Computed mean of %d iVectors; norm of mean is %g", count, np.linalg.norm(mean))
        return 0
    spk2utt = kaldi_io.read_pairs(args[0])
    keys, x = kaldi_io.read_vectors(args[1])
    row = {k: i for i, k in enumerate(keys)}
    num_done = num_err_spk = num_utt_done = num_utt_err = 0
    out_keys, means, counts = [], [], []
    for spk, utts in spk2utt:
        idx = [row[u] for u in utts if u in row]
        for u in utts:
            if u not in row:
                log.warning("No iVector present in input for utterance %s", u)
        num_utt_err += len(utts) - len(idx)
        if not idx:
            log.warning("Not producing output for speaker %s since no utterances had iVectors", spk)
            num_err_spk += 1
            continue
        out_keys.append(spk)
        means.append(x[idx].mean(axis=0, dtype=np.float64).astype(np.float32))
        counts.append(len(idx))
        num_utt_done += len(idx)
        num_done += 1
    with kaldi_io.TableWriter(args[2]) as w:
        for spk, mean in zip(out_keys, means):
            w.write(spk, mean)
    if len(args) == 4:
        kaldi_io.write_int_table(args[3], zip(out_keys, counts))
    log.info("Computed mean of %d speakers (%d with no utterances), consisting of %d utterances (%d absent from input).",
             num_done, num_err_spk, num_utt_done, num_utt_err)
    if means:
        m = np.stack(means).astype(np.float64)
        log.info("Norm of mean of speakers is %g, root-mean-square speaker-iVector length divided by sqrt(dim) is %g",
                 np.linalg.norm(m.mean(axis=0)), np.sqrt((m * m).sum(axis=1).mean() / m.shape[1]))
    return 0 if num_done else 1


if __name__ == "__main__":
    run_main(main)
