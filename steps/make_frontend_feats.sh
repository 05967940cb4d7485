#!/usr/bin/env bash
# Usage: steps/make_frontend_feats.sh [options] <data-dir> [<log-dir> [<feat-dir>]]
# Computes the front-end a model config names in its 'frontend' section (Kaldi fbank of
# num_mel_bins, voxceleb_trainer's log-mel, raw waveform rows: sid/features/frontends.py)
# for every utterance in <data-dir>/wav.scp (segments honoured), with Kaldi's frame count
# (25 ms / 10 ms, no edge snipping) so a VAD decided on MFCCs applies, in --nj parallel
# jobs through $cmd, one ark/scp per job in <feat-dir> (default <data-dir>/data), then
# writes <data-dir>/feats.scp, utt2num_frames and utt2dur. Resumable like make_fbank.sh;
# unusable utterances are logged with id and reason and skipped. (steps/make_features.sh
# does the work.)
# Options:
#   --model-config <yaml>          # the model config (required)
#   --nj <n>                       # number of parallel jobs (default 4)
#   --cmd <cmd>                    # how to run jobs: run.pl, slurm.pl, queue.pl (default run.pl)
#   --compress <true|false>        # store compressed matrices (default true; lossy for waveforms)
#   --max-fail-fraction <f>        # fail if more than this fraction of utterances failed (default 0.05)
# e.g. steps/make_frontend_feats.sh --nj 8 --model-config conf/resnetse34l_ap.yaml data/train_vt_mel40 exp/make_vt_mel40/train vt_mel40
set -euo pipefail

model_config=
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model-config) model_config=$2; shift 2 ;;
    --model-config=*) model_config=${1#*=}; shift ;;
    --help|-h) sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -n "$model_config" ] || { echo "$0: --model-config <yaml> is required" >&2; exit 1; }
exec "$(dirname "$0")/make_features.sh" --feat-type frontend --feat-config "$model_config" "${args[@]}"
