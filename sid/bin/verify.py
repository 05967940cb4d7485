"""Usage: python -m sid.bin.verify [options] --exp <exp> <a.wav> <b.wav>

Compare two audio files with an exp dir: print the score of the pair.
 e.g.:  python -m sid.bin.verify --exp exp/xvector a.wav b.wav
        python -m sid.bin.verify --exp exp/xvector --backend exp/scores/backend_plda a.wav b.wav
Prints the score (cosine similarity; the PLDA log-likelihood ratio with --backend, a
steps/score_plda.sh backend_plda dir), and "accept"/"reject" after it when --threshold
is given (score >= threshold accepts)."""

from sid.bin.embed import embedder_from_opts, embedder_parser
from sid.cli import run_main, setup_logging


def main() -> int:
    parser = embedder_parser(__doc__)
    parser.add_argument("--backend", help="PLDA back-end dir (mean.vec, optional transform.mat, plda) to score with")
    parser.add_argument("--threshold", type=float, help="decision threshold on the score: print accept or reject")
    parser.add_argument("a", help="first audio file")
    parser.add_argument("b", help="second audio file")
    opts = parser.parse_args()
    setup_logging()
    threshold, a, b = opts.threshold, opts.a, opts.b
    embedder = embedder_from_opts(opts, backend=opts.backend or None)
    score = embedder.score(embedder.embed_file(a), embedder.embed_file(b))
    line = f"{score:.6f}"
    if threshold is not None:
        line += " accept" if score >= threshold else " reject"
    print(line)
    return 0


if __name__ == "__main__":
    run_main(main)
