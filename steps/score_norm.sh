#!/usr/bin/env bash
# Usage: steps/score_norm.sh [options] <train-data-dir> <train-emb-dir> <eval-emb-dir> <score-dir> <trials> [<trials> ...]
#  e.g.: steps/score_norm.sh --backend cosine --method asnorm --top-n 300 data/train \
#          exp/xvector/embeddings/train exp/xvector/embeddings/voxceleb1_test exp/xvector/scores data/voxceleb1_test/trials
# Score normalisation of <score-dir>/<trials-name>.<backend>.score (made by steps/score_<backend>.sh
# with the same arguments) into <score-dir>/<trials-name>.<backend>_<method>.score
# (<backend>_<method>_uttcohort with --cohort utt).
# The cohort is the speaker-mean embeddings of the training set (<train-emb-dir>/spk_xvector.scp if
# present, else ivector_mean over <train-data-dir>/spk2utt), like WeSpeaker's vox2_dev cohort, or with
# --cohort utt its utterance embeddings (a better match for PLDA, whose cohort side is scored as one
# utterance); either is passed
# through the back-end's own mean subtraction / LDA / length normalisation
# (<score-dir>/backend_<backend>/). Each enrolment and test embedding is scored against the cohort
# (cosine, or the PLDA model); the mean/std of its --top-n best cohort scores (asnorm) or of all of
# them (snorm) normalise the trial score: ((s - mu_e)/sd_e + (s - mu_t)/sd_t) / 2.
# Each output records what made it (<output>.made_by, utils/made_by.sh): a rerun keeps it only if
# its options and inputs (back-end, embeddings, scores, trials) are unchanged.
#
# Options:
#   --cmd <cmd>               # job runner (default: run.pl)
#   --backend <cosine|plda>   # which scores to normalise (default: cosine)
#   --method <asnorm|snorm>   # adaptive (top-N) or plain symmetric normalisation (default: asnorm)
#   --top-n <N>               # cohort size used per embedding for asnorm (default: 300)
#   --cohort <spk|utt>        # speaker-mean or utterance embeddings of the training set (default: spk)
#   --allow-partial <true|false>  # scores whose embedding is missing are dropped with a warning
#                                 # instead of an error (default: false)

set -euo pipefail

cmd=run.pl
backend=cosine
method=asnorm
top_n=300
cohort=spk
allow_partial=false

command_line="$0 $*"  # logged once the options are read (none on --help)
. parse_options.sh
echo "$command_line"

if [ $# -lt 5 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
train_data=$1; train_emb=$2; eval_emb=$3; dir=$4; shift 4
case "$backend" in cosine|plda) ;; *) echo "$0: --backend must be cosine or plda, got '$backend'" >&2; exit 1 ;; esac
case "$method" in asnorm|snorm) ;; *) echo "$0: --method must be asnorm or snorm, got '$method'" >&2; exit 1 ;; esac
case "$cohort" in spk|utt) ;; *) echo "$0: --cohort must be spk or utt, got '$cohort'" >&2; exit 1 ;; esac

b=$dir/backend_$backend
[ -s "$b/mean.vec" ] || { echo "$0: no $b/mean.vec: run steps/score_$backend.sh first" >&2; exit 1; }
for f in "$eval_emb/xvector.scp" "$@"; do
  [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
done
bin="python -m sid.bin"
. lock_dirs.sh
lock_dirs "$dir"  # a second run on this dir waits for this one
. made_by.sh
mkdir -p "$dir/log"

suffix=""
cohort_scp=$train_emb/spk_xvector.scp
if [ "$cohort" = utt ]; then
  cohort_scp=$train_emb/xvector.scp
  suffix=_uttcohort
  [ -f "$cohort_scp" ] || { echo "$0: no such file $cohort_scp" >&2; exit 1; }
elif [ ! -f "$cohort_scp" ]; then
  [ -f "$train_data/spk2utt" ] || { echo "$0: need $train_emb/spk_xvector.scp or $train_data/spk2utt" >&2; exit 1; }
  cohort_scp=$b/spk_xvector.scp
  if ! made "$cohort_scp.made_by" "" "$train_data/spk2utt" "$train_emb/xvector.scp"; then
    $cmd "$b/log/cohort_mean.log" $bin.ivector_mean "ark:$train_data/spk2utt" "scp:$train_emb/xvector.scp" \
      "ark,scp:$b/spk_xvector.ark,$cohort_scp"
    made_done "$cohort_scp.made_by"
  fi
fi

# Mean subtraction, LDA and length normalisation of all three tables happen inside score_norm.
prep_opts="--mean=$b/mean.vec --normalize-input=true"
[ -s "$b/transform.mat" ] && prep_opts="$prep_opts --transform=$b/transform.mat"
plda_opt=""
[ "$backend" = plda ] && plda_opt="--plda=$b/plda"

for trials in "$@"; do
  name=$(basename "$trials")
  in=$dir/$name.$backend.score
  out=$dir/$name.${backend}_$method$suffix.score
  [ -s "$in" ] || { echo "$0: no $in: run steps/score_$backend.sh first" >&2; exit 1; }
  if made "$out.made_by" "allow_partial=$allow_partial top_n=$top_n" "$b/mean.vec" "$b/transform.mat" "$b/plda" \
       "$cohort_scp" "$eval_emb/xvector.scp" "$in"; then
    echo "$0: $out is up to date, not recomputing"
    continue
  fi
  $cmd "$dir/log/score_norm_${name}_${backend}_$method$suffix.log" $bin.score_norm --allow-partial=$allow_partial --method=$method --top-n=$top_n $plda_opt $prep_opts \
    "scp:$cohort_scp" "scp:$eval_emb/xvector.scp" "scp:$eval_emb/xvector.scp" "$in" "$out"
  made_done "$out.made_by"
  echo "$0: wrote $out"
done
