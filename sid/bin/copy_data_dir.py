"""copy_data_dir: copy a data dir, optionally renaming utterances and speakers, and validate the copy."""

from sid.cli import KaldiOptions, run_main
from sid.data.datadir import copy

USAGE = """Usage: copy_data_dir [options] <src-data-dir> <dest-data-dir>
 e.g.: copy_data_dir --utt-prefix=rev- --spk-prefix=rev- data/train data/train_rev"""


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("utt-prefix", "", "Prefix for utterance ids")
    po.register("utt-suffix", "", "Suffix for utterance ids")
    po.register("spk-prefix", "", "Prefix for speaker ids")
    po.register("spk-suffix", "", "Suffix for speaker ids")
    po.register("validate-opts", "", "Options for validating the copy, as validate_data_dir.sh's (e.g. '--no-wav')")
    opts, (src, dest) = po.parse(num_args=2)
    copy(src, dest, utt_prefix=opts.utt_prefix, utt_suffix=opts.utt_suffix,
         spk_prefix=opts.spk_prefix, spk_suffix=opts.spk_suffix, validate_opts=opts.validate_opts)
    return 0


if __name__ == "__main__":
    run_main(main)
