"""Usage: python -m sid.bin.augment_data_dir [options] <in-data-dir> <out-data-dir>

Kaldi's steps/data/augment_data_dir.py with the same options, writing a recipe per
utterance to <out-data-dir>/utt2aug instead of wav-reverberate pipes (see
sid.augment.datadir). Kaldi egs/voxceleb/v2 uses:
  --utt-suffix noise  --fg-interval 1 --fg-snrs 15:10:5:0 --fg-noise-dir data/musan_noise
  --utt-suffix music  --bg-snrs 15:10:8:5 --num-bg-noises 1 --bg-noise-dir data/musan_music
  --utt-suffix babble --bg-snrs 20:17:15:13 --num-bg-noises 3:4:5:6:7 --bg-noise-dir data/musan_speech
"""

import argparse

from sid.augment import augment_data_dir
from sid.cli import doc_argparser, run_main, setup_logging


def colon_list(kind):
    def parse(text):
        try:
            return [kind(x) for x in text.split(":") if x != ""]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a colon-separated list like 15:10:5, got '{text}'") from None
    return parse


def main():
    ap = doc_argparser(__doc__, prog="augment_data_dir")
    ap.add_argument("--utt-suffix", required=True, help="new utterance ids are <utt>-<suffix>")
    ap.add_argument("--fg-snrs", type=colon_list(float), default=[], help="foreground SNRs (dB), e.g. 15:10:5:0")
    ap.add_argument("--bg-snrs", type=colon_list(float), default=[], help="background SNRs (dB), e.g. 15:10:8:5")
    ap.add_argument("--num-bg-noises", type=colon_list(int), default=[1], help="background noises per utterance, e.g. 3:4:5:6:7")
    ap.add_argument("--fg-interval", type=float, default=0.0, help="seconds between foreground noises")
    ap.add_argument("--fg-noise-dir", help="data dir of foreground noises (wav.scp, utt2dur)")
    ap.add_argument("--bg-noise-dir", help="data dir of background noises (wav.scp, utt2dur)")
    ap.add_argument("--random-seed", type=int, default=123, help="seed of every choice (with the utterance id)")
    ap.add_argument("input_dir")
    ap.add_argument("output_dir")
    args = ap.parse_args()
    setup_logging()
    augment_data_dir(args.input_dir, args.output_dir, args.utt_suffix, fg_noise_dir=args.fg_noise_dir,
                     fg_snrs=args.fg_snrs, fg_interval=args.fg_interval, bg_noise_dir=args.bg_noise_dir,
                     bg_snrs=args.bg_snrs, num_bg_noises=args.num_bg_noises, seed=args.random_seed)


if __name__ == "__main__":
    run_main(main)
