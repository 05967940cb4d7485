"""Usage: python -m sid.bin.import_model --format resemblyzer|wespeaker|speechbrain|voxceleb_trainer <checkpoint> [<their-config>] <exp-dir>

Import another toolkit's pretrained speaker model as an exp dir (config.yaml, final.pt)
that extraction, the back-ends, sid.Embedder, export and fine-tuning use as one trained here.
 e.g.:  python -m sid.bin.import_model --format resemblyzer resemblyzer exp/resemblyzer
        python -m sid.bin.import_model --format wespeaker avg_model.pt config.yaml exp/wespeaker_resnet34
        python -m sid.bin.import_model --format speechbrain embedding_model.ckpt hyperparams.yaml exp/sb_ecapa
        python -m sid.bin.import_model --format voxceleb_trainer baseline_v2_ap.model exp/resnetse34v2
The checkpoint 'resemblyzer' means the pretrained.pt the resemblyzer package ships
(installed with pip install --no-deps resemblyzer where absent). <their-config> is the toolkit's own config of the
model (WeSpeaker's config.yaml, SpeechBrain's hyperparams.yaml, voxceleb_trainer's YAML),
needed where the weights alone do not say the architecture. The front-end each toolkit
trained on is recorded exactly (sid/pretrained.py). Every key of the checkpoint is
checked: an unknown key, a missing key or a shape the architecture does not have is an
error naming the key."""

import logging

from sid.cli import doc_argparser, run_main, setup_logging

log = logging.getLogger("import_model")


def main() -> int:
    from sid.pretrained import FORMATS

    parser = doc_argparser(__doc__)
    parser.add_argument("--format", required=True, choices=tuple(FORMATS))
    parser.add_argument("paths", nargs="+", metavar="<checkpoint> [<their-config>] <exp-dir>")
    opts = parser.parse_args()
    setup_logging()
    if len(opts.paths) not in (2, 3):
        parser.error("expected <checkpoint> [<their-config>] <exp-dir>")
    checkpoint, *config, exp = opts.paths

    from sid.pretrained import import_checkpoint, resemblyzer_weights

    if opts.format == "resemblyzer" and checkpoint == "resemblyzer":
        checkpoint = str(resemblyzer_weights(install=True))
    import_checkpoint(opts.format, checkpoint, config[0] if config else None, exp)
    return 0


if __name__ == "__main__":
    run_main(main)
