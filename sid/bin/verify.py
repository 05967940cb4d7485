"""Compare two audio files with an exp dir: print the score of the pair.

Usage:  python -m sid.bin.verify [options] --exp <exp> <a.wav> <b.wav>
 e.g.:  python -m sid.bin.verify --exp exp/xvector a.wav b.wav
        python -m sid.bin.verify --exp exp/xvector --backend exp/scores/backend_plda a.wav b.wav
Prints the score (cosine similarity; the PLDA log-likelihood ratio with --backend, a
steps/score_plda.sh backend_plda dir), and "accept"/"reject" after it when --threshold
is given (score >= threshold accepts)."""

from sid.bin.embed import embedder_from_opts, register_embedder_options
from sid.cli import KaldiOptions, run_main


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    register_embedder_options(po)
    po.register("backend", "", "PLDA back-end dir (mean.vec, optional transform.mat, plda) to score with")
    po.register("threshold", "", "Decision threshold on the score: print accept or reject", type_=str)
    opts, (a, b) = po.parse(num_args=2)

    from sid.errors import SidError

    threshold = None
    if opts.threshold:
        try:
            threshold = float(opts.threshold)
        except ValueError:
            raise SidError(f"--threshold: expected a number, got '{opts.threshold}'") from None
    embedder = embedder_from_opts(opts, backend=opts.backend or None)
    score = embedder.score(embedder.embed_file(a), embedder.embed_file(b))
    line = f"{score:.6f}"
    if threshold is not None:
        line += " accept" if score >= threshold else " reject"
    print(line)
    return 0


if __name__ == "__main__":
    run_main(main)
