"""combine_data: the union of several data dirs, then fix_data_dir on it (Kaldi's combine_data.sh)."""

from sid.cli import KaldiOptions, run_main
from sid.data.datadir import combine

USAGE = """Usage: combine_data <dest-data-dir> <src-data-dir1> <src-data-dir2> ...
 e.g.: combine_data data/train_aug data/train_reverb data/train_noise"""


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("extra-files", "", "More files to combine when every source has them (names, space-separated)")
    po.register("skip-fix", False, "Do not run fix_data_dir on the result")
    opts, args = po.parse(num_args=(2, 100000))
    combine(args[0], args[1:], extra_files=opts.extra_files.split(), skip_fix=opts.skip_fix)
    return 0


if __name__ == "__main__":
    run_main(main)
