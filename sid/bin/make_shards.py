"""make_shards: pack a data dir (audio or features) into WebDataset-style tar shards.

Usage: python -m sid.bin.make_shards [options] <data-dir> <shard-dir>
 e.g.: python -m sid.bin.make_shards --utts-per-shard=1000 data/train data/train_shards
Utterances are taken in sorted order, --utts-per-shard per shard, into
<shard-dir>/shards/shard-NNNNNN.tar (members <key>.wav|.flac|.ogg|.opus|.npy, .spk, .utt,
.dur|.frames), then <shard-dir>/shard.list, index, utt2spk, spk2utt and utt2dur or
utt2num_frames are written. With --job=J --num-jobs=N (as steps/make_shards.sh runs
it) only shards J-1, J-1+N, ... are written and the lists are left to a last run
without --job. Shards already complete are kept: a killed run resumes.
"""

from sid.cli import KaldiOptions, run_main


def main() -> int:
    po = KaldiOptions(__doc__.split("\n", 2)[2])
    po.register("utts-per-shard", 1000, "Utterances per tar shard")
    po.register("job", 0, "1-based job index (0: every shard, then the lists and index)")
    po.register("num-jobs", 1, "Number of parallel jobs sharing the shards")
    opts, (data_dir, shard_dir) = po.parse(num_args=2)
    from sid.data.shards import write_shards
    from sid.errors import SidError

    if opts.num_jobs < 1 or not 0 <= opts.job <= opts.num_jobs:
        raise SidError(f"--job must be within 0..--num-jobs ({opts.num_jobs}), got {opts.job}")
    write_shards(data_dir, shard_dir, opts.utts_per_shard, opts.job, opts.num_jobs)
    return 0


if __name__ == "__main__":
    run_main(main)
