"""subset_data_dir: a data dir holding a chosen subset of another's utterances."""

from sid.cli import KaldiOptions, run_main
from sid.data.datadir import subset

USAGE = """Usage: subset_data_dir [options] <src-data-dir> <dest-data-dir>
Exactly one of --num, --first, --last, --per-spk, --speakers, --shortest, --utt-list, --spk-list;
the same utterances as Kaldi's subset_data_dir.sh.
 e.g.: subset_data_dir --num=1000 data/train data/train_1k"""


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("utt-list", "", "Keep the utterances listed (first field of each line)")
    po.register("spk-list", "", "Keep the utterances of the speakers listed")
    po.register("first", 0, "Keep the first N utterances")
    po.register("last", 0, "Keep the last N utterances")
    po.register("num", 0, "Keep N utterances spread evenly over the data dir (Kaldi's default)")
    po.register("per-spk", 0, "Keep up to N utterances per speaker, evenly spread")
    po.register("speakers", 0, "Keep whole speakers, in Kaldi's shuffled order, until there are N utterances")
    po.register("shortest", 0, "Keep the N shortest utterances (utt2num_frames, else feature lengths)")
    opts, (src, dest) = po.parse(num_args=2)
    subset(src, dest, utt_list=opts.utt_list, spk_list=opts.spk_list, num=opts.num, first=opts.first,
           last=opts.last, per_spk=opts.per_spk, speakers=opts.speakers, shortest=opts.shortest)
    return 0


if __name__ == "__main__":
    run_main(main)
