#!/usr/bin/env bash
# Usage: steps/make_shards.sh [options] <data-dir> <shard-dir>
#  e.g.: steps/make_shards.sh --nj 16 --cmd "$train_cmd" --utts-per-shard 1000 data/train data/train_shards
# Packs the audio (wav.scp, segments) or features (feats.scp) of <data-dir>, with speakers and
# durations, into WebDataset-style tar shards under <shard-dir> (see python -m sid.bin.make_shards),
# --nj jobs in parallel through --cmd, then writes the shard list and index. A rerun keeps the shards
# already complete; <shard-dir>/shard.list appears last. Train from <shard-dir> as from a data dir.
#
# Options:
#   --nj <N>                 # parallel jobs (default: 4)
#   --cmd <cmd>              # job runner (default: run.pl)
#   --utts-per-shard <N>     # utterances per shard (default: 1000)

set -euo pipefail

nj=4
cmd=run.pl
utts_per_shard=1000

. parse_options.sh

if [ $# -ne 2 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
data=$1
dir=$2
[ -f "$data/utt2spk" ] || { echo "$0: no such file $data/utt2spk" >&2; exit 1; }
mkdir -p "$dir/log"

$cmd JOB=1:$nj "$dir/log/make_shards.JOB.log" \
  python -m sid.bin.make_shards --utts-per-shard=$utts_per_shard --job=JOB --num-jobs=$nj "$data" "$dir"
python -m sid.bin.make_shards --utts-per-shard=$utts_per_shard "$data" "$dir"
echo "$0: $(wc -l < "$dir/shard.list") shards of $data in $dir"
