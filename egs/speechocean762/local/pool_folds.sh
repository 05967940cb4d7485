#!/usr/bin/env bash
# Usage: local/pool_folds.sh <pooled-dir> <data-dir> <exp-dir> [<data-dir> <exp-dir> ...]
# Results pooled over the folds of run.sh --test-fold: the trials of every fold (<data-dir>/test/trials/*)
# and every score file of each scores dir (<exp-dir>/scores, scores_resemblyzer, scores_resemblyzer_ft,
# ...) concatenated, one list and score file per name in <pooled-dir>, then steps/compute_metrics.sh
# on them: <pooled-dir>/results.json, its rows named as in each fold's (resemblyzer_ft_plda, ...),
# the printed table and the DET plots. Every fold must hold the same lists, scores dirs and score
# files (a missing one is an error naming it, not a smaller pool); a calibrated threshold beside the
# scores (score_qmf.sh) must be the same in every fold (the Bayes threshold at the recipe's p-target).
# The folds' speakers are disjoint, so their trials are too (compute_metrics refuses a repeated trial).
# <pooled-dir>/utt2spk is the folds' test utt2spk concatenated, for comparing two systems' pooled scores
# with a speaker bootstrap: sid.bin.compare_scores <pooled-dir>/trials/<name> <pooled-dir>/utt2spk <a> <b>.
# e.g. local/pool_folds.sh exp_pooled data_fold0 exp_fold0 data_fold1 exp_fold1 data_fold2 exp_fold2
set -euo pipefail
if [ $# -lt 3 ] || [ $(($# % 2)) -ne 1 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
. "$(dirname "$(readlink -f "$0")")/../path.sh"
out=$1; shift
datas=() exps=()
while [ $# -gt 0 ]; do datas+=("$1"); exps+=("$2"); shift 2; done

# What the first fold has is what every fold must have.
lists=$(cd "${datas[0]}/test/trials" 2>/dev/null && ls) || { echo "$0: no trial lists in ${datas[0]}/test/trials" >&2; exit 1; }
score_dirs=$(cd "${exps[0]}" && ls -d scores scores_* 2>/dev/null) || true
[ -n "$score_dirs" ] || { echo "$0: no scores dirs in ${exps[0]}" >&2; exit 1; }
have() { [ -f "$1" ] || { echo "$0: $1 is missing (every fold needs what ${datas[0]} and ${exps[0]} have)" >&2; exit 1; }; }

rm -rf "$out.tmp"
mkdir -p "$out.tmp/trials"
for d in "${datas[@]}"; do have "$d/test/utt2spk"; cat "$d/test/utt2spk"; done > "$out.tmp/utt2spk"
for name in $lists; do
  for d in "${datas[@]}"; do have "$d/test/trials/$name"; cat "$d/test/trials/$name"; done > "$out.tmp/trials/$name"
  for s in $score_dirs; do
    mkdir -p "$out.tmp/$s"
    for f in "${exps[0]}/$s/$name".*.score; do
      [ -f "$f" ] || continue
      file=$(basename "$f")
      for e in "${exps[@]}"; do have "$e/$s/$file"; cat "$e/$s/$file"; done > "$out.tmp/$s/$file"
      threshold=${file%.score}.threshold
      if [ -f "${exps[0]}/$s/$threshold" ]; then
        for e in "${exps[@]}"; do
          have "$e/$s/$threshold"
          cmp -s "${exps[0]}/$s/$threshold" "$e/$s/$threshold" || {
            echo "$0: $e/$s/$threshold differs from ${exps[0]}/$s/$threshold: the folds' calibrated scores are" \
              "not on one threshold" >&2; exit 1; }
        done
        cp "${exps[0]}/$s/$threshold" "$out.tmp/$s/"
      fi
    done
  done
done
for s in $score_dirs; do
  prefix=${s#scores}; prefix=${prefix#_}; prefix=${prefix:+${prefix}_}
  trials=()
  for name in $lists; do trials+=("$out.tmp/trials/$name"); done
  compute_metrics.sh --backend-prefix "$prefix" "$out.tmp/$s" "$out.tmp" "${trials[@]}"
done
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$0: results pooled over ${#exps[@]} folds in $out/results.json"
