"""combine_data: the union of several data dirs (utterance ids must be unique across them)."""

from sid.cli import KaldiOptions, run_main
from sid.data.datadir import combine

USAGE = """Usage: combine_data <dest-data-dir> <src-data-dir1> <src-data-dir2> ...
 e.g.: combine_data data/train_aug data/train_reverb data/train_noise"""


def main() -> int:
    po = KaldiOptions(USAGE)
    _, args = po.parse(num_args=(2, 100000))
    combine(args[0], args[1:])
    return 0


if __name__ == "__main__":
    run_main(main)
