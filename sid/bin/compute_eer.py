"""compute-eer: Equal Error Rate exactly as Kaldi's compute-eer.

Usage: python -m sid.bin.compute_eer <scores-in>
Input lines are "<score> target|nontarget" ("-" reads stdin, "cmd |" a pipe);
prints the EER in percent on stdout and logs the threshold.
e.g.: paste trials scores | awk '{print $6, $3}' | python -m sid.bin.compute_eer -
"""

import logging

import numpy as np

from sid import kaldi_io
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError
from sid.metrics import compute_eer

log = logging.getLogger("compute_eer")


def read_score_labels(rxfilename: str) -> tuple[np.ndarray, np.ndarray]:
    data = kaldi_io.read_bytes(rxfilename)
    tokens = data.split()
    lines = data.splitlines()
    labels = np.array(tokens[1::2])
    ok = len(tokens) % 2 == 0 and len(tokens) == 2 * sum(1 for line in lines if line.strip())
    ok = ok and bool(np.all((labels == b"target") | (labels == b"nontarget")))
    try:
        scores = np.array(tokens[0::2], dtype=np.float32) if ok else None
    except ValueError:
        ok = False
    if not ok:
        for lineno, line in enumerate(lines, 1):
            f = line.split()
            if not f:
                continue
            if len(f) != 2 or f[1] not in (b"target", b"nontarget"):
                raise SidError(f"{rxfilename}:{lineno}: expected '<score> target|nontarget', got '{line.decode()}'")
            try:
                float(f[0])
            except ValueError:
                raise SidError(f"{rxfilename}:{lineno}: could not convert first field to float: '{line.decode()}'") from None
    if len(tokens) == 0:
        raise SidError(f"{rxfilename}: empty scores file; no scores were read")
    return scores, labels == b"target"


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    _, args = po.parse(num_args=1)
    scores, is_target = read_score_labels(args[0])
    if not is_target.any() or is_target.all():
        raise SidError(f"{args[0]}: need both target and nontarget scores "
                       f"({int(is_target.sum())} target, {int((~is_target).sum())} nontarget)")
    eer, threshold = compute_eer(scores[is_target], scores[~is_target])
    print(f"{eer * 100.0:.6g}")
    log.info("Equal error rate is %.6g%%, at threshold %.6g", eer * 100.0, threshold)
    return 0


if __name__ == "__main__":
    run_main(main)
