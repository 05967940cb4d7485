"""Usage: python -m sid.bin.verify [options] --exp <exp> <a.wav> <b.wav>

Compare two audio files with an exp dir: print the score of the pair, and "accept" or
"reject" after it when there is a threshold (score >= threshold accepts).
 e.g.:  python -m sid.bin.verify --exp exp/xvector a.wav b.wav
        python -m sid.bin.verify --exp exp/xvector --backend exp/scores/backend_plda a.wav b.wav
The score is the one of the back-end the exp records (<exp>/backend.yaml, written by
sid.bin.record_backend: PLDA, or cosine + AS-norm + QMF with its calibrated threshold), else
the cosine similarity; --backend scores with a steps/score_plda.sh backend_plda dir instead.
The threshold is --threshold, else the exp's calibrated one when it has one."""

import logging

from sid.bin.embed import embedder_from_opts, embedder_parser
from sid.cli import run_main, setup_logging

log = logging.getLogger("verify")


def main() -> int:
    parser = embedder_parser(__doc__)
    parser.add_argument("--backend", help="PLDA back-end dir (mean.vec, optional transform.mat, plda) to score with")
    parser.add_argument("--threshold", type=float,
                        help="decision threshold on the score (default: the exp's calibrated one, if any)")
    parser.add_argument("a", help="first audio file")
    parser.add_argument("b", help="second audio file")
    opts = parser.parse_args()
    setup_logging()
    embedder = embedder_from_opts(opts, backend=opts.backend or None)
    threshold = opts.threshold
    if threshold is None and embedder.threshold is not None:
        threshold = embedder.threshold
        b = embedder.backend
        log.info("%s back-end, threshold %.4f (calibrated, p-target %g)", b.kind, threshold, b.p_target)
    score = embedder.score_files(opts.a, opts.b)
    line = f"{score:.6f}"
    if threshold is not None:
        line += " accept" if score >= threshold else " reject"
    print(line)
    return 0


if __name__ == "__main__":
    run_main(main)
