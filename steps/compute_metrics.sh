#!/usr/bin/env bash
# Usage: steps/compute_metrics.sh [options] <score-dir> <results-dir> <trials> [<trials> ...]
#  e.g.: steps/compute_metrics.sh exp/xvector/scores exp/xvector/results data/voxceleb1_test/trials
# For each trials list and each back-end's score file <score-dir>/<trials-name>.<backend>.score
# (from steps/score_cosine.sh, score_plda.sh, score_norm.sh), computes the EER (Kaldi's compute-eer)
# and minDCF at p-target 0.01, 0.001 and 0.05 (sid/compute_min_dcf.py), Cllr, and where a calibrated
# threshold lies beside the scores (<trials-name>.<backend>.threshold, steps/score_qmf.sh) the actual
# DCF at it, into <results-dir>/results.json:
#   {"<trials-name>": {"<backend>": {"eer": %, "mindcf_0.01": x, ..., "cllr": x, "actdcf_0.01": x, "num_trials": n}}}
# prints the table (Kaldi's RESULTS layout), and draws <results-dir>/det_<trials-name>.png (all
# back-ends) and hist_<trials-name>_<backend>.png (target/non-target scores). With --tsne-emb-dir
# and --tsne-utt2spk it also draws tsne.png, a t-SNE map of --tsne-speakers speakers' embeddings,
# with --umap true umap.png (UMAP of the same embeddings), and with --similarity-speakers N
# similarity.png, the cosine-similarity matrix of N speakers x --similarity-utts utterances.
#
# Options:
#   --plots <true|false>     # draw the DET and histogram plots (default: true)
#   --tsne-emb-dir <dir>     # embeddings (xvector.scp) for the t-SNE map (default: none)
#   --tsne-utt2spk <file>    # their utt2spk
#   --tsne-speakers <N>      # number of speakers on the map (default: 10)
#   --umap <true|false>      # also draw a UMAP map of them (default: false)
#   --similarity-speakers <N>  # draw the N x M similarity matrix of N speakers (default: 0, none)
#   --similarity-utts <M>    # utterances per speaker in it (default: 10)
#   --allow-partial <true|false>  # evaluate score files that cover only part of a trials list
#                            # (with a warning) instead of stopping with an error (default: false)
#   --backend-prefix <p>     # name the back-ends <p><backend> in results.json and the plots
#                            # <p><trials-name>, so a second model's rows stand beside the first's
#                            # (e.g. resemblyzer_; default: none)

set -euo pipefail

plots=true
tsne_emb_dir=
tsne_utt2spk=
tsne_speakers=10
umap=false
similarity_speakers=0
similarity_utts=10
allow_partial=false
backend_prefix=

command_line="$0 $*"  # logged once the options are read (none on --help)
. parse_options.sh
echo "$command_line"

if [ $# -lt 3 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
score_dir=$1; results_dir=$2; shift 2
bin="python -m sid.bin"
. lock_dirs.sh
lock_dirs "$results_dir"  # results.json is read and rewritten: one run at a time
mkdir -p "$results_dir"

for trials in "$@"; do
  [ -f "$trials" ] || { echo "$0: no such file $trials" >&2; exit 1; }
  name=$(basename "$trials")
  pairs=()
  for score in "$score_dir/$name".*.score; do
    [ -f "$score" ] || continue
    backend=${score#"$score_dir/$name."}
    backend=${backend%.score}
    threshold_opt=""
    [ -f "${score%.score}.threshold" ] && threshold_opt="--threshold=${score%.score}.threshold"
    $bin.compute_metrics --allow-partial=$allow_partial --backend="$backend_prefix$backend" --trials-name="$name" $threshold_opt \
      "$trials" "$score" "$results_dir/results.json" >/dev/null
    pairs+=("$backend=$score")
  done
  [ ${#pairs[@]} -gt 0 ] || { echo "$0: no score files $score_dir/$name.*.score" >&2; exit 1; }
  if [ "$plots" = true ]; then
    $bin.plot_scores --allow-partial=$allow_partial --trials-name="$backend_prefix$name" "$trials" "$results_dir" "${pairs[@]}"
  fi
done

if [ -n "$tsne_emb_dir" ]; then
  [ -f "$tsne_utt2spk" ] || { echo "$0: --tsne-emb-dir needs --tsne-utt2spk <file>" >&2; exit 1; }
  $bin.plot_tsne --num-speakers=$tsne_speakers "$tsne_utt2spk" "scp:$tsne_emb_dir/xvector.scp" "$results_dir/tsne.png"
  if [ "$umap" = true ]; then
    $bin.plot_tsne --method=umap --num-speakers=$tsne_speakers "$tsne_utt2spk" "scp:$tsne_emb_dir/xvector.scp" \
      "$results_dir/umap.png"
  fi
  if [ "$similarity_speakers" -gt 0 ]; then
    $bin.plot_similarity --num-speakers=$similarity_speakers --utts-per-speaker=$similarity_utts "$tsne_utt2spk" \
      "scp:$tsne_emb_dir/xvector.scp" "$results_dir/similarity.png"
  fi
fi

$bin.print_results "$results_dir/results.json"
