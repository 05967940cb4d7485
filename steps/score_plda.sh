#!/usr/bin/env bash
# Usage: steps/score_plda.sh [options] <train-data-dir> <train-emb-dir> <eval-emb-dir> <score-dir> <trials> [<trials> ...]
#  e.g.: steps/score_plda.sh --lda-dim 200 data/train exp/xvector/embeddings/train \
#          exp/xvector/embeddings/voxceleb1_test exp/xvector/scores data/voxceleb1_test/trials
# Kaldi's PLDA back-end (egs/voxceleb/v2 stages 10-12). From <train-emb-dir>/xvector.scp
# and <train-data-dir>/utt2spk it trains, into <score-dir>/backend_plda/:
#   mean.vec       global mean of the training embeddings (as ivector_mean)
#   transform.mat  LDA to --lda-dim dimensions on mean-subtracted embeddings (skipped with --lda-dim 0)
#   plda           PLDA on mean-subtracted, LDA-projected, length-normalised embeddings
# then scores each trials list ("utt1 utt2 target|nontarget") on <eval-emb-dir>/xvector.scp
# (subtract mean.vec, LDA, length norm, PLDA with length normalisation) into
# <score-dir>/<trials-name>.plda.score ("utt1 utt2 score"; trials-name = the trials file's basename).
# The files are those of Kaldi's pipes (ivector_subtract_global_mean | ivector_transform |
# ivector_normalize_length into ivector_compute_lda / ivector_compute_plda / ivector_plda_scoring),
# but training (sid.bin.train_backend) and scoring (sid.bin.score_plda) each run as one process
# that reads the embeddings once, several times faster than the pipes.
# Each output records what made it (<output>.made_by: the options and fingerprints of its inputs,
# utils/made_by.sh): a rerun keeps it only if that record is unchanged, and otherwise says what
# changed and makes it again (another --lda-dim, retrained or re-extracted embeddings, ...).
#
# Options:
#   --cmd <cmd>                     # job runner (default: run.pl)
#   --lda-dim <N>                   # LDA dimension, 0 for none (default: 200)
#   --total-covariance-factor <f>   # LDA's interpolation (default: 0.0, as the recipe)
#   --num-em-iters <N>              # PLDA EM iterations (default: 10)
#   --smoothing <f>                 # ivector_copy_plda --smoothing when scoring (default: 0.0)
#   --allow-partial <true|false>    # trials whose embedding is missing are skipped with a warning
#                                   # instead of an error (default: false)

set -euo pipefail

cmd=run.pl
lda_dim=200
total_covariance_factor=0.0
num_em_iters=10
smoothing=0.0
allow_partial=false

command_line="$0 $*"  # logged once the options are read (none on --help)
. parse_options.sh
echo "$command_line"

if [ $# -lt 5 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
train_data=$1; train_emb=$2; eval_emb=$3; dir=$4; shift 4

for f in "$train_data/utt2spk" "$train_emb/xvector.scp" "$eval_emb/xvector.scp" "$@"; do
  [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
done

. lock_dirs.sh
lock_dirs "$dir"  # a second run on this dir waits for this one
. made_by.sh
b=$dir/backend_plda
mkdir -p "$b/log" "$dir/log"
bin="python -m sid.bin"

if ! made "$b/.made_by" "lda_dim=$lda_dim total_covariance_factor=$total_covariance_factor num_em_iters=$num_em_iters" \
     "$train_emb/xvector.scp" "$train_data/utt2spk"; then
  rm -f "$b/mean.vec" "$b/transform.mat" "$b/plda"
  $cmd "$b/log/train.log" $bin.train_backend --lda-dim=$lda_dim \
    --total-covariance-factor=$total_covariance_factor --num-em-iters=$num_em_iters \
    "scp:$train_emb/xvector.scp" "$train_data/utt2spk" "$b"
  made_done "$b/.made_by"
fi
transform_opt=""
[ "$lda_dim" -gt 0 ] && transform_opt="--transform=$b/transform.mat"

# All trial lists to (re)score in one process: the embeddings are read and transformed once.
pairs=()
outs=()
for trials in "$@"; do
  name=$(basename "$trials")
  out=$dir/$name.plda.score
  if made "$out.made_by" "allow_partial=$allow_partial smoothing=$smoothing" "$b/mean.vec" "$b/transform.mat" "$b/plda" \
       "$eval_emb/xvector.scp" "$trials"; then
    echo "$0: $out is up to date, not rescoring"
    continue
  fi
  pairs+=("$trials" "$out")
  outs+=("$out")
done
if [ ${#pairs[@]} -gt 0 ]; then
  $cmd "$dir/log/score_plda.log" $bin.score_plda --allow-partial=$allow_partial --mean=$b/mean.vec $transform_opt --smoothing=$smoothing \
    "$b/plda" "scp:$eval_emb/xvector.scp" "scp:$eval_emb/xvector.scp" "${pairs[@]}"
  for out in "${outs[@]}"; do
    made_done "$out.made_by"
    echo "$0: wrote $out"
  done
fi
