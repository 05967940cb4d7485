#!/usr/bin/env bash
# Usage: steps/extract_embeddings.sh [options] <model-dir> <data-dir> <out-dir>
#  e.g.: steps/extract_embeddings.sh --nj 40 --cmd "$train_cmd" exp/ecapa_c512 data/voxceleb1_test exp/ecapa_c512/embeddings/voxceleb1_test
# Extracts one embedding per utterance of <data-dir> (raw feats.scp and vad.scp; sliding CMN
# and voiced-frame selection are applied in-process as the model's config says) with the model
# in <model-dir> (config.yaml, final.pt from steps/train_xvector.sh), like Kaldi's
# extract_xvectors.sh. <data-dir>'s features must be made as the training features were
# (its .feats_done against features.checksum in <model-dir>/config.yaml), else it stops.
# A model trained from audio (features.source: audio in its config.yaml) reads <data-dir>'s
# audio instead (wav.scp, segments): the fbank it was trained on, less each utterance's mean,
# no VAD.
# One job per split of the data dir (utils/split_data.sh); a rerun skips the jobs already
# done with the same model, config, features, VAD and chunking options (<out-dir>/xvector.<job>.scp.made_by)
# and redoes the others. Writes <out-dir>/xvector.scp (+ xvector.<job>.ark), speaker means spk_xvector.scp/ark
# and num_utts.ark.
#
# Options:
#   --nj <N>                   # number of jobs (default: 4)
#   --cmd <cmd>                # job runner, e.g. run.pl or "slurm.pl --mem 4G" (default: run.pl)
#   --use-gpu <true|false>     # one GPU per job (default: false)
#   --max-chunk-frames <N>     # longer utterances are cut into chunks and averaged (default: 10000)
#   --min-chunk-frames <N>     # shorter chunks are edge-padded (default: 25)
#   --chunking <kaldi|windows> # kaldi chunk averaging, or the d-vector mean of 1.6 s windows at 50%
#                              # overlap (default: the model config's extract.chunking, else kaldi)
#   --num-threads <N>          # CPU threads per job (default: 1)
#   --batch-frames <N>         # most frames per batch, bounds memory (default: 0: 50000 on a GPU, 4000 on CPU)

set -euo pipefail

nj=4
cmd=run.pl
use_gpu=false
max_chunk_frames=10000
min_chunk_frames=25
chunking=
num_threads=1
batch_frames=0

command_line="$0 $*"  # logged once the options are read (none on --help)
. parse_options.sh
echo "$command_line"

if [ $# -ne 3 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
srcdir=$1
data=$2
dir=$3

for f in "$srcdir/final.pt" "$srcdir/config.yaml" "$data/utt2spk"; do
  [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
done
# Features made with another config than the training features would give wrong embeddings.
source=$(python -m sid.bin.feature_record match "$srcdir" "$data")
if [ "$source" = features ]; then
  for f in "$data/feats.scp" "$data/vad.scp"; do
    [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
  done
fi
case "$use_gpu" in
  true) gpu_opt="--gpu 1"; tool_gpu=yes ;;
  false) gpu_opt=""; tool_gpu=no ;;
  *) echo "$0: --use-gpu must be true or false, got '$use_gpu'" >&2; exit 1 ;;
esac

. lock_dirs.sh
lock_dirs "$data" "$dir"  # a second run on these dirs waits for this one
mkdir -p "$dir/log"
utils/split_data.sh "$data" "$nj"
sdata=$data/split$nj
inputs=("scp:$sdata/JOB/feats.scp" "scp:$sdata/JOB/vad.scp")
[ "$source" = audio ] && inputs=("$sdata/JOB")

# shellcheck disable=SC2086
$cmd $gpu_opt --num-threads "$num_threads" JOB=1:"$nj" "$dir/log/extract.JOB.log" \
  python -m sid.bin.extract_embeddings --use-gpu=$tool_gpu --num-threads="$num_threads" \
    --max-chunk-frames="$max_chunk_frames" --min-chunk-frames="$min_chunk_frames" --batch-frames="$batch_frames" \
    --chunking="$chunking" --skip-done=true \
    "$srcdir" "${inputs[@]}" \
    "ark,scp:$dir/xvector.JOB.ark,$dir/xvector.JOB.scp"

tmp=$dir/.xvector.scp.$$.tmp
for j in $(seq "$nj"); do cat "$dir/xvector.$j.scp"; done > "$tmp"
# An unchanged result keeps its files (and times), so a rerun redoes nothing downstream.
if cmp -s "$tmp" "$dir/xvector.scp"; then
  rm "$tmp"
else
  mv "$tmp" "$dir/xvector.scp"
fi

# Speaker means, as extract_xvectors.sh does with ivector-mean.
. made_by.sh
if ! made "$dir/spk_xvector.scp.made_by" "" "$data/spk2utt" "$dir/xvector.scp" || [ ! -f "$dir/num_utts.ark" ]; then
  python -m sid.bin.ivector_mean "ark:$data/spk2utt" "scp:$dir/xvector.scp" \
    "ark,scp:$dir/spk_xvector.ark,$dir/spk_xvector.scp" "ark,t:$dir/num_utts.ark"
  [ ! -f "$dir/spk_xvector.scp.made_by.new" ] || made_done "$dir/spk_xvector.scp.made_by"
fi
echo "$0: wrote $(wc -l < "$dir/xvector.scp") embeddings to $dir/xvector.scp"
