"""Usage: python -m sid.bin.perturb_data_dir_speed <factor> <in-data-dir> <out-data-dir>

Kaldi's utils/data/perturb_data_dir_speed.sh with the change applied in-process:
the copy's utterances and speakers get the prefix sp<factor>- (each speed is a new
speaker, as WeSpeaker does), utt2dur is divided by the factor, and utt2aug records
{"speed": <factor>} for feature extraction (sox speed: pitch and tempo change).
vad.scp is not carried over: compute VAD on the copy's features.
e.g. python -m sid.bin.perturb_data_dir_speed 0.9 data/train data/train_sp0.9
"""


from sid.augment import perturb_data_dir_speed
from sid.cli import doc_argparser, run_main, setup_logging


def main():
    ap = doc_argparser(__doc__, prog="perturb_data_dir_speed")
    ap.add_argument("factor", type=float)
    ap.add_argument("input_dir")
    ap.add_argument("output_dir")
    args = ap.parse_args()
    setup_logging()
    perturb_data_dir_speed(args.factor, args.input_dir, args.output_dir)


if __name__ == "__main__":
    run_main(main)
