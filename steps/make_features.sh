#!/usr/bin/env bash
# Usage: steps/make_features.sh --feat-type fbank|mfcc|frontend [options] <data-dir> [<log-dir> [<feat-dir>]]
# What steps/make_fbank.sh, steps/make_mfcc.sh and steps/make_frontend_feats.sh run (use
# those; they differ only in the feature type and the name of the config option; for
# frontend the config is a model YAML whose 'frontend' section says what to compute).
# Computes the features of every utterance in <data-dir>/wav.scp (segments
# honoured) in --nj parallel jobs through $cmd, one ark/scp per job in <feat-dir>
# (default <data-dir>/data; logs in <data-dir>/log), then writes <data-dir>/feats.scp
# (and utt2num_frames, utt2dur) once every job has succeeded. It records how: the
# config is copied to <data-dir>/conf/<feat-type>.conf and the done-marker
# <data-dir>/.feats_done holds the feature type and the checksum of the options.
# A config that does not parse stops the step before anything is replaced.
# Resumable: a job's ark+scp appear only when it finished (the scp last), and a
# rerun keeps every finished job whose inputs are unchanged, running only the rest.
# With <data-dir>/utt2aug, each utterance is augmented by its recipe before extraction.
# Utterances that cannot be used (unreadable, empty, too short, wrong sample rate,
# non-finite features) are logged in the job log with their id and reason and skipped.
# Options:
#   --feat-type <fbank|mfcc|frontend>  # (required)
#   --feat-config <file>           # feature options, Kaldi's format (default conf/<feat-type>.conf)
#   --nj <n>                       # number of parallel jobs (default 4)
#   --cmd <cmd>                    # how to run jobs: run.pl, slurm.pl, queue.pl (default run.pl)
#   --compress <true|false>        # store compressed matrices, as Kaldi does (default true)
#   --write-utt2num-frames <bool>  # write <data-dir>/utt2num_frames (default true)
#   --write-utt2dur <bool>         # write <data-dir>/utt2dur (default true)
#   --max-fail-fraction <f>        # fail if more than this fraction of utterances failed (default 0.05)
set -euo pipefail

nj=4
cmd=run.pl
feat_type=
feat_config=
compress=true
write_utt2num_frames=true
write_utt2dur=true
max_fail_fraction=0.05

. parse_options.sh

case "$feat_type" in
  fbank) desc="filterbank" ;;
  mfcc) desc="MFCC" ;;
  frontend) desc="front-end" ;;
  *) echo "$0: --feat-type must be fbank, mfcc or frontend, got '$feat_type'" >&2; exit 1 ;;
esac
feat_config=${feat_config:-conf/$feat_type.conf}

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
data=$1
logdir=${2:-$data/log}
featdir=${3:-$data/data}
name=$(basename "$data")

for f in $data/wav.scp $data/utt2spk $feat_config; do
  [ -f $f ] || { echo "$0: no such file $f" >&2; exit 1; }
done
# A config that cannot be used stops the step before it sets anything aside.
python -m sid.bin.feature_record validate $feat_type $feat_config
. lock_dirs.sh
lock_dirs $data $logdir  # a second run on this data dir waits for this one
# What this step writes is replaced: set the old files aside first, so nothing reads
# (or validates) them meanwhile; utt2num_frames describes the old features.
for f in feats.scp utt2num_frames $($write_utt2dur && echo utt2dur) .feats_done; do
  if [ -f $data/$f ]; then
    mkdir -p $data/.backup
    echo "$0: moving $data/$f to $data/.backup"
    mv $data/$f $data/.backup/
  fi
done
utils/validate_data_dir.sh --no-feats --no-check-frames $data
mkdir -p $featdir $logdir
featdir=$(cd $featdir && pwd)  # feats.scp names the arks by absolute path

utils/split_data.sh $data $nj
sdata=$data/split$nj

if [ $feat_type = frontend ]; then
  opts="--model-config=$feat_config --compress=$compress"
else
  opts="--config=$feat_config --compress=$compress"
fi
$write_utt2num_frames && opts="$opts --write-num-frames=ark,t:$logdir/utt2num_frames.JOB"
$write_utt2dur && opts="$opts --write-utt2dur=ark,t:$logdir/utt2dur.JOB"
[ -f $data/segments ] && opts="$opts --segments=$sdata/JOB/segments"
[ -f $data/utt2aug ] && opts="$opts --utt2aug=$sdata/JOB/utt2aug"

# A job finished in an earlier run is kept when its inputs (its part of the split,
# the config, the options) are unchanged, by checksum, and all its outputs exist:
# the scp is renamed into place last, so it exists only for a complete job.
inputs_sum() {
  { echo "$opts"; cat $feat_config $sdata/$1/wav.scp; cat $sdata/$1/segments $sdata/$1/utt2aug 2>/dev/null || true; } |
    sed "s/JOB/$1/g" | md5sum | cut -d' ' -f1
}
rm -f $featdir/.raw_${feat_type}_$name.*.tmp $logdir/.utt2*.tmp  # left by a killed run (we hold the lock)
todo=0
for n in $(seq $nj); do
  base=$featdir/raw_${feat_type}_$name.$n
  sum=$(inputs_sum $n)
  done=true
  for f in $base.scp $($write_utt2num_frames && echo $logdir/utt2num_frames.$n) $($write_utt2dur && echo $logdir/utt2dur.$n); do
    [ -f $f ] || done=false
  done
  if ! $done || [ "$(cat $base.md5 2>/dev/null)" != "$sum" ]; then
    rm -f $base.ark $base.scp
    echo $sum > $base.md5
    todo=$((todo + 1))
  fi
done

if [ $todo -gt 0 ]; then
  echo "$0: running $todo of $nj jobs ($((nj - todo)) finished in an earlier run)"
  # A job whose scp exists finished in an earlier run: "[ -s scp ] ||" skips it.
  $cmd JOB=1:$nj $logdir/make_${feat_type}_$name.JOB.log \
    [ -s $featdir/raw_${feat_type}_$name.JOB.scp ] \|\| \
    python -m sid.bin.compute_${feat_type}_feats $opts scp:$sdata/JOB/wav.scp \
      ark,scp:$featdir/raw_${feat_type}_$name.JOB.ark,$featdir/raw_${feat_type}_$name.JOB.scp
else
  echo "$0: all $nj jobs finished before; joining their outputs"
fi

for n in $(seq $nj); do cat $featdir/raw_${feat_type}_$name.$n.scp; done > $data/.feats.scp.$$.tmp
mv $data/.feats.scp.$$.tmp $data/feats.scp
if $write_utt2num_frames; then
  for n in $(seq $nj); do cat $logdir/utt2num_frames.$n; done > $data/.utt2num_frames.$$.tmp
  mv $data/.utt2num_frames.$$.tmp $data/utt2num_frames
fi
if $write_utt2dur; then
  for n in $(seq $nj); do cat $logdir/utt2dur.$n; done > $data/.utt2dur.$$.tmp
  mv $data/.utt2dur.$$.tmp $data/utt2dur
fi

nf=$(wc -l < $data/feats.scp)
nu=$(wc -l < $data/utt2spk)
if [ $nf -ne $nu ]; then
  echo "$0: $((nu - nf)) of $nu utterances got no features (reasons in $logdir/make_${feat_type}_$name.*.log);" >&2
  echo "$0: run utils/fix_data_dir.sh $data to drop them" >&2
  if awk -v f=$nf -v u=$nu -v m=$max_fail_fraction 'BEGIN { exit !((u - f) > m * u) }'; then
    echo "$0: more than --max-fail-fraction=$max_fail_fraction of the utterances failed; probably a serious error" >&2
    exit 1
  fi
fi
# The record of how the features were made (sid.provenance), written last: the config
# copied to $data/conf/$feat_type.conf, the done-marker $data/.feats_done.
python -m sid.bin.feature_record --compress=$compress write $feat_type $feat_config $data
echo "$0: succeeded creating $desc features for $name"
