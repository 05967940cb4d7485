"""Usage: python -m sid.bin.record_backend [options] <model-dir> <backend-dir>

Record in <model-dir>/backend.yaml the back-end trained for the model, which sid.Embedder and
sid.bin.verify --exp then score with (sid.backend.record).
 e.g.:  python -m sid.bin.record_backend exp/xvector exp/scores/backend_plda
        python -m sid.bin.record_backend --cohort=exp/xvector/embeddings/train/spk_xvector.scp \\
          --threshold-file=exp/scores/test.cosine_asnorm_qmf.threshold --p-target=0.01 \\
          exp/xvector exp/scores/backend_cosine
<backend-dir> is steps/score_plda.sh's backend_plda (PLDA) or steps/score_qmf.sh's
backend_cosine with qmf.json (cosine + AS-norm + QMF; --cohort: the speaker-mean embeddings
score_qmf.sh used; --threshold-file: one of its .threshold files, whose --p-target line is
the decision threshold). The back-end is loaded, so a broken one is an error here."""

from sid.cli import doc_argparser, run_main, setup_logging


def main() -> int:
    parser = doc_argparser(__doc__)
    parser.add_argument("--cohort", help="QMF: the cohort's speaker-mean embeddings (an scp)")
    parser.add_argument("--threshold-file", help="QMF: steps/score_qmf.sh's <trials>.cosine_asnorm_qmf.threshold")
    parser.add_argument("--p-target", type=float, default=0.01,
                        help="target prior whose threshold is used (default: %(default)s)")
    parser.add_argument("model_dir", help="exp dir of the model (config.yaml, final.pt)")
    parser.add_argument("backend_dir", help="backend_plda or backend_cosine (with qmf.json) of a score dir")
    opts = parser.parse_args()
    setup_logging()
    import logging
    from pathlib import Path

    from sid.backend.record import Backend
    from sid.errors import SidError

    model_dir, backend_dir = Path(opts.model_dir), Path(opts.backend_dir)
    if not (model_dir / "config.yaml").exists():
        raise SidError(f"{model_dir / 'config.yaml'} not found: {model_dir} is not a model dir")
    kind = "plda" if (backend_dir / "plda").exists() else "cosine_asnorm_qmf"
    if kind == "plda" and (opts.cohort or opts.threshold_file):
        raise SidError(f"{backend_dir} is a PLDA back-end: --cohort and --threshold-file belong to a QMF one")
    backend = Backend(kind, backend_dir, opts.cohort, opts.threshold_file, opts.p_target)
    out = backend.write(model_dir)
    logging.getLogger("record_backend").info(
        "Wrote %s: %s back-end %s%s", out, kind, backend_dir,
        "" if backend.threshold is None else f", threshold {backend.threshold:.4f} at p-target {opts.p_target:g}")
    return 0


if __name__ == "__main__":
    run_main(main)
