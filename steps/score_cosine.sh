#!/usr/bin/env bash
# Usage: steps/score_cosine.sh [options] <train-data-dir> <train-emb-dir> <eval-emb-dir> <score-dir> <trials> [<trials> ...]
#  e.g.: steps/score_cosine.sh data/train exp/xvector/embeddings/train \
#          exp/xvector/embeddings/voxceleb1_test exp/xvector/scores data/voxceleb1_test/trials
# Cosine back-end: subtracts the mean of <train-emb-dir>/xvector.scp (as WeSpeaker subtracts the
# vox2_dev mean), optionally projects with an LDA trained on the training embeddings
# (--lda-dim N; needs <train-data-dir>/utt2spk), length-normalises and scores each trials list on <eval-emb-dir>/xvector.scp
# into <score-dir>/<trials-name>.cosine.score. Training (sid.bin.train_backend --plda=false) and
# scoring (sid.bin.score_cosine --mean --transform) each read the embeddings once, in one process.
# Back-end files go to <score-dir>/backend_cosine/{mean.vec,transform.mat}. Each output records
# what made it (<output>.made_by: the options and fingerprints of its inputs, utils/made_by.sh):
# a rerun keeps it only if that record is unchanged, and otherwise says what changed and
# makes it again (another --lda-dim, retrained or re-extracted embeddings, a new back-end).
#
# Options:
#   --cmd <cmd>       # job runner (default: run.pl)
#   --lda-dim <N>     # LDA dimension, 0 for none (default: 0)
#   --total-covariance-factor <f>   # LDA's interpolation (default: 0.0)
#   --allow-partial <true|false>    # trials whose embedding is missing are skipped with a warning
#                                   # instead of an error (default: false)

set -euo pipefail

cmd=run.pl
lda_dim=0
total_covariance_factor=0.0
allow_partial=false

command_line="$0 $*"  # logged once the options are read (none on --help)
. parse_options.sh
echo "$command_line"

if [ $# -lt 5 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
train_data=$1; train_emb=$2; eval_emb=$3; dir=$4; shift 4

for f in "$train_emb/xvector.scp" "$eval_emb/xvector.scp" "$@"; do
  [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
done
[ "$lda_dim" -eq 0 ] || [ -f "$train_data/utt2spk" ] || { echo "$0: no such file $train_data/utt2spk" >&2; exit 1; }

. lock_dirs.sh
lock_dirs "$dir"  # a second run on this dir waits for this one
. made_by.sh
b=$dir/backend_cosine
mkdir -p "$b/log" "$dir/log"
bin="python -m sid.bin"

backend_inputs=("$train_emb/xvector.scp")
[ "$lda_dim" -gt 0 ] && backend_inputs+=("$train_data/utt2spk")
if ! made "$b/.made_by" "lda_dim=$lda_dim total_covariance_factor=$total_covariance_factor" "${backend_inputs[@]}"; then
  # (A back-end without LDA has no transform.mat; score_norm.sh goes by its presence.)
  rm -f "$b/mean.vec" "$b/transform.mat"
  if [ "$lda_dim" -gt 0 ]; then
    # Mean and LDA in one process that reads the training embeddings once.
    $cmd "$b/log/train.log" $bin.train_backend --plda=false --lda-dim=$lda_dim \
      --total-covariance-factor=$total_covariance_factor "scp:$train_emb/xvector.scp" "$train_data/utt2spk" "$b"
  else
    $cmd "$b/log/compute_mean.log" $bin.ivector_mean "scp:$train_emb/xvector.scp" "$b/mean.vec"
  fi
  made_done "$b/.made_by"
fi
transform_opt=""
[ "$lda_dim" -gt 0 ] && transform_opt="--transform=$b/transform.mat"

for trials in "$@"; do
  name=$(basename "$trials")
  out=$dir/$name.cosine.score
  if made "$out.made_by" "allow_partial=$allow_partial" "$b/mean.vec" "$b/transform.mat" "$eval_emb/xvector.scp" "$trials"; then
    echo "$0: $out is up to date, not rescoring"
    continue
  fi
  $cmd "$dir/log/score_cosine_$name.log" $bin.score_cosine --allow-partial=$allow_partial --mean=$b/mean.vec $transform_opt \
    "scp:$eval_emb/xvector.scp" "scp:$eval_emb/xvector.scp" "$trials" "$out"
  made_done "$out.made_by"
  echo "$0: wrote $out"
done
