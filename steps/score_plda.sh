#!/usr/bin/env bash
# Usage: steps/score_plda.sh [options] <train-data-dir> <train-emb-dir> <eval-emb-dir> <score-dir> <trials> [<trials> ...]
#  e.g.: steps/score_plda.sh --lda-dim 200 data/train exp/xvector/embeddings/train \
#          exp/xvector/embeddings/voxceleb1_test exp/xvector/scores data/voxceleb1_test/trials
# Kaldi's PLDA back-end (egs/voxceleb/v2 stages 10-12). From <train-emb-dir>/xvector.scp
# and <train-data-dir>/{utt2spk,spk2utt} it trains, into <score-dir>/backend_plda/:
#   mean.vec       global mean of the training embeddings (ivector_mean)
#   transform.mat  LDA to --lda-dim dimensions on mean-subtracted embeddings (skipped with --lda-dim 0)
#   plda           PLDA on mean-subtracted, LDA-projected, length-normalised embeddings
# then scores each trials list ("utt1 utt2 target|nontarget") on <eval-emb-dir>/xvector.scp
# (subtract mean.vec, LDA, length norm, PLDA with length normalisation) into
# <score-dir>/<trials-name>.plda.score ("utt1 utt2 score"; trials-name = the trials file's basename).
# A finished back-end or score file is not recomputed; delete it to redo it.
#
# Options:
#   --cmd <cmd>                     # job runner (default: run.pl)
#   --lda-dim <N>                   # LDA dimension, 0 for none (default: 200)
#   --total-covariance-factor <f>   # LDA's interpolation (default: 0.0, as the recipe)
#   --num-em-iters <N>              # PLDA EM iterations (default: 10)
#   --smoothing <f>                 # ivector_copy_plda --smoothing when scoring (default: 0.0)

set -euo pipefail

cmd=run.pl
lda_dim=200
total_covariance_factor=0.0
num_em_iters=10
smoothing=0.0

echo "$0 $*"
. parse_options.sh

if [ $# -lt 5 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
train_data=$1; train_emb=$2; eval_emb=$3; dir=$4; shift 4

for f in "$train_data/utt2spk" "$train_data/spk2utt" "$train_emb/xvector.scp" "$eval_emb/xvector.scp" "$@"; do
  [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
done

b=$dir/backend_plda
mkdir -p "$b/log"
bin="python -m sid.bin"

if [ "$lda_dim" -gt 0 ]; then
  project="$bin.ivector_transform $b/transform.mat ark:- ark:- |"
else
  project=""
fi

if [ ! -s "$b/mean.vec" ]; then
  $cmd "$b/log/compute_mean.log" $bin.ivector_mean "scp:$train_emb/xvector.scp" "$b/mean.vec"
fi
if [ "$lda_dim" -gt 0 ] && [ ! -s "$b/transform.mat" ]; then
  $cmd "$b/log/lda.log" $bin.ivector_compute_lda --total-covariance-factor=$total_covariance_factor \
    --dim=$lda_dim "ark:$bin.ivector_subtract_global_mean scp:$train_emb/xvector.scp ark:- |" \
    "ark:$train_data/utt2spk" "$b/transform.mat"
fi
if [ ! -s "$b/plda" ]; then
  $cmd "$b/log/plda.log" $bin.ivector_compute_plda --num-em-iters=$num_em_iters "ark:$train_data/spk2utt" \
    "ark:$bin.ivector_subtract_global_mean scp:$train_emb/xvector.scp ark:- | $project $bin.ivector_normalize_length ark:- ark:- |" \
    "$b/plda"
fi

vectors="ark:$bin.ivector_subtract_global_mean $b/mean.vec scp:$eval_emb/xvector.scp ark:- | $project $bin.ivector_normalize_length ark:- ark:- |"
for trials in "$@"; do
  name=$(basename "$trials")
  out=$dir/$name.plda.score
  [ -s "$out" ] && { echo "$0: $out exists, not rescoring"; continue; }
  $cmd "$dir/log/score_plda_$name.log" $bin.ivector_plda_scoring --normalize-length=true \
    "$bin.ivector_copy_plda --smoothing=$smoothing $b/plda - |" "$vectors" "$vectors" \
    "$trials" "$out"
  echo "$0: wrote $out"
done
