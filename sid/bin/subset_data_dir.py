"""subset_data_dir: a data dir holding a chosen subset of another's utterances."""

from sid.cli import KaldiOptions, run_main
from sid.data.datadir import subset

USAGE = """Usage: subset_data_dir [options] <src-data-dir> <dest-data-dir>
Exactly one of --utt-list, --spk-list, --first, --last, --per-spk, --random.
 e.g.: subset_data_dir --random=1000 --seed=1 data/train data/train_1k"""


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("utt-list", "", "Keep the utterances listed (first field of each line)")
    po.register("spk-list", "", "Keep the utterances of the speakers listed")
    po.register("first", 0, "Keep the first N utterances")
    po.register("last", 0, "Keep the last N utterances")
    po.register("per-spk", 0, "Keep up to N utterances per speaker, evenly spread")
    po.register("random", 0, "Keep N utterances drawn at random")
    po.register("seed", 777, "Random seed for --random")
    opts, (src, dest) = po.parse(num_args=2)
    subset(src, dest, utt_list=opts.utt_list, spk_list=opts.spk_list, first=opts.first, last=opts.last,
           per_spk=opts.per_spk, random_n=opts.random, seed=opts.seed)
    return 0


if __name__ == "__main__":
    run_main(main)
