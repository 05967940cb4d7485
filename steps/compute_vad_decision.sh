#!/usr/bin/env bash
# Usage: steps/compute_vad_decision.sh [options] <data-dir> [<log-dir> [<vad-dir>]]
# Energy-based voice activity detection (Kaldi's compute-vad) on <data-dir>/feats.scp
# (MFCCs with log-energy in column 0) in --nj parallel jobs through $cmd, one ark/scp
# per job in <vad-dir> (default <data-dir>/data; logs in <data-dir>/log), then writes
# <data-dir>/vad.scp: a 0/1 float vector per utterance. Resumable like make_mfcc.sh:
# finished jobs whose inputs are unchanged are kept when the step is rerun.
# Records the VAD as make_features.sh records the features: <data-dir>/conf/vad.conf (a copy of
# --vad-config), conf/vad_on_<type>.conf (the config of the features it decided on, from
# <data-dir>'s record) and .vad_done (their checksums), written last (sid.provenance).
# Options:
#   --nj <n>                    # number of parallel jobs (default 4)
#   --cmd <cmd>                 # how to run jobs (default run.pl)
#   --vad-config <file>         # VAD options, Kaldi's format (default conf/vad.conf)
#   --max-fail-fraction <f>     # fail if more than this fraction of utterances failed (default 0.05)
# e.g. steps/compute_vad_decision.sh --nj 8 --cmd "$train_cmd" data/train exp/make_vad/train mfcc
set -euo pipefail

nj=4
cmd=run.pl
vad_config=conf/vad.conf
max_fail_fraction=0.05

. parse_options.sh

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
data=$1
logdir=${2:-$data/log}
vaddir=${3:-$data/data}
name=$(basename "$data")

for f in $data/feats.scp $vad_config; do
  [ -f $f ] || { echo "$0: no such file $f" >&2; exit 1; }
done
[ -f $data/.feats_done ] || { echo "$0: $data/.feats_done not found: $data does not record how its features were made (make them with steps/make_mfcc.sh or make_fbank.sh)" >&2; exit 1; }
. lock_dirs.sh
lock_dirs $data $logdir  # a second run on this data dir waits for this one
mkdir -p $vaddir $logdir
vaddir=$(cd $vaddir && pwd)  # vad.scp names the arks by absolute path

utils/split_data.sh $data $nj
sdata=$data/split$nj

# A job finished in an earlier run is kept when its inputs are unchanged (checksum of
# the config, its part of feats.scp and the time stamps of the arks it points into)
# and its scp, renamed into place last, exists.
inputs_sum() {
  { cat $vad_config $sdata/$1/feats.scp
    cut -d' ' -f2- $sdata/$1/feats.scp | sed 's/:[0-9]*$//' | sort -u | xargs -r stat -c '%n %y %s'
  } | md5sum | cut -d' ' -f1
}
todo=0
for n in $(seq $nj); do
  base=$vaddir/vad_$name.$n
  sum=$(inputs_sum $n)
  if [ ! -f $base.scp ] || [ "$(cat $base.md5 2>/dev/null)" != "$sum" ]; then
    rm -f $base.ark $base.scp
    echo $sum > $base.md5
    todo=$((todo + 1))
  fi
done
rm -f $vaddir/.vad_$name.*.tmp  # left by a killed run (we hold the lock)

if [ $todo -gt 0 ]; then
  echo "$0: running $todo of $nj jobs ($((nj - todo)) finished in an earlier run)"
  # A job whose scp exists finished in an earlier run: "[ -f scp ] ||" skips it.
  $cmd JOB=1:$nj $logdir/vad_$name.JOB.log \
    [ -f $vaddir/vad_$name.JOB.scp ] \|\| \
    python -m sid.bin.compute_vad --config=$vad_config scp:$sdata/JOB/feats.scp \
      ark,scp:$vaddir/vad_$name.JOB.ark,$vaddir/vad_$name.JOB.scp
else
  echo "$0: all $nj jobs finished before; joining their outputs"
fi

for n in $(seq $nj); do cat $vaddir/vad_$name.$n.scp; done > $data/.vad.scp.$$.tmp
rm -f $data/.vad_done  # (the record goes with the VAD it describes)
mv $data/.vad.scp.$$.tmp $data/vad.scp

nc=$(wc -l < $data/vad.scp)
nu=$(wc -l < $data/feats.scp)
if [ $nc -ne $nu ]; then
  echo "$0: $((nu - nc)) of $nu utterances got no VAD output (reasons in $logdir/vad_$name.*.log);" >&2
  echo "$0: run utils/fix_data_dir.sh $data to drop them" >&2
  if awk -v c=$nc -v u=$nu -v m=$max_fail_fraction 'BEGIN { exit !((u - c) > m * u) }'; then
    echo "$0: more than --max-fail-fraction=$max_fail_fraction of the utterances failed" >&2
    exit 1
  fi
fi
python -m sid.bin.feature_record vad $vad_config $data
echo "$0: created VAD output for $name"
