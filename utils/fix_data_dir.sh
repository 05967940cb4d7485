#!/usr/bin/env bash
# Usage: utils/fix_data_dir.sh [--utt-extra-files "f1 f2"] [--spk-extra-files "f1 f2"] <data-dir>
# Kaldi's fix_data_dir.sh, with the same result: sorts every file (first line of a
# repeated key kept), drops utterances missing from feats.scp, text, segments,
# utt2lang, vad.scp or wav.scp (without segments) or whose utt2dur/utt2num_frames
# is not positive, speakers missing from cmvn.scp/spk2gender, segments whose
# recording is not in wav.scp; reduces the other files to what is left and remakes
# spk2utt. Fails, changing nothing, when utt2spk is not sorted by speaker as well.
# The old files go to <data-dir>/.backup/ (with .backup/dropped: '<utt> <reason>').
#   --utt-extra-files  more utterance-keyed files to reduce (utt2*/spk2*/reco2* are known)
#   --spk-extra-files  more speaker-keyed files to reduce
# e.g. utils/fix_data_dir.sh data/train
set -euo pipefail
utt_extra_files=
spk_extra_files=
. parse_options.sh
if [ $# -ne 1 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
exec python -m sid.bin.fix_data_dir --utt-extra-files="$utt_extra_files" --spk-extra-files="$spk_extra_files" "$1"
