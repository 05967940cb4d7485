"""Usage: python -m sid.bin.reverberate_data_dir [options] <in-data-dir> <out-data-dir>

Kaldi's steps/data/reverberate_data_dir.py for RIRs only (no point-source or
isotropic noises), writing a recipe per utterance to <out-data-dir>/utt2aug
(applied as wav-reverberate --shift-output=true would; see sid.augment.recipe).
New utterance ids are <utt>-<suffix>. Kaldi egs/voxceleb/v2 uses:
  --rir-set-parameters "0.5, RIRS_NOISES/simulated_rirs/smallroom/rir_list"
  --rir-set-parameters "0.5, RIRS_NOISES/simulated_rirs/mediumroom/rir_list"
  --speech-rvb-probability 1
"""

import argparse

from sid.augment import reverberate_data_dir
from sid.cli import doc_argparser, run_main, setup_logging


def rir_set(text):
    prob, sep, path = text.partition(",")
    try:
        return float(prob), path.strip()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected '<probability>, <rir_list>', got '{text}'") from None


def main():
    ap = doc_argparser(__doc__, prog="reverberate_data_dir")
    ap.add_argument("--rir-set-parameters", type=rir_set, action="append", required=True,
                    help="'<probability>, <rir_list>' (repeatable)")
    ap.add_argument("--speech-rvb-probability", type=float, default=1.0,
                    help="probability of reverberating an utterance")
    ap.add_argument("--utt-suffix", default="reverb", help="new utterance ids are <utt>-<suffix>")
    ap.add_argument("--random-seed", type=int, default=0, help="seed of every choice (with the utterance id)")
    ap.add_argument("input_dir")
    ap.add_argument("output_dir")
    args = ap.parse_args()
    setup_logging()
    reverberate_data_dir(args.input_dir, args.output_dir, args.rir_set_parameters, utt_suffix=args.utt_suffix,
                         speech_rvb_probability=args.speech_rvb_probability, seed=args.random_seed)


if __name__ == "__main__":
    run_main(main)
