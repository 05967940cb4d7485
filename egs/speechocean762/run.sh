#!/usr/bin/env bash
# Usage: ./run.sh [options]
# Speaker verification on speechocean762 (OpenSLR 101, read English speech, 16 kHz),
# small enough for a laptop CPU (about 3 minutes on 2 cores), with the stages of the
# VoxCeleb recipe: data prep, 30-dim MFCC + energy VAD, sliding CMN and voiced frames,
# a small x-vector TDNN, embedding extraction, cosine / cosine+AS-norm (+QMF calibration) /
# LDA+PLDA back-ends, EER, minDCF, Cllr and the calibrated threshold's actual DCF into
# <exp>/results.json, a printed table and plots.
#
# With only train/ in the corpus, --num-test-speakers speakers are held out for
# evaluation and a VoxCeleb-format trial list is made for them; with test/ present,
# train/ trains and test/ evaluates.
#
# Options:
#   --corpus DIR             speechocean762 folder with WAVE/ and train/ (default:
#                            ../shared/corpora/speechocean762 beside the checkout; else
#                            downloads/speechocean762 from local/download.sh)
#   --trials "FILE ..."      more VoxCeleb-format lists (1|0 path1 path2, paths relative
#                            to the corpus root) to score
#   --exp DIR                experiment folder: model, embeddings, scores, results.json
#                            (default exp/ in this recipe's folder)
#   --data DIR               data dirs and features (default data/ in this recipe's folder)
#   --config YAML            model and training config (default conf/xvector_small.yaml);
#                            one with a 'frontend' section (d-vector, ResNetSE34, GRU,
#                            ConvGRU configs) is trained on that front-end, computed
#                            beside the MFCCs (which still decide the VAD)
#   --epochs N               train N epochs instead of the config's (default 0: the config's)
#   --train-source features|audio  train on the prepared features (CMN'd voiced frames,
#                            stage 2), or on chunks of the audio with the config's front-end
#                            computed on the fly (data.source: audio; e.g. ConvGRU on the raw
#                            waveform; no front-end features are stored, extraction too
#                            reads the audio) (default: the config's data.source)
#   --train-threads N        intra-op threads of training (default 2; RESULTS.md's figures
#                            depend on it, see there)
#   --pretrained NAME        evaluate a pretrained model instead of training one: resemblyzer
#                            (Resemblyzer's GE2E d-vector, imported by sid.bin.import_model into
#                            <exp>/pretrained_resemblyzer, installing its weights with
#                            pip install --no-deps resemblyzer where absent); its results stand
#                            in <exp>/results.json as rows of their own (resemblyzer: ...)
#   --finetune no|true|scratch  with --pretrained: fine-tune the imported model on the
#                            training speakers (true: steps/train_xvector.sh --init-model with
#                            --finetune-config, into <exp>/ft_<name>, rows <name>_ft_...), or
#                            train its architecture and front-end from random weights with the
#                            same settings, nothing frozen, no L2-SP, distillation nor interpolation with the
#                            initial weights (scratch: <exp>/scratch_<name>, rows
#                            <name>_scratch_...) (default no, or false: evaluate it as imported)
#   --finetune-config YAML   training settings of --finetune (default conf/dvector_finetune.yaml)
#   --finetune-speed-perturb true|false  with --finetune: train on the training utterances and
#                            their 0.9x and 1.1x speed copies, each speed a new speaker (Kaldi's
#                            perturb_data_dir_speed, as WeSpeaker and 3D-Speaker do), 3x the
#                            speakers and steps (default false)
#   --stage N --stop-stage N run only stages N..M (0 data, 1 features, 2 training
#                            features, 3 train, 4 extract, 5 score, 6 metrics)
#   --nj N                   parallel jobs (default 2)
#   --num-test-speakers N    held-out speakers without test/ (default 25)
#   --test-fold K            without test/: hold out the K-th of the folds of --num-test-speakers
#                            speakers that partition the corpus's (125 / 25: folds 0-4; give each
#                            its own --data and --exp), for results pooled over the folds by
#                            local/pool_folds.sh (default 0: the usual held-out speakers)
#   --max-train-speakers N   fewer training speakers, for a quick run (default 0: all)
#   --dev-speakers N         a development split, for choosing settings: the held-out speakers
#                            are left out and N of the training speakers are held out in their
#                            place (give it its own --data and --exp) (default 0: none)
#   --dev-seed N             with --dev-speakers: the seed of which training speakers are held out
#                            and of their trials (another split of the same training speakers; the
#                            test speakers left out stay the same) (default "": local/prepare_data.py's --seed)
#   --dev-fold K             with --dev-speakers: hold out the K-th of the folds of N training
#                            speakers (fold 0 is the --dev-seed split; 100 / 25: folds 0-3), for
#                            development results pooled by local/pool_folds.sh (default "": none)
#   --min-frames N           drop training utterances with fewer voiced frames (default 100)
#   --lda-dim N              LDA dimension before PLDA (default 48)
#   --allow-partial true|false  score and evaluate the trials that have embeddings, warning
#                            about the others, instead of stopping (default false)
# Every stage skips work that is already complete, so rerunning after a crash resumes.
# Braces around the whole body: bash reads a script as it runs, so an edit to this file during
# a long stage would otherwise change what the running recipe does next.
{
set -euo pipefail

corpus=
trials=
exp=
data=
config=conf/xvector_small.yaml
epochs=0
train_source=
train_threads=2
pretrained=
finetune=no  # not false: parse_options.sh would then accept only true|false
finetune_config=conf/dvector_finetune.yaml
finetune_speed_perturb=false
stage=0
stop_stage=6
nj=2
num_test_speakers=25
test_fold=0
max_train_speakers=0
dev_speakers=0
dev_seed=
dev_fold=
min_frames=100
lda_dim=48
allow_partial=false

here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/utils/parse_options.sh"  # before the set-up: --help and a bad option answer at once

# Resolve user paths before moving into the recipe folder (Kaldi recipes run from there).
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ -n "$corpus" ] && corpus=$(abspath "$corpus")
user_trials=()
for t in $trials; do user_trials+=("$(abspath "$t")"); done
exp=$(abspath "${exp:-$here/exp}"); data=$(abspath "${data:-$here/data}")
# A config may be given relative to where the user is, to the recipe folder or to the
# project root (conf/dvector_ge2e.yaml etc.).
find_config() {
  if [ -f "$1" ]; then abspath "$1"
  elif [ -f "$here/$1" ]; then echo "$here/$1"
  elif [ -f "$root/$1" ]; then echo "$root/$1"
  else echo "$0: no config $1 (looked here, in $here and in $root)" >&2; return 1
  fi
}
config=$(find_config "$config")
[ "$finetune" = false ] && finetune=no
[ "$finetune" = no ] || finetune_config=$(find_config "$finetune_config")
if [ "$finetune_speed_perturb" = true ] && [ "$finetune" = no ]; then
  echo "$0: --finetune-speed-perturb goes with --finetune true|scratch" >&2
  exit 1
fi
if [ -n "$dev_seed$dev_fold" ] && [ "$dev_speakers" -eq 0 ]; then
  echo "$0: --dev-seed and --dev-fold go with --dev-speakers (the test speakers are chosen by local/prepare_data.py's --seed)" >&2
  exit 1
fi
cd "$here"

# The corpus first: the set-up below takes minutes the first time.
shared=${SID_SHARED:-$root/../shared}
if [ -n "$corpus" ]; then
  if [ ! -d "$corpus/train" ]; then
    echo "$0: --corpus $corpus: no train/ there (expected a speechocean762 folder with WAVE/ and train/," >&2
    echo "  e.g. the unpacked OpenSLR 101 archive)" >&2
    exit 1
  fi
elif [ -d "$shared/corpora/speechocean762/train" ]; then
  corpus=$(cd "$shared/corpora/speechocean762" && pwd)
elif [ -d downloads/speechocean762/train ] || local/download.sh downloads; then
  corpus=$here/downloads/speechocean762
else
  echo "$0: no corpus. Pass --corpus DIR (a speechocean762 folder with WAVE/ and train/," >&2
  echo "  e.g. the unpacked OpenSLR 101 archive), or go online so local/download.sh can fetch it." >&2
  exit 1
fi

"$root/tools/setup_env.sh"
. ./cmd.sh
. ./path.sh
. utils/lock_dirs.sh
lock_dirs "$data" "$exp"  # a second run on these dirs waits for this one (saying for whom)

# need <file> <stage>: a stage's input, or an error saying which stage makes it.
need() {
  [ -e "$1" ] && return 0
  echo "$0: $1 is missing: stage $2 makes it (run with --stage $2, or without --stage)" >&2
  exit 1
}
mfccdir=$data/mfcc
model=$exp/xvector
scores=$exp/scores
metrics_opts=()
if [ -n "$pretrained" ]; then
  [ "$pretrained" = resemblyzer ] || { echo "$0: --pretrained must be resemblyzer, got '$pretrained'" >&2; exit 1; }
  [ "$epochs" -eq 0 ] || { echo "$0: --epochs does not go with --pretrained (nothing is trained)" >&2; exit 1; }
  # Its own model and scores dirs; its rows in results.json named after it.
  model=$exp/pretrained_$pretrained
  scores=$exp/scores_$pretrained
  metrics_opts=(--backend-prefix "${pretrained}_")
  if [ ! -f "$model/final.pt" ]; then
    python -m sid.bin.import_model --format "$pretrained" "$pretrained" "$model"
  fi
  case "$finetune" in
    no) ;;
    true|scratch)
      # Trained from the import (or its architecture from random weights): a model of its own,
      # extracted as the import is (from the audio, its own front-end).
      imported=$model
      tag=$([ "$finetune" = true ] && echo ft || echo scratch)
      model=$exp/${tag}_$pretrained
      scores=$exp/scores_${pretrained}_$tag
      metrics_opts=(--backend-prefix "${pretrained}_${tag}_") ;;
    *) echo "$0: --finetune must be no, true or scratch, got '$finetune'" >&2; exit 1 ;;
  esac
elif [ "$finetune" != no ]; then
  echo "$0: --finetune needs --pretrained" >&2; exit 1
fi
emb=$model/embeddings
# A model with its own front-end reads features named after it (e.g. vt_mel40) in
# $data/<set>_<name>; the others read the MFCCs. An imported model computes its
# front-end from the audio at extraction (features.source: audio).
# The config's front-end name (empty: none) and its data.source.
info=$(python -c 'import sys
from sid.config import load_config
cfg = load_config(sys.argv[1])
f = cfg.frontend
print(cfg.data.source, "" if f is None else f.type + str(f.frame_samples if f.type == "waveform" else f.num_mel_bins))' "$config")
read -r config_source fe <<< "$info"
[ -z "$pretrained" ] || fe=
feat=${fe:+_$fe}
train_source=${train_source:-$config_source}
case "$train_source" in
  features|audio) ;;
  *) echo "$0: --train-source must be features or audio, got '$train_source'" >&2; exit 1 ;;
esac
if [ "$train_source" = audio ] && [ -z "$fe" ]; then
  echo "$0: training from audio (--train-source audio, or the config's data.source: audio) needs a config" \
    "with a 'frontend' section here ($config has none; the MFCCs are made in stage 1)" >&2
  exit 1
fi
if [ "$epochs" -gt 0 ] || [ "$train_source" != "$config_source" ]; then
  # The same config with another epoch count or source, kept in the exp dir (training records it too).
  mkdir -p "$exp"
  python -c 'import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
if int(sys.argv[2]) > 0:
    cfg.setdefault("training", {})["epochs"] = int(sys.argv[2])
cfg.setdefault("data", {})["source"] = sys.argv[3]
yaml.safe_dump(cfg, open(sys.argv[4], "w"), sort_keys=False)' "$config" "$epochs" "$train_source" "$exp/train_config.yaml"
  config=$exp/train_config.yaml
fi
echo "$0: corpus $corpus, data $data, exp $exp, config $config${fe:+, front-end $fe}"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  # The split depends only on these arguments; an unchanged rerun keeps the data dirs
  # (and so the features made from them) as they are.
  prep_args="$corpus $num_test_speakers $max_train_speakers"
  [ "$test_fold" -eq 0 ] || prep_args+=" fold $test_fold"
  [ "$dev_speakers" -eq 0 ] || prep_args+=" dev $dev_speakers${dev_seed:+ seed $dev_seed}${dev_fold:+ fold $dev_fold}"
  if [ "$(cat "$data/.prepared" 2>/dev/null)" != "$prep_args" ]; then
    rm -rf "$data/train" "$data/test" "$data/train_no_sil"
    local/prepare_data.py --num-test-speakers "$num_test_speakers" \
      --max-train-speakers "$max_train_speakers" --test-fold "$test_fold" --dev-speakers "$dev_speakers" ${dev_seed:+--dev-seed "$dev_seed"} ${dev_fold:+--dev-fold "$dev_fold"} \
      "$corpus" "$data"
    echo "$prep_args" > "$data/.prepared"
  fi
  utils/validate_data_dir.sh --no-feats "$data/train"
  utils/validate_data_dir.sh --no-feats "$data/test"
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  for x in train test; do need "$data/$x/utt2spk" 0; done
  for x in train test; do
    steps/make_mfcc.sh --nj "$nj" --cmd "$train_cmd" --mfcc-config conf/mfcc.conf \
      "$data/$x" "$data/log/make_mfcc/$x" "$mfccdir"
    steps/compute_vad_decision.sh --nj "$nj" --cmd "$train_cmd" --vad-config conf/vad.conf \
      "$data/$x" "$data/log/make_vad/$x" "$mfccdir"
    utils/fix_data_dir.sh "$data/$x"
    if [ -n "$fe" ] && [ "$train_source" = features ]; then
      # (From audio, training and extraction compute the front-end themselves: nothing stored.)
      # Uncompressed: Kaldi's 8-bit compression would coarsen a waveform.
      if [ ! -f "$data/$x$feat/feats.scp" ] || [ "$data/$x$feat/feats.scp" -ot "$data/$x/feats.scp" ]; then
        rm -rf "$data/$x$feat"
        utils/copy_data_dir.sh "$data/$x" "$data/$x$feat"
        rm -f "$data/$x$feat/feats.scp" "$data/$x$feat/utt2num_frames"
      fi
      steps/make_frontend_feats.sh --nj "$nj" --cmd "$train_cmd" --model-config "$config" --compress false \
        "$data/$x$feat" "$data/log/make_$fe/$x" "$data/$fe"
      utils/fix_data_dir.sh "$data/$x$feat"
    fi
  done
fi

if [ -n "$pretrained" ] && [ "$finetune" = no ] && [ $stage -le 3 ] && [ $stop_stage -ge 2 ]; then
  echo "$0: stages 2-3 skipped: $model is imported, not trained"
elif [ -n "$pretrained" ] && [ $stage -le 3 ] && [ $stop_stage -ge 2 ]; then
  # Training features: the import's front-end of each whole training utterance, nothing
  # subtracted and no Kaldi VAD (cmvn_opts none), which is what extraction computes from audio.
  ft_data=$data/train_${pretrained}_ft
  speeds=1 sp=
  if [ "$finetune_speed_perturb" = true ]; then speeds="1 0.9 1.1" sp=_sp; fi
  ft_data=$ft_data$sp
  if [ $stage -le 2 ]; then
    need "$data/train/wav.scp" 0
    if [ ! -f "$ft_data/.done" ] || [ "$ft_data/.done" -ot "$imported/config.yaml" ]; then
      rm -rf "$ft_data" "$ft_data.parts"
      parts=()
      for speed in $speeds; do
        # (a speed copy's utterances and speakers are named sp<speed>-..., its utt2aug the speed)
        part=$ft_data.parts/$speed
        if [ "$speed" = 1 ]; then
          utils/copy_data_dir.sh "$data/train" "$part"
        else
          python -m sid.bin.perturb_data_dir_speed "$speed" "$data/train" "$part"
        fi
        rm -f "$part/feats.scp" "$part/utt2num_frames" "$part/vad.scp"
        steps/make_frontend_feats.sh --nj "$nj" --cmd "$train_cmd" --model-config "$imported/config.yaml" \
          --compress false "$part" "$data/log/make_${pretrained}_ft$sp/$speed" "$data/${pretrained}_ft$sp/$speed"
        echo none > "$part/cmvn_opts"
        utils/fix_data_dir.sh "$part"
        parts+=("$part")
      done
      if [ ${#parts[@]} -eq 1 ]; then
        mv "${parts[0]}" "$ft_data"
      else
        utils/combine_data.sh "$ft_data" "${parts[@]}"
        python -m sid.bin.feature_record copy "${parts[@]}" "$ft_data"
      fi
      rm -rf "$ft_data.parts"
      touch "$ft_data/.done"
    fi
  fi
  if [ $stop_stage -ge 3 ]; then
    need "$ft_data/.done" 2
    ft_config=$finetune_config ft_init=(--init-model "$imported")
    if [ "$finetune" = scratch ]; then
      # The same training settings on the import's architecture, front-end and chunking, nothing
      # frozen, no L2-SP, distillation nor interpolation (there are no initial weights to pull towards or mix in).
      mkdir -p "$model"
      python -c 'import dataclasses, sys
from sid.config import load_config, load_finetune_config
cfg = load_finetune_config(sys.argv[1], load_config(sys.argv[2], recorded=True), sys.argv[2])
cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, freeze=[], freeze_epochs=0, l2sp=0.0, distill=0.0,
                                                          interpolate_init=1.0))
cfg.dump(sys.argv[3], f"{sys.argv[1]} for the model of {sys.argv[2]}, from random weights")' \
        "$finetune_config" "$imported/config.yaml" "$exp/scratch_config.yaml"
      ft_config=$exp/scratch_config.yaml ft_init=()
    fi
    steps/train_xvector.sh "${ft_init[@]}" --model-config "$ft_config" --num-workers 1 \
      --train-opts "--num-threads=$train_threads" "$ft_data" "$model"
  fi
elif [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ "$train_source" = features ]; then
  need "$data/train/.vad_done" 1
  # Sliding CMN and voiced frames only, then drop what is too short to cut a training
  # chunk from, as Kaldi's recipe does. The done-marker records what made the result
  # (--min-frames and the records the features and the VAD keep in the data dir, not the
  # recipe's conf/: the data dir is where they were made from): a change makes it again.
  done_args="$min_frames $(cat "$data/train$feat/.feats_done" "$data/train/.vad_done" "$data/train/vad.scp" | md5sum | cut -d' ' -f1)"
  if [ "$(cat "$data/train${feat}_no_sil/.done" 2>/dev/null)" != "$done_args" ]; then
    rm -rf "$data/train${feat}_cmn" "$data/train${feat}_no_sil.tmp"
    steps/prepare_feats_for_egs.sh --nj "$nj" --cmd "$train_cmd" ${fe:+--compress false} \
      "$data/train$feat" "$data/train${feat}_cmn" "$data/${fe:-mfcc}_no_sil"
    awk -v min="$min_frames" '$2 >= min {print $1}' "$data/train${feat}_cmn/utt2num_frames" > "$data/train${feat}_cmn/utts.keep"
    utils/subset_data_dir.sh --utt-list "$data/train${feat}_cmn/utts.keep" "$data/train${feat}_cmn" \
      "$data/train${feat}_no_sil.tmp"
    python -m sid.bin.feature_record copy "$data/train${feat}_cmn" "$data/train${feat}_no_sil.tmp"
    utils/validate_data_dir.sh --no-wav "$data/train${feat}_no_sil.tmp"
    echo "$done_args" > "$data/train${feat}_no_sil.tmp/.done"
    rm -rf "$data/train${feat}_no_sil" "$data/train${feat}_cmn"
    mv "$data/train${feat}_no_sil.tmp" "$data/train${feat}_no_sil"
  fi
fi

if [ -z "$pretrained" ] && [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  # A fixed thread count, whatever the machine: CPU kernels sum in an order that depends on
  # it, and RESULTS.md's figures say which they are for.
  if [ "$train_source" = audio ]; then
    # Chunks of the audio itself (no VAD, per-chunk CMN), through the config's front-end.
    need "$data/train/utt2dur" 1
    steps/train_xvector.sh --model-config "$config" --num-workers 1 --train-opts "--num-threads=$train_threads" \
      "$data/train" "$model"
  else
    need "$data/train${feat}_no_sil/.done" 2
    steps/train_xvector.sh --model-config "$config" --num-workers 1 --train-opts "--num-threads=$train_threads" \
      "$data/train${feat}_no_sil" "$model"
  fi
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  need "$model/final.pt" 3
  for x in train test; do need "$data/$x/vad.scp" 1; done
  # Training picks the GPU by itself; extraction is told.
  use_gpu=$(python -c 'import torch; print(str(torch.cuda.is_available()).lower())')
  for x in train test; do
    # A model trained from audio reads the audio of the plain data dir.
    src=$data/$x$feat; [ "$train_source" = audio ] && src=$data/$x
    steps/extract_embeddings.sh --nj "$nj" --cmd "$train_cmd" --use-gpu "$use_gpu" "$model" "$src" "$emb/$x"
  done
fi

# Kaldi trials for the recipe's own list ("test") and every --trials list, each
# named by its file name without extension: data/test/trials/<name>.
voxceleb_lists=("$data/test/test.voxceleb.txt" "${user_trials[@]}")
kaldi_trials=()
for t in "${voxceleb_lists[@]}"; do
  name=$(basename "$t"); name=${name%%.*}
  kaldi_trials+=("$data/test/trials/$name")
done

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  for x in train test; do need "$emb/$x/xvector.scp" 4; done
  need "$data/test/test.voxceleb.txt" 0
  i=0
  for t in "${voxceleb_lists[@]}"; do
    local/convert_trials.py "$corpus" "$data/test" "$t" "${kaldi_trials[$i]}"
    i=$((i + 1))
  done
  steps/score_cosine.sh --cmd "$train_cmd" --allow-partial "$allow_partial" "$data/train" "$emb/train" "$emb/test" "$scores" "${kaldi_trials[@]}"
  steps/score_norm.sh --cmd "$train_cmd" --allow-partial "$allow_partial" --backend cosine --method asnorm --top-n 50 \
    "$data/train" "$emb/train" "$emb/test" "$scores" "${kaldi_trials[@]}"
  # QMF calibration of the AS-norm scores (trained on trials among the training speakers)
  # and the calibrated decision thresholds beside them.
  steps/score_qmf.sh --cmd "$train_cmd" --top-n 50 \
    "$data/train" "$emb/train" "$data/test" "$emb/test" "$scores" "${kaldi_trials[@]}"
  steps/score_plda.sh --cmd "$train_cmd" --allow-partial "$allow_partial" --lda-dim "$lda_dim" \
    "$data/train" "$emb/train" "$emb/test" "$scores" "${kaldi_trials[@]}"
  # The model's back-end for sid.Embedder and `sid.bin.verify --exp $model`: the calibrated one
  # (its threshold does not depend on the list: any list's file).
  cohort=$emb/train/spk_xvector.scp; [ -f "$cohort" ] || cohort=$scores/backend_cosine/spk_xvector.scp
  python -m sid.bin.record_backend --cohort "$cohort" \
    --threshold-file "$scores/$(basename "${kaldi_trials[0]}").cosine_asnorm_qmf.threshold" "$model" "$scores/backend_cosine"
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  for t in "${kaldi_trials[@]}"; do need "$scores/$(basename "$t").cosine.score" 5; done
  if [ -n "$pretrained" ]; then
    # Beside the trained model's: its rows and DET/histogram plots only (the maps are the trained model's).
    steps/compute_metrics.sh --allow-partial "$allow_partial" "${metrics_opts[@]}" "$scores" "$exp" "${kaldi_trials[@]}"
  else
    steps/compute_metrics.sh --allow-partial "$allow_partial" --tsne-emb-dir "$emb/test" --tsne-utt2spk "$data/test/utt2spk" \
      --umap true --similarity-speakers 10 --similarity-utts 10 \
      "$scores" "$exp" "${kaldi_trials[@]}"
  fi
  echo "$0: results in $exp/results.json, plots in $exp/*.png"
fi
exit
}
