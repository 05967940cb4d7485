"""compute-eer: Equal Error Rate exactly as Kaldi's compute-eer.

Usage: python -m sid.bin.compute_eer <scores-in>
Input lines are "<score> target|nontarget" ("-" reads stdin, "cmd |" a pipe);
prints the EER in percent on stdout as Kaldi does (4 significant digits, no
newline: "2.222") and logs it with the threshold.
e.g.: paste trials scores | awk '{print $6, $3}' | python -m sid.bin.compute_eer -
"""

import io
import itertools
import logging
import sys

import numpy as np

from sid import kaldi_io
from sid.cli import KaldiOptions, run_main
from sid.errors import SidError
from sid.metrics import compute_eer

log = logging.getLogger("compute_eer")


def read_score_labels(rxfilename: str, rows: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Float32 scores and target flags; a bad line (Kaldi's three messages, or a score that is
    not finite) is an error naming the file and line. Parsed ``rows`` lines at a time, so no
    Python object per line of the whole input (10^6 trials) is ever held."""
    data = kaldi_io.read_bytes(rxfilename)
    stream = io.BytesIO(data)
    scores, targets = [], []
    first = 1
    while True:
        chunk = b"".join(itertools.islice(stream, rows))
        if not chunk:
            break
        lines = chunk.splitlines()
        tokens = chunk.split()
        labels = np.array(tokens[1::2])
        ok = len(tokens) == 2 * len(lines) and all(lines)  # Kaldi rejects blank lines too
        ok = ok and bool(np.all((labels == b"target") | (labels == b"nontarget")))
        try:
            part = np.array(tokens[0::2], dtype=np.float32) if ok else None
            ok = ok and bool(np.all(np.isfinite(part)))
        except ValueError:
            ok = False
        if not ok:
            _bad_line(rxfilename, lines, first)
        scores.append(part)
        targets.append(labels == b"target")
        first += len(lines)
    if not scores:
        raise SidError(f"{rxfilename}: Empty input.")
    return np.concatenate(scores), np.concatenate(targets)


def _bad_line(rxfilename: str, lines: list[bytes], first: int) -> None:
    """Raise the error of the first bad line of ``lines`` (line ``first`` onwards)."""
    for lineno, line in enumerate(lines, first):
        f = line.split()
        where, text = f"{rxfilename}:{lineno}", line.decode(errors="replace")
        if len(f) != 2:
            raise SidError(f"{where}: Invalid input line (must have two fields): '{text}'")
        try:
            score = float(f[0])
        except ValueError:
            raise SidError(f"{where}: Invalid input line (first field must be float): '{text}'") from None
        if not np.isfinite(score):
            raise SidError(f"{where}: score '{f[0].decode(errors='replace')}' is not a finite number")
        if f[1] not in (b"target", b"nontarget"):
            raise SidError(f"{where}: Invalid input line (second field must be 'target' or 'nontarget'): "
                           f"'{text}'")


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    _, args = po.parse(num_args=1)
    scores, is_target = read_score_labels(args[0])
    if not is_target.any():
        raise SidError(f"{args[0]}: No target scores seen.")
    if is_target.all():
        raise SidError(f"{args[0]}: No non-target scores seen.")
    eer, threshold = compute_eer(scores[is_target], scores[~is_target])
    log.info("Equal error rate is %.6g%%, at threshold %.6g", eer * 100.0, threshold)
    # Kaldi sets 4 significant digits on std::cout and ends the figure without a newline.
    sys.stdout.write(f"{eer * 100.0:.4g}")
    return 0


if __name__ == "__main__":
    run_main(main)
