#!/usr/bin/env bash
# Usage: steps/prepare_feats_for_egs.sh [options] <in-data-dir> <out-data-dir> <feat-dir>
# Prepares features for x-vector training, as Kaldi's sid/nnet3/xvector/prepare_feats_for_egs.sh:
# sliding-window CMN (apply_cmvn_sliding) then voiced frames only (select_voiced_frames,
# using <in-data-dir>/vad.scp), in --nj parallel jobs through $cmd, one ark/scp per job
# in <feat-dir>. <out-data-dir> is a copy of <in-data-dir> whose feats.scp and
# utt2num_frames describe the new features (vad.scp, no longer matching, is left out);
# it keeps <in-data-dir>'s record of the features (conf/, .feats_done) and adds cmvn_opts,
# the CMN options, which training copies into the model's config.yaml for extraction.
# Resumable like make_fbank.sh: finished jobs whose inputs are unchanged are kept.
# Utterances with no voiced frames are logged and skipped.
# Options:
#   --nj <n>                    # number of parallel jobs (default 40)
#   --cmd <cmd>                 # how to run jobs (default run.pl)
#   --cmn-window <frames>       # sliding CMN window (default 300)
#   --norm-vars <true|false>    # also normalise variance (default false)
#   --center <true|false>       # window centred on the frame (default true)
#   --compress <true|false>     # store compressed matrices (default true)
#   --max-fail-fraction <f>     # fail if more than this fraction of utterances failed (default 0.05)
# e.g. steps/prepare_feats_for_egs.sh --nj 40 --cmd "$train_cmd" data/train_combined data/train_combined_no_sil exp/train_combined_no_sil
set -euo pipefail

nj=40
cmd=run.pl
cmn_window=300
norm_vars=false
center=true
compress=true
max_fail_fraction=0.05

. parse_options.sh

if [ $# -ne 3 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
data_in=$1
data_out=$2
dir=$3
name=$(basename "$data_in")

if [ "$(readlink -m $data_in)" = "$(readlink -m $data_out)" ]; then
  echo "$0: <out-data-dir> must differ from <in-data-dir> ($data_in)" >&2; exit 1
fi
for f in $data_in/feats.scp $data_in/vad.scp; do
  [ -f $f ] || { echo "$0: no such file $f" >&2; exit 1; }
done
if [ ! -f $data_in/.feats_done ]; then
  echo "$0: $data_in/.feats_done not found: $data_in does not record how its features were made" \
       "(make them with steps/make_fbank.sh or steps/make_mfcc.sh)" >&2
  exit 1
fi
. lock_dirs.sh
lock_dirs $data_in $data_out $dir  # a second run on these dirs waits for this one
mkdir -p $dir/log
featdir=$(cd $dir && pwd)  # feats.scp names the arks by absolute path

utils/split_data.sh $data_in $nj
sdata=$data_in/split$nj

opts="--cmn-window=$cmn_window --norm-vars=$norm_vars --center=$center --compress=$compress"
# A job finished in an earlier run is kept when its inputs are unchanged (checksum of
# the options, its part of feats.scp and vad.scp and the time stamps of the arks they
# point into) and its scp, renamed into place last, exists with its utt2num_frames.
# A job's outputs appear only when all three commands of its pipe succeeded: it writes
# the scp and utt2num_frames under names unique to this run and renames them after
# (run.pl runs jobs with pipefail); an archive without its scp is unfinished work.
inputs_sum() {
  { echo "$opts"; cat $sdata/$1/feats.scp $sdata/$1/vad.scp
    cut -d' ' -f2- $sdata/$1/feats.scp $sdata/$1/vad.scp | sed 's/:[0-9]*$//' | sort -u | xargs -r stat -c '%n %y %s'
  } | md5sum | cut -d' ' -f1
}
todo=0
for n in $(seq $nj); do
  base=$featdir/xvector_feats_$name.$n
  sum=$(inputs_sum $n)
  if [ ! -f $base.scp ] || [ ! -f $dir/log/utt2num_frames.$n ] || [ "$(cat $base.md5 2>/dev/null)" != "$sum" ]; then
    rm -f $base.ark $base.scp
    echo $sum > $base.md5
    todo=$((todo + 1))
  fi
done
# Left by a killed run (no other run is using these dirs: we hold their locks).
rm -f $featdir/.xvector_feats_$name.*.tmp $dir/log/.utt2num_frames.*.tmp
rm -rf $data_out.tmp.*

if [ $todo -gt 0 ]; then
  echo "$0: running $todo of $nj jobs ($((nj - todo)) finished in an earlier run)"
  # A job whose scp exists finished in an earlier run: "[ -f scp ] ||" skips it.
  scp_tmp=$featdir/.xvector_feats_$name.JOB.scp.$$.tmp
  nf_tmp=$dir/log/.utt2num_frames.JOB.$$.tmp
  $cmd JOB=1:$nj $dir/log/create_xvector_feats_$name.JOB.log \
    [ -f $featdir/xvector_feats_$name.JOB.scp ] \|\| \( \
    python -m sid.bin.apply_cmvn_sliding --norm-vars=$norm_vars --center=$center --cmn-window=$cmn_window \
      scp:$sdata/JOB/feats.scp ark:- \| \
    python -m sid.bin.select_voiced_frames ark:- scp:$sdata/JOB/vad.scp ark:- \| \
    python -m sid.bin.copy_feats --compress=$compress --write-num-frames=ark,t:$nf_tmp \
      ark:- ark,scp:$featdir/xvector_feats_$name.JOB.ark,$scp_tmp \&\& \
    mv $nf_tmp $dir/log/utt2num_frames.JOB \&\& mv $scp_tmp $featdir/xvector_feats_$name.JOB.scp \)
else
  echo "$0: all $nj jobs finished before; joining their outputs"
fi

# <out-data-dir> is assembled beside itself and renamed into place when complete and
# within --max-fail-fraction.
tmp=$data_out.tmp.$$
utils/copy_data_dir.sh $data_in $tmp
rm -f $tmp/vad.scp $tmp/cmvn.scp
# How the features were made, and the CMN applied here (read back by training and extraction).
python -m sid.bin.feature_record copy $data_in $tmp
echo "--norm-vars=$norm_vars --center=$center --cmn-window=$cmn_window" > $tmp/cmvn_opts
for n in $(seq $nj); do cat $featdir/xvector_feats_$name.$n.scp; done > $tmp/feats.scp
for n in $(seq $nj); do cat $dir/log/utt2num_frames.$n; done > $tmp/utt2num_frames

nf=$(wc -l < $tmp/feats.scp)
nu=$(wc -l < $data_in/feats.scp)
if [ $nf -ne $nu ]; then
  echo "$0: $((nu - nf)) of $nu utterances got no features (no voiced frames or no VAD; see" \
       "$dir/log/create_xvector_feats_$name.*.log); run utils/fix_data_dir.sh $data_out to drop them" >&2
  if awk -v f=$nf -v u=$nu -v m=$max_fail_fraction 'BEGIN { exit !((u - f) > m * u) }'; then
    echo "$0: more than --max-fail-fraction=$max_fail_fraction of the utterances failed" >&2
    rm -rf $tmp
    exit 1
  fi
fi
rm -rf $data_out
mv $tmp $data_out
echo "$0: succeeded creating x-vector training features for $name"
