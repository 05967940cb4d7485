#!/usr/bin/env bash
# Usage: steps/train_xvector.sh [options] <data-dir> <exp-dir>
#  e.g.: steps/train_xvector.sh --ngpu 4 --model-config conf/ecapa_c512.yaml data/train_no_sil exp/ecapa_c512
# Trains a speaker-embedding network on <data-dir> (feats.scp of sliding-CMN'd, voiced-only
# features from steps/prepare_feats_for_egs.sh, utt2spk, utt2num_frames; or, where the config
# says data: {source: audio}, wav.scp, utt2spk and utt2dur, with --fbank-config) into <exp-dir>
# ({config.yaml,spk2id,final.pt,models/,log/train.log,tensorboard/}). Rerunning the same command
# resumes from the newest checkpoint (<exp-dir>/models/last.pt); a finished run is a no-op.
# With --ngpu N > 1 it runs torchrun with N processes per node (one per GPU; on a machine
# without CUDA, N CPU processes with the gloo backend), each through sid.jobs.rank: every
# output line is prefixed [rank R], and a rank that dies says which rank on which node.
# Several nodes: submit it as one job spanning them, e.g.
#   $cuda_cmd --num-nodes 2 --gpu 8 exp/x/log/train_job.log steps/train_xvector.sh --ngpu 8 ...
# (slurm.pl / queue.pl --num-nodes start it once per node). It finds its place in the job
# (SLURM_STEP_NUM_TASKS / SLURM_PROCID / SLURM_STEP_NODELIST of srun, or SID_NUM_NODES /
# SID_NODE_RANK / SID_MASTER_ADDR set by queue.pl) and the nodes meet through torchrun's c10d
# rendezvous on the first node. By hand instead: the same command on every node with
# --nnodes, --node-rank and --master-addr.
#
# Options:
#   --model-config <yaml>    # model/training config (default: conf/xvector.yaml)
#   --ngpu <N>               # processes (GPUs) per node (default: 1: a plain python process)
#   --nnodes <N>             # number of nodes (default: 1)
#   --node-rank <r>          # this node's rank, 0..nnodes-1 (default: 0)
#   --master-addr <host>     # rank-0 node's address (default: 127.0.0.1)
#   --master-port <port>     # (default: 29500 + a number derived from <exp-dir>)
#   --num-workers <N>        # DataLoader workers per process (default: 4)
#   --seed <N>               # (default: 777)
#   --checkpoint-minutes <m> # checkpoint at least this often (default: 10)
#   --device <auto|cpu|cuda> # (default: auto)
#   --init-model <exp>       # fine-tune the model of this exp dir (trained here or imported; or a
#                            # checkpoint in one, e.g. <exp>/final.pt): its model, front-end and
#                            # extraction, the loss/data/optim/training of --model-config (which may
#                            # omit 'model'); its head when trained on the same speakers (large-margin
#                            # fine-tuning with conf/<model>_lm.yaml), else a new head for <data-dir>'s
#   --freeze <blocks>        # comma-separated model blocks (parameter-name prefixes, e.g. lstm or
#                            # frames.0,frames.1) kept fixed, batch norm included, for the first
#                            # --freeze-epochs epochs (default: the config's training.freeze)
#   --freeze-epochs <N>      # (default: the config's training.freeze_epochs)
#   --fbank-config <conf>    # audio source: the front-end's Kaldi fbank config (e.g. conf/fbank80.conf)
#   --rir-list <files>       # audio source: comma-separated rir_list files (augmentation 'reverb')
#   --noise-dir <dir> --music-dir <dir> --babble-dir <dir>  # audio source: MUSAN data dirs
#   --train-opts "<opts>"    # more options for sid.bin.train_xvector (e.g. "--valid-utts=500")

set -euo pipefail

model_config=conf/xvector.yaml
ngpu=1
nnodes=1
node_rank=0
master_addr=127.0.0.1
master_port=
num_workers=4
seed=777
checkpoint_minutes=10
device=auto
init_model=
freeze=
freeze_epochs=
fbank_config=
rir_list=
noise_dir=
music_dir=
babble_dir=
train_opts=

command_line="$0 $*"  # logged once the options are read (none on --help)
. parse_options.sh
echo "$command_line"

if [ $# -ne 2 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
data=$1
dir=$2

for f in "$model_config" "$data/utt2spk"; do
  [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
done
[ -f "$data/feats.scp" ] || [ -f "$data/wav.scp" ] || { echo "$0: $data has neither feats.scp nor wav.scp" >&2; exit 1; }
mkdir -p "$dir/log"

if [ -z "$master_port" ]; then
  # A port per exp dir, so two trainings on one machine do not collide.
  master_port=$(( 29500 + $(echo "$dir" | cksum | cut -d' ' -f1) % 1000 ))
fi

# shellcheck disable=SC2086
args=(--model-config="$model_config" --num-workers="$num_workers" --seed="$seed"
      --checkpoint-minutes="$checkpoint_minutes" --device="$device"
      ${init_model:+--init-model="$init_model"} ${freeze:+--freeze="$freeze"} ${freeze_epochs:+--freeze-epochs="$freeze_epochs"} ${fbank_config:+--fbank-config="$fbank_config"} ${rir_list:+--rir-list="$rir_list"}
      ${noise_dir:+--noise-dir="$noise_dir"} ${music_dir:+--music-dir="$music_dir"}
      ${babble_dir:+--babble-dir="$babble_dir"} $train_opts "$data" "$dir")

# Where this runs in a multi-node job: a rendezvous endpoint on the first node.
rdzv=()
if [ "${SLURM_STEP_NUM_TASKS:-1}" -gt 1 ]; then      # srun, one task per node (slurm.pl --num-nodes)
  nnodes=$SLURM_STEP_NUM_TASKS node_rank=$SLURM_PROCID
  master_addr=$(scontrol show hostnames "$SLURM_STEP_NODELIST" | head -n 1)
  rdzv=(--rdzv-id="slurm-$SLURM_JOB_ID")
elif [ "${SID_NUM_NODES:-1}" -gt 1 ]; then          # queue.pl --num-nodes (sid.jobs.nodes)
  nnodes=$SID_NUM_NODES node_rank=$SID_NODE_RANK master_addr=$SID_MASTER_ADDR
  rdzv=(--rdzv-id="sge-${JOB_ID:-$master_port}")
fi
if [ ${#rdzv[@]} -gt 0 ]; then
  echo "$0: node $node_rank of $nnodes on $(hostname), rendezvous at $master_addr:$master_port"
  # The first node hosts the rendezvous store (also when several "nodes" share a host).
  rdzv+=(--rdzv-backend=c10d --rdzv-endpoint="$master_addr:$master_port" --rdzv-conf=is_host=$([ "$node_rank" -eq 0 ] && echo 1 || echo 0))
else
  rdzv=(--node-rank="$node_rank" --master-addr="$master_addr" --master-port="$master_port")
fi

# One training per exp dir at a time: a second run waits (the first node holds the lock for all).
if [ "$node_rank" -eq 0 ]; then
  . lock_dirs.sh
  lock_dirs "$dir"
fi

if [ "$ngpu" -le 1 ] && [ "$nnodes" -le 1 ]; then
  python -m sid.bin.train_xvector "${args[@]}"
else
  # OMP threads per process: the cores divided among the local processes.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / ngpu > 0 ? $(nproc) / ngpu : 1 ))}
  torchrun --nnodes="$nnodes" --nproc-per-node="$ngpu" "${rdzv[@]}" \
    -m sid.jobs.rank python -m sid.bin.train_xvector "${args[@]}"
fi
echo "$0: trained $dir/final.pt"
