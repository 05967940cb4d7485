"""Feature-table reading speed of sid.kaldi_io next to kaldiio's, on synthetic matrices.

Usage: python bench/kaldi_io.py [--utts 1000] [--frames 300] [--dim 80] [--repeats 5]
Writes --utts random float32 matrices (--frames x --dim) as an ark+scp, plain and compressed
(Kaldi's automatic method, as steps/make_features.sh stores them), and times, best of --repeats:
  ark         sequential read of the archive (copy_feats, the pipes of prepare_feats_for_egs.sh)
  scp         sequential read through the scp (apply_cmvn_sliding scp:feats.scp, extraction)
  random      every utterance once in random order through the scp (training's chunk reader)
sid.kaldi_io checks every object against the bytes present (truncation is an error); the
figures show what that costs against kaldiio's readers, which do not. Wall milliseconds;
the machine may be shared, so compare figures of one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import kaldiio  # noqa: E402

from sid.data.table import read_dict  # noqa: E402
from sid.kaldi_io import AUTOMATIC_COMPRESSION, ScpTable, TableWriter, read_matrices  # noqa: E402


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--utts", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--dim", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        ark, scp = f"{tmp}/f.ark", f"{tmp}/f.scp"
        print(f"{args.utts} utterances of {args.frames}x{args.dim}; best of {args.repeats}, wall ms")
        print(f"{'':12s} {'':8s} {'kaldiio':>8s} {'sid':>8s}")
        for label, method in (("plain", None), ("compressed", AUTOMATIC_COMPRESSION)):
            with TableWriter(f"ark,scp:{ark},{scp}", compression_method=method) as w:
                for i in range(args.utts):
                    w.write(f"utt{i:06d}", rng.standard_normal((args.frames, args.dim)).astype(np.float32))
            entries = read_dict(scp)
            order = list(entries)
            rng.shuffle(order)

            def kaldiio_random():
                fds: dict = {}
                for k in order:
                    kaldiio.load_mat(entries[k], fd_dict=fds)

            def sid_random():
                table = ScpTable(entries)
                for k in order:
                    table[k]

            rows = {
                "ark": (lambda: [v for _, v in kaldiio.ReadHelper(f"ark:{ark}")],
                        lambda: [v for _, v in read_matrices(f"ark:{ark}")]),
                "scp": (lambda: [v for _, v in kaldiio.ReadHelper(f"scp:{scp}")],
                        lambda: [v for _, v in read_matrices(f"scp:{scp}")]),
                "random": (kaldiio_random, sid_random),
            }
            for name, (theirs, ours) in rows.items():
                print(f"{label:12s} {name:8s} {best(theirs, args.repeats) * 1e3:8.0f} {best(ours, args.repeats) * 1e3:8.0f}")


if __name__ == "__main__":
    main()
