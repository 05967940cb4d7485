#!/usr/bin/env bash
# Usage: steps/make_fbank.sh [options] <data-dir> [<log-dir> [<fbank-dir>]]
# Computes filterbank features of every utterance in <data-dir>/wav.scp (segments
# honoured) in --nj parallel jobs through $cmd, one ark/scp per job in <fbank-dir>
# (default <data-dir>/data; logs in <data-dir>/log), then writes <data-dir>/feats.scp
# (and utt2num_frames, utt2dur) once every job has succeeded. Resumable: a rerun keeps
# every finished job whose inputs are unchanged. With <data-dir>/utt2aug, each utterance
# is augmented by its recipe first. Unusable utterances are logged with id and reason
# and skipped. (steps/make_features.sh does the work.)
# Options:
#   --fbank-config <file>          # feature options, Kaldi's format (default conf/fbank.conf)
#   --nj <n>                       # number of parallel jobs (default 4)
#   --cmd <cmd>                    # how to run jobs: run.pl, slurm.pl, queue.pl (default run.pl)
#   --compress <true|false>        # store compressed matrices, as Kaldi does (default true)
#   --write-utt2num-frames <bool>  # write <data-dir>/utt2num_frames (default true)
#   --write-utt2dur <bool>         # write <data-dir>/utt2dur (default true)
#   --max-fail-fraction <f>        # fail if more than this fraction of utterances failed (default 0.05)
# e.g. steps/make_fbank.sh --nj 8 --cmd "$train_cmd" --fbank-config conf/fbank.conf data/train exp/make_fbank/train fbank
set -euo pipefail

fbank_config=conf/fbank.conf
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --fbank-config) fbank_config=$2; shift 2 ;;
    --fbank-config=*) fbank_config=${1#*=}; shift ;;
    --help|-h) sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
exec "$(dirname "$0")/make_features.sh" --feat-type fbank --feat-config "$fbank_config" "${args[@]}"
