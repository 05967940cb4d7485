#!/usr/bin/env bash
# Usage: steps/score_qmf.sh [options] <train-data-dir> <train-emb-dir> <eval-data-dir> <eval-emb-dir> <score-dir> <trials> [<trials> ...]
#  e.g.: steps/score_qmf.sh --top-n 300 data/train exp/resnet34/embeddings/train data/voxceleb1 \
#          exp/resnet34/embeddings/voxceleb1 exp/resnet34/scores data/voxceleb1/trials_vox1_O
# QMF calibration (WeSpeaker's quality-measure function) of <score-dir>/<trials-name>.cosine_asnorm.score
# (steps/score_cosine.sh, then steps/score_norm.sh --backend cosine --method asnorm, with the same
# arguments) into <trials-name>.cosine_asnorm_qmf.score: log-likelihood ratios from a logistic
# regression on [AS-norm score, log durations of both sides, their mean top-N cohort scores]
# (sid.bin.train_qmf), trained once on --num-trials trials drawn from <train-data-dir>'s speakers
# and weighted for target prior --p-fit (<score-dir>/backend_cosine/qmf.json). Beside each calibrated score file,
# <trials-name>.cosine_asnorm_qmf.threshold holds '<p-target> <threshold>' for each --p-targets:
# accept a trial whose calibrated score is above it. steps/compute_metrics.sh reports Cllr and the
# actual DCF at those thresholds. Durations come from the data dirs' utt2dur.
# Each output records what made it (<output>.made_by, utils/made_by.sh): a rerun keeps it only if
# its options and inputs are unchanged.
#
# Options:
#   --cmd <cmd>               # job runner (default: run.pl)
#   --top-n <N>               # AS-norm cohort size, as given to steps/score_norm.sh (default: 300)
#   --num-trials <N>          # calibration trials (default: 20000)
#   --p-targets <p,...>       # target priors of the written thresholds (default: 0.01,0.05)
#   --p-fit <p>               # target prior the regression is weighted for (default: the smallest
#                             # of --p-targets: its threshold, the hardest to place, is then set best)
#   --seed <N>                # seed of the calibration trials (default: 777)

set -euo pipefail

cmd=run.pl
top_n=300
num_trials=20000
p_targets=0.01,0.05
p_fit=
seed=777

. parse_options.sh

if [ $# -lt 6 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
train_data=$1; train_emb=$2; eval_data=$3; eval_emb=$4; dir=$5; shift 5
[ -n "$p_fit" ] || p_fit=$(tr ',' '\n' <<< "$p_targets" | sort -g | head -n 1)

b=$dir/backend_cosine
[ -s "$b/mean.vec" ] || { echo "$0: no $b/mean.vec: run steps/score_cosine.sh first" >&2; exit 1; }
cohort=$train_emb/spk_xvector.scp
[ -f "$cohort" ] || cohort=$b/spk_xvector.scp
for f in "$train_data/utt2spk" "$train_data/utt2dur" "$eval_data/utt2dur" "$train_emb/xvector.scp" \
         "$eval_emb/xvector.scp" "$cohort" "$@"; do
  [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
done
bin="python -m sid.bin"
. lock_dirs.sh
lock_dirs "$dir"  # a second run on this dir waits for this one
. made_by.sh
mkdir -p "$dir/log"

if ! made "$b/qmf.json.made_by" "num_trials=$num_trials top_n=$top_n seed=$seed p_fit=$p_fit" "$b/mean.vec" \
     "$train_data/utt2spk" "$train_data/utt2dur" "$train_emb/xvector.scp" "$cohort"; then
  $cmd "$b/log/train_qmf.log" $bin.train_qmf --num-trials=$num_trials --top-n=$top_n --seed=$seed --p-fit=$p_fit \
    --mean=$b/mean.vec "$train_data/utt2spk" "$train_data/utt2dur" "scp:$train_emb/xvector.scp" \
    "scp:$cohort" "$b/qmf.json"
  made_done "$b/qmf.json.made_by"
fi

for trials in "$@"; do
  name=$(basename "$trials")
  in=$dir/$name.cosine_asnorm.score
  out=$dir/$name.cosine_asnorm_qmf.score
  [ -s "$in" ] || { echo "$0: no $in: run steps/score_norm.sh --backend cosine --method asnorm first" >&2; exit 1; }
  if made "$out.made_by" "p_targets=$p_targets" "$b/qmf.json" "$b/mean.vec" "$eval_data/utt2dur" "$cohort" \
       "$eval_emb/xvector.scp" "$in" && [ -s "${out%.score}.threshold" ]; then
    echo "$0: $out is up to date, not recomputing"
    continue
  fi
  $cmd "$dir/log/apply_qmf_$name.log" $bin.apply_qmf --mean=$b/mean.vec --p-targets=$p_targets \
    --threshold-out="${out%.score}.threshold" "$b/qmf.json" "$eval_data/utt2dur" "scp:$cohort" \
    "scp:$eval_emb/xvector.scp" "$in" "$out"
  [ ! -f "$out.made_by.new" ] || made_done "$out.made_by"
  echo "$0: wrote $out and ${out%.score}.threshold"
done
