#!/usr/bin/env bash
# Usage: ./run.sh [options]
#
# The VoxCeleb recipe (Kaldi egs/voxceleb/v2 and WeSpeaker voxceleb/v2 in one):
#   stage 0  data dirs from the VoxCeleb1/2 trees, official trial lists -> Kaldi trials
#   stage 1  features (fbank or mfcc) and energy VAD for the training and test sets (for a
#            config training from features; one training from audio needs none)
#   stage 2  MUSAN and RIR data dirs; for a config training from features (data.source
#            features, the Kaldi path): augmented copies (RIR reverberation, MUSAN
#            noise/music/babble; speed perturbation as an option), a subset of them with
#            features, combined with the clean training data into data/train_combined
#   stage 3  training features (features source only): sliding CMN, voiced frames only,
#            short utterances and speakers with few utterances dropped (data/train_combined_no_sil)
#   stage 4  train the model of --config into exp/<config-name> (through $cuda_cmd); a config
#            training from audio (WeSpeaker's path: data/train's audio augmented per chunk,
#            fbank in the loader) is then fine-tuned with a large margin (--lm-config) into
#            exp/<config-name>_lm
#   stage 5  embeddings of the clean training set and the test sets
#   stage 6  back-ends and scores: cosine, cosine + AS-norm, mean/LDA/PLDA, per trial list;
#            with --train-set wespeaker also QMF calibration of the AS-norm scores
#   stage 7  EER, minDCF, Cllr (and actual DCF of calibrated scores) into <exp>/results.json,
#            the table and plots
# A finished stage is skipped on rerun; a data dir appears only when complete. Every
# output records what made it (the arguments and the records of its inputs): a rerun
# with other options (--feat-type, --num-aug-utts, --aug-seed, --min-len, ...) makes
# again what they change, and what depends on it.
#
# Options (defaults below):
#   --stage N --stop-stage M    run stages N..M
#   --voxceleb1-root DIR        wav/idXXXXX/<video>/NNNNN.wav (or dev/wav, test/wav)
#   --voxceleb2-root DIR        dev/aac/idXXXXX/<video>/NNNNN.m4a and test/aac/...
#   --musan-root DIR            MUSAN: music/ noise/ speech/
#   --rirs-root DIR             RIRS_NOISES: simulated_rirs/{smallroom,mediumroom}/
#   --trials-dir DIR            official lists (veri_test.txt, veri_test2.txt,
#                               list_test_{all,hard}[2].txt, optionally .gz); fetched with
#                               local/download_voxceleb_lists.sh when veri_test.txt is absent
#   --vox1-meta FILE --vox2-meta FILE   vox1_meta.csv / vox2_meta.csv for spk2gender (optional)
#   --train-set kaldi|wespeaker kaldi: VoxCeleb2 dev+test and VoxCeleb1 dev, tests on Vox1-O;
#                               wespeaker: VoxCeleb2 dev only, tests on Vox1-O/E/H
#   --nj N                      parallel jobs (through $train_cmd from cmd.sh)
#   --feat-type fbank|mfcc      --fbank-config, --mfcc-config, --vad-config FILE (with fbank,
#                               the energy VAD is decided on MFCCs computed beside them)
#   --feat-dir DIR              where feature archives go (default: fbank/ or mfcc/)
#   --num-aug-utts N            augmented utterances kept (Kaldi: 1000000)
#   --speed-perturb true|false  also add 0.9x and 1.1x copies, each a new speaker
#   --aug-seed N                seed of the augmentation choices
#   --config FILE               model YAML for the training stages (here, unlike
#                               Kaldi's --config, it is not a file of options); default
#                               conf/xvector.yaml (kaldi) or conf/resnet34.yaml (wespeaker)
#   --lm-config FILE|none       large-margin fine-tuning config for a model trained from
#                               audio (default: conf/<config-name>_lm.yaml where it exists)
#   --min-len N                 training utterances need N voiced frames (Kaldi: 400)
#   --min-num-utts N            training speakers need N utterances (Kaldi: 8)
#   --ngpu N --num-workers N    GPUs (processes) per node and data loader workers for training
#   --num-nodes N               training nodes: one job spanning N nodes ($cuda_cmd --num-nodes,
#                               so slurm.pl or queue.pl; see README "On a cluster")
#   --use-gpu auto|true|false   extraction on GPUs (one per job); auto: if this machine has one
#   --lda-dim N                 LDA dimension before PLDA (Kaldi: 200)
#   --cohort-top-n N            AS-norm cohort size (WeSpeaker: 300)
#   --allow-partial true|false  score and evaluate the trials that have embeddings, warning
#                               about the others, instead of stopping (default: false)
# e.g. ./run.sh --voxceleb1-root /data/voxceleb1 --voxceleb2-root /data/voxceleb2 \
#        --musan-root /data/musan --rirs-root /data/RIRS_NOISES --stop-stage 2

. ./cmd.sh
. ./path.sh
# Braces around the whole body: bash reads a script as it runs, so an edit to this file during
# a long stage would otherwise change what the running recipe does next.
{
set -eo pipefail  # a failing command inside a pipe stops the run too

stage=0
stop_stage=7
voxceleb1_root=/export/corpora/VoxCeleb1
voxceleb2_root=/export/corpora/VoxCeleb2
musan_root=/export/corpora/JHU/musan
rirs_root=RIRS_NOISES
trials_dir=data/voxceleb1_lists
vox1_meta=
vox2_meta=
train_set=kaldi
nj=40
feat_type=fbank
fbank_config=conf/fbank80.conf
mfcc_config=conf/mfcc.conf
vad_config=conf/vad.conf
feat_dir=
num_aug_utts=1000000
speed_perturb=false
aug_seed=123
config=
lm_config=
min_len=400
min_num_utts=8
ngpu=1
num_nodes=1
num_workers=4
use_gpu=auto
lda_dim=200
cohort_top_n=300
allow_partial=false

. utils/parse_options.sh

if [ $# -ne 0 ]; then
  echo "$0: unexpected arguments: $* (see --help)" >&2
  exit 1
fi
case $train_set in
  kaldi|wespeaker) ;;
  *) echo "$0: --train-set must be kaldi or wespeaker, got '$train_set'" >&2; exit 1 ;;
esac
if [ -z "$config" ]; then
  config=conf/xvector.yaml
  [ $train_set = wespeaker ] && config=conf/resnet34.yaml
fi
[ -f "$config" ] || { echo "$0: no such config $config" >&2; exit 1; }
# Where the config trains from (sid.config: data.source), and its fine-tuning config.
data_source=$(python -c 'import sys; from sid.config import load_config; print(load_config(sys.argv[1]).data.source)' "$config")
config_name=$(basename "$config" .yaml)
if [ -z "$lm_config" ] && [ $data_source = audio ] && [ -f conf/${config_name}_lm.yaml ]; then
  lm_config=conf/${config_name}_lm.yaml
fi
[ "$lm_config" = none ] && lm_config=
case $feat_type in
  fbank) feat_config=$fbank_config ;;
  mfcc) feat_config=$mfcc_config ;;
  *) echo "$0: --feat-type must be fbank or mfcc, got '$feat_type'" >&2; exit 1 ;;
esac
feat_dir=${feat_dir:-$feat_type}
# Configs that cannot be used stop the run before any stage replaces what is finished.
for f in $feat_config $mfcc_config $vad_config $config; do
  [ -f $f ] || { echo "$0: no such file $f" >&2; exit 1; }
done
python -m sid.bin.feature_record validate $feat_type $feat_config
python -m sid.bin.feature_record validate mfcc $mfcc_config
# A second run of this recipe here waits: for data/ until this one's data stages are done,
# for exp/<config> until it ends (utils/lock_dirs.sh says who holds what).
. utils/lock_dirs.sh
lock_dirs data
. utils/made_by.sh

# The corpora before anything else: a missing one is named by its option.
check_dir() {  # check_dir <option> <dir> <what it holds>
  [ -d "$2" ] && return 0
  echo "$0: $1 $2: no such directory (pass $1 DIR, DIR holding $3)" >&2
  exit 1
}
if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  { [ -d data/voxceleb1_test ] && [ -d data/voxceleb1_dev ]; } || \
    check_dir --voxceleb1-root "$voxceleb1_root" "wav/idXXXXX/<video>/NNNNN.wav (or dev/wav, test/wav)"
  [ -d data/train ] || check_dir --voxceleb2-root "$voxceleb2_root" "dev/aac/idXXXXX/<video>/NNNNN.m4a, test/aac/..."
fi
# MUSAN's three data dirs come from one command; each records it (.made_by, as make_dir's),
# so another --musan-root makes them again, and the augmented copies made from them.
musan_record="local/make_musan.py $musan_root"
musan_made() {
  local kind
  for kind in music noise speech; do
    [ "$(cat data/musan_$kind/.made_by 2>/dev/null)" = "$musan_record" ] || return 1
  done
}
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  musan_made || check_dir --musan-root "$musan_root" "music/ noise/ speech/"
  # (data/rirs/.made_by as make_dir writes it for stage 2's command)
  [ "$(cat data/rirs/.made_by 2>/dev/null)" = "local/prepare_rirs.py $rirs_root DEST " ] || \
    check_dir --rirs-root "$rirs_root" "simulated_rirs/{smallroom,mediumroom}/"
fi

# need <file> <stage>: a stage's input, or an error saying which stage makes it.
need() {
  [ -e "$1" ] && return 0
  echo "$0: $1 is missing: stage $2 makes it (run with --stage $2, or without --stage)" >&2
  exit 1
}

# Test sets: Vox1-O from VoxCeleb1 test; Vox1-E/H (WeSpeaker only: Kaldi trains on
# VoxCeleb1 dev) from all of VoxCeleb1. name:list:data-dir
trial_lists="vox1_O:veri_test.txt:voxceleb1_test vox1_O_clean:veri_test2.txt:voxceleb1_test"
test_sets=voxceleb1_test
if [ $train_set = wespeaker ]; then
  trial_lists="$trial_lists vox1_E:list_test_all.txt:voxceleb1 vox1_E_clean:list_test_all2.txt:voxceleb1"
  trial_lists="$trial_lists vox1_H:list_test_hard.txt:voxceleb1 vox1_H_clean:list_test_hard2.txt:voxceleb1"
  test_sets="voxceleb1 voxceleb1_test"
fi

# record_of <data-dir>: a checksum of the markers saying how <data-dir> and its features
# were made; it changes when either is made otherwise.
record_of() {
  local f
  for f in .made_by .feats_vad_done; do [ ! -f "$1/$f" ] || cat "$1/$f"; done | md5sum | cut -d' ' -f1
}

# make_dir <dir> <command...>: runs the command with the word DEST standing for
# <dir>.tmp and renames that to <dir> when it succeeded, so <dir> exists only when
# complete. <dir>/.made_by records the command (less --nj and --cmd, which do not
# change the result) and the records of the data dirs it reads: an existing <dir>
# with the same record is kept (the step is done); one with another is made again,
# and replaced only once the new one is complete.
make_dir() {
  local dest=$1 arg args=() record= skip=false
  shift
  for arg in "$@"; do
    if [ "$arg" = DEST ]; then args+=("$dest.tmp"); else args+=("$arg"); fi
    if $skip; then skip=false; continue; fi
    case "$arg" in --nj|--cmd) skip=true; continue ;; esac
    record+="$arg "
  done
  # The data dirs it reads: arguments under data/, also inside a longer argument
  # ("0.5, data/rirs/smallroom/rir_list" reads data/rirs).
  for arg in $(printf '%s\n' "$@" | grep -oE '(^|[ ,])data/[^/ ,]+' | sed 's/^[ ,]//' | awk '!seen[$0]++'); do
    [ -d "$arg" ] && [ "$arg" != "$dest" ] && record+=$'\n'"$arg $(record_of "$arg")"
  done
  if [ -d "$dest" ]; then
    [ "$(cat "$dest/.made_by" 2>/dev/null)" = "$record" ] && return 0
    echo "$0: $dest was made otherwise; making it again. Was / now:"
    diff <(cat "$dest/.made_by" 2>/dev/null) <(echo "$record") | grep '^[<>]' || true
  fi
  rm -rf "$dest.tmp"
  "${args[@]}"
  echo "$record" > "$dest.tmp/.made_by"
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
}

# combine_feats <dest> <data-dir>...: utils/combine_data.sh, keeping the (equal) record
# of how the sources' features were made.
combine_feats() {
  utils/combine_data.sh "$@"
  python -m sid.bin.feature_record copy "${@:2}" "$1"
}

# Features (and VAD unless told "novad") for data/$1; data/$1/.feats_vad_done, written
# last, records the feature type and the configs: other ones redo the features. With
# "novad <dir>", data/$1 keeps the VAD of data/<dir> (its vad.scp) and takes its record.
feats_vad_record() {
  echo "$feat_type $(md5sum < $feat_config | cut -d' ' -f1) $1 $(cat $mfcc_config $vad_config | md5sum | cut -d' ' -f1)"
}
make_features() {
  local name=$1 vad=${2:-vad} vad_from=${3:-}
  [ "$(cat data/$name/.feats_vad_done 2>/dev/null)" = "$(feats_vad_record $vad)" ] && return 0
  rm -f data/$name/.feats_vad_done
  steps/make_$feat_type.sh --$feat_type-config $feat_config --write-utt2num-frames true \
    --nj $nj --cmd "$train_cmd" data/$name exp/make_$feat_type/$name $feat_dir
  utils/fix_data_dir.sh data/$name
  if [ $vad = vad ] && [ $feat_type = mfcc ]; then
    steps/compute_vad_decision.sh --vad-config $vad_config --nj $nj --cmd "$train_cmd" \
      data/$name exp/make_vad/$name $feat_dir
    utils/fix_data_dir.sh data/$name
  elif [ $vad = vad ]; then
    # Energy VAD decides on MFCC C0, as in Kaldi v2: MFCCs (same framing as the fbank
    # configs) in a side copy of the data dir, whose vad.scp this data dir takes.
    rm -rf data/${name}_vad_mfcc
    utils/copy_data_dir.sh data/$name data/${name}_vad_mfcc
    steps/make_mfcc.sh --mfcc-config $mfcc_config --write-utt2num-frames true \
      --nj $nj --cmd "$train_cmd" data/${name}_vad_mfcc exp/make_vad/$name $feat_dir
    steps/compute_vad_decision.sh --vad-config $vad_config --nj $nj --cmd "$train_cmd" \
      data/${name}_vad_mfcc exp/make_vad/$name $feat_dir
    cp data/${name}_vad_mfcc/vad.scp data/$name/vad.scp
    python -m sid.bin.feature_record copy-vad data/${name}_vad_mfcc data/$name
    rm -r data/${name}_vad_mfcc
    utils/fix_data_dir.sh data/$name
  fi
  [ -z "$vad_from" ] || python -m sid.bin.feature_record copy-vad data/$vad_from data/$name
  utils/validate_data_dir.sh data/$name
  feats_vad_record $vad > data/$name/.feats_vad_done
}

# select_training_utts <min-len> <min-num-utts> <src> <dest>: Kaldi v2's last step of the
# training data: utterances with fewer than <min-len> voiced frames dropped, then
# speakers with fewer than <min-num-utts> utterances.
select_training_utts() {
  local min_len=$1 min_num_utts=$2 src=$3 dest=$4 lists=$4.lists
  rm -rf $lists; mkdir -p $lists
  awk -v min=$min_len '$2 >= min' $src/utt2num_frames | utils/filter_scp.pl - $src/utt2spk > $lists/utt2spk.long
  utils/utt2spk_to_spk2utt.pl $lists/utt2spk.long | awk -v min=$min_num_utts 'NF - 1 >= min {print $1}' > $lists/spk.keep
  utils/filter_scp.pl -f 2 $lists/spk.keep $lists/utt2spk.long > $lists/utt.keep
  utils/subset_data_dir.sh --utt-list $lists/utt.keep $src $dest
  rm -r $lists
  python -m sid.bin.feature_record copy $src $dest
  utils/validate_data_dir.sh --no-wav $dest
}

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "$0: stage 0: data dirs and trials"
  if [ ! -f $trials_dir/veri_test.txt ] && [ ! -f $trials_dir/veri_test.txt.gz ]; then
    local/download_voxceleb_lists.sh $trials_dir
  fi
  make_dir data/voxceleb1_test local/make_voxceleb1.py ${vox1_meta:+--meta $vox1_meta} --nj $nj $voxceleb1_root test DEST
  make_dir data/voxceleb1_dev local/make_voxceleb1.py ${vox1_meta:+--meta $vox1_meta} --nj $nj $voxceleb1_root dev DEST
  make_dir data/voxceleb2_dev local/make_voxceleb2.py ${vox2_meta:+--meta $vox2_meta} --nj $nj $voxceleb2_root dev DEST
  if [ $train_set = kaldi ]; then
    make_dir data/voxceleb2_test local/make_voxceleb2.py ${vox2_meta:+--meta $vox2_meta} --nj $nj $voxceleb2_root test DEST
    make_dir data/train utils/combine_data.sh DEST data/voxceleb2_dev data/voxceleb2_test data/voxceleb1_dev
  else
    make_dir data/train utils/copy_data_dir.sh data/voxceleb2_dev DEST
    make_dir data/voxceleb1 utils/combine_data.sh DEST data/voxceleb1_dev data/voxceleb1_test
  fi
  for entry in $trial_lists; do
    IFS=: read -r name list dir <<< "$entry"
    if [ -f $trials_dir/$list ]; then
      src=$trials_dir/$list
    elif [ -f $trials_dir/$list.gz ]; then
      src=$trials_dir/$list.gz
    else
      echo "$0: no $trials_dir/$list(.gz): trials_$name not made" >&2
      continue
    fi
    # Kept while made from the same list (path and content) and the same data dir.
    made data/$dir/trials_$name.made_by "" $src data/$dir/wav.scp data/$dir/utt2spk && continue
    local/make_voxceleb1_trials.py --data-dir data/$dir $src data/$dir/trials_$name
    made_done data/$dir/trials_$name.made_by
  done
  for name in train $test_sets; do
    utils/validate_data_dir.sh --no-feats data/$name
  done
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ] && [ $data_source = audio ]; then
  # Training reads data/train's audio and extraction the test sets' (sid.extract, as trained).
  echo "$0: stage 1: nothing to do: $config trains and embeds from the audio"
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ] && [ $data_source = features ]; then
  echo "$0: stage 1: $feat_type features and VAD"
  need data/train/utt2spk 0
  make_features train
  make_features ${test_sets%% *}
  # (Its marker has another name than make_features' so that data/voxceleb1, made from
  # data/voxceleb1_test before it had features, keeps its record.)
  if [ $train_set = wespeaker ] && \
     [ "$(cat data/voxceleb1_test/.feats_from_voxceleb1 2>/dev/null)" != "$(cat data/voxceleb1/.feats_vad_done)" ]; then
    # VoxCeleb1 test is part of VoxCeleb1, whose features are made: take them.
    rm -f data/voxceleb1_test/.feats_from_voxceleb1
    for f in feats.scp vad.scp utt2num_frames; do
      utils/filter_scp.pl data/voxceleb1_test/utt2spk data/voxceleb1/$f > data/voxceleb1_test/$f.tmp
      mv data/voxceleb1_test/$f.tmp data/voxceleb1_test/$f
    done
    utils/fix_data_dir.sh data/voxceleb1_test  # drops utterances whose features failed
    utils/validate_data_dir.sh data/voxceleb1_test
    python -m sid.bin.feature_record copy data/voxceleb1 data/voxceleb1_test
    cp data/voxceleb1/.feats_vad_done data/voxceleb1_test/.feats_from_voxceleb1
  fi
fi

# combine_sp <dest> <clean> <speed-copy>...: combine_feats, with utt2aug kept:
# combine_data.sh leaves it out (the clean dir has none), but the copies made from
# <dest> must keep the speed, so clean utterances get the empty recipe.
combine_sp() {
  combine_feats "$@"
  { awk '{print $1, "{}"}' $2/utt2spk; for d in "${@:3}"; do cat $d/utt2aug; done; } | sort > $1/utt2aug
}

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "$0: stage 2: augmentation"
  if ! musan_made; then
    check_dir --musan-root "$musan_root" "music/ noise/ speech/"
    rm -rf data/musan_music data/musan_noise data/musan_speech
    local/make_musan.py --nj $nj $musan_root data
    for kind in music noise speech; do echo "$musan_record" > data/musan_$kind/.made_by; done
  fi
  make_dir data/rirs local/prepare_rirs.py $rirs_root DEST
fi

# The Kaldi path: fixed augmented copies with features (a config training from audio
# augments every chunk afresh in the loader instead).
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ $data_source = features ]; then
  need data/train/.feats_vad_done 1
  src=train
  if [ $speed_perturb = true ]; then
    for factor in 0.9 1.1; do
      make_dir data/train_sp$factor python -m sid.bin.perturb_data_dir_speed $factor data/train DEST
      make_features train_sp$factor
    done
    make_dir data/train_sp combine_sp DEST data/train data/train_sp0.9 data/train_sp1.1
    src=train_sp
  fi
  # Kaldi egs/voxceleb/v2 stage 2: one copy per kind; the copies carry the clean VAD.
  make_dir data/train_reverb python -m sid.bin.reverberate_data_dir --random-seed $aug_seed --utt-suffix reverb \
    --speech-rvb-probability 1 \
    --rir-set-parameters "0.5, data/rirs/smallroom/rir_list" \
    --rir-set-parameters "0.5, data/rirs/mediumroom/rir_list" data/$src DEST
  make_dir data/train_noise python -m sid.bin.augment_data_dir --random-seed $aug_seed --utt-suffix noise \
    --fg-interval 1 --fg-snrs 15:10:5:0 --fg-noise-dir data/musan_noise data/$src DEST
  make_dir data/train_music python -m sid.bin.augment_data_dir --random-seed $aug_seed --utt-suffix music \
    --bg-snrs 15:10:8:5 --num-bg-noises 1 --bg-noise-dir data/musan_music data/$src DEST
  make_dir data/train_babble python -m sid.bin.augment_data_dir --random-seed $aug_seed --utt-suffix babble \
    --bg-snrs 20:17:15:13 --num-bg-noises 3:4:5:6:7 --bg-noise-dir data/musan_speech data/$src DEST
  make_dir data/train_aug utils/combine_data.sh DEST data/train_reverb data/train_noise data/train_music data/train_babble
  # Kaldi stage 3: features for a subset of the copies only, then combine with the clean data.
  if [ $(wc -l < data/train_aug/utt2spk) -gt $num_aug_utts ]; then
    make_dir data/train_aug_subset utils/subset_data_dir.sh data/train_aug $num_aug_utts DEST
  else
    make_dir data/train_aug_subset utils/copy_data_dir.sh data/train_aug DEST
  fi
  make_features train_aug_subset novad $src
  make_dir data/train_combined combine_feats DEST data/train_aug_subset data/$src
  utils/validate_data_dir.sh data/train_combined
fi

exp=exp/$config_name
# The model the later stages use: the fine-tuned one where there is fine-tuning.
final_exp=$exp
[ -n "$lm_config" ] && final_exp=exp/$(basename "$lm_config" .yaml)
lock_dirs $exp $final_exp
emb=$final_exp/embeddings
if [ "$use_gpu" = auto ]; then
  use_gpu=$(python -c 'import torch; print(str(torch.cuda.is_available()).lower())')
fi
case $use_gpu in
  true|false) ;;
  *) echo "$0: --use-gpu must be auto, true or false, got '$use_gpu'" >&2; exit 1 ;;
esac

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ] && [ $data_source = audio ]; then
  echo "$0: stage 3: nothing to do: $config trains from the audio of data/train"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ] && [ $data_source = features ]; then
  echo "$0: stage 3: training features"
  need data/train_combined/feats.scp 2
  make_dir data/train_combined_cmn steps/prepare_feats_for_egs.sh --nj $nj --cmd "$train_cmd" \
    data/train_combined DEST $feat_dir/train_combined_cmn
  make_dir data/train_combined_no_sil select_training_utts $min_len $min_num_utts data/train_combined_cmn DEST
fi

unlock_dirs data  # the training data are complete; other runs may use data/ from here

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "$0: stage 4: training $config into $exp (log: $exp/log/train_job.log)"
  mkdir -p $exp/log
  train_data=data/train_combined_no_sil
  audio_opts=()
  if [ $data_source = audio ]; then
    # Chunks of data/train's audio, augmented in the loader from the stage-2 MUSAN and RIR dirs.
    train_data=data/train
    need data/musan_noise/wav.scp 2
    audio_opts=(--fbank-config $fbank_config --rir-list data/rirs/smallroom/rir_list,data/rirs/mediumroom/rir_list
                --noise-dir data/musan_noise --music-dir data/musan_music --babble-dir data/musan_speech)
  else
    need data/train_combined_no_sil/feats.scp 3
  fi
  $cuda_cmd --num-nodes $num_nodes --gpu $ngpu --num-threads $((num_workers > 0 ? num_workers : 1)) $exp/log/train_job.log \
    steps/train_xvector.sh --model-config $config --ngpu $ngpu --num-workers $num_workers \
      "${audio_opts[@]}" $train_data $exp
  if [ -n "$lm_config" ]; then
    echo "$0: stage 4: large-margin fine-tuning of $exp/final.pt with $lm_config into $final_exp"
    mkdir -p $final_exp/log
    $cuda_cmd --num-nodes $num_nodes --gpu $ngpu --num-threads $((num_workers > 0 ? num_workers : 1)) \
      $final_exp/log/train_job.log \
      steps/train_xvector.sh --model-config $lm_config --init-model $exp/final.pt --ngpu $ngpu \
        --num-workers $num_workers "${audio_opts[@]}" $train_data $final_exp
  fi
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "$0: stage 5: embeddings"
  need $final_exp/final.pt 4
  for set in train $test_sets; do
    steps/extract_embeddings.sh --nj $nj --cmd "$([ $use_gpu = true ] && echo "$cuda_cmd" || echo "$train_cmd")" \
      --use-gpu $use_gpu $final_exp data/$set $emb/$set
  done
fi

# Trial lists per test set: data/<set>/trials_<name>.
trials_of() {
  local entry name list dir
  for entry in $trial_lists; do
    IFS=: read -r name list dir <<< "$entry"
    [ $dir = $1 ] && [ -f data/$dir/trials_$name ] && echo data/$dir/trials_$name
  done
  return 0
}

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  echo "$0: stage 6: back-ends and scores"
  for set in train $test_sets; do need $emb/$set/xvector.scp 5; done
  for set in $test_sets; do
    trials=$(trials_of $set)
    [ -n "$trials" ] || continue
    steps/score_cosine.sh --cmd "$train_cmd" --allow-partial $allow_partial data/train $emb/train $emb/$set $final_exp/scores $trials
    steps/score_norm.sh --cmd "$train_cmd" --allow-partial $allow_partial --backend cosine --method asnorm --top-n $cohort_top_n \
      data/train $emb/train $emb/$set $final_exp/scores $trials
    if [ $train_set = wespeaker ]; then
      steps/score_qmf.sh --cmd "$train_cmd" --top-n $cohort_top_n \
        data/train $emb/train data/$set $emb/$set $final_exp/scores $trials
    fi
    steps/score_plda.sh --cmd "$train_cmd" --allow-partial $allow_partial --lda-dim $lda_dim data/train $emb/train $emb/$set $final_exp/scores $trials
    [ -n "${first:-}" ] || first=$(printf "%s\n" $trials | head -n 1)
  done
  # The model's back-end for sid.Embedder and `sid.bin.verify --exp $final_exp`: the calibrated
  # QMF one where it was trained, else PLDA (recorded once: the first list's threshold file, so
  # that a rerun rewrites nothing).
  if [ $train_set = wespeaker ] && [ -n "${first:-}" ]; then
    cohort=$emb/train/spk_xvector.scp; [ -f $cohort ] || cohort=$final_exp/scores/backend_cosine/spk_xvector.scp
    python -m sid.bin.record_backend --cohort $cohort \
      --threshold-file $final_exp/scores/$(basename $first).cosine_asnorm_qmf.threshold $final_exp $final_exp/scores/backend_cosine
  elif [ -n "${first:-}" ]; then
    python -m sid.bin.record_backend $final_exp $final_exp/scores/backend_plda
  fi
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  echo "$0: stage 7: results"
  all_trials=$(for set in $test_sets; do trials_of $set; done)
  steps/compute_metrics.sh --allow-partial $allow_partial --tsne-emb-dir $emb/${test_sets##* } --tsne-utt2spk data/${test_sets##* }/utt2spk \
    $final_exp/scores $final_exp $all_trials
  echo "$0: results in $final_exp/results.json"
fi
exit
}
