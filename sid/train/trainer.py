"""The resumable training loop (``steps/train_xvector.sh`` runs it through
``python -m sid.bin.train_xvector``, one process per GPU under torchrun).

Exp dir layout::

    config.yaml     the training config in full, with what training recorded: num_classes, the
                    training data's features (type, config, checksum, cmvn_opts; read by
                    extraction) and which utterances it read (checked on resume)
    spk2id          speaker -> class index
    models/         last.pt (newest full state), epoch_<N>.pt (weights after epoch N), init.pt
                    (with --init-model: the weights it gave, for training.l2sp, distill and
                    interpolate_init)
    final.pt        mean of the last ``num_avg`` epoch weights (with training.interpolate_init a < 1:
                    (1 - a) x init.pt's weights + a x that mean)
    training.json   what the training did (written with final.pt; read by sid.bin.results_table):
                    the model's parameters, steps, the first step's loss, each epoch's mean loss,
                    and the CPU seconds of rank 0's processes from their start (imports, data
                    loading and loader workers included), summed over resumes to the last checkpoint,
                    and the commit of the code that finished it (``+changes``: with local edits)
    log/train.log   Kaldi-style log (rank 0); tensorboard/ scalars

Resuming: every checkpoint holds the model, head, optimiser, LR scheduler, grad
scaler, epoch, the number of this rank's batches done in the epoch, the step and the
RNG states. Because the epoch's chunks are a pure function of (seed, epoch) (see
``sid.train.data``), restarting from a checkpoint replays exactly the remaining
batches, so a run killed at any point and rerun ends with the weights of an
uninterrupted one (bit-exact on CPU with the same thread count).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import logging
import json
import math
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from sid.cli import progress
from sid.config import DataConfig, FeaturesRecord, OptimConfig, TrainConfig, TrainDataRecord, load_config
from sid.data.table import atomic_path, read_dict, write_table
from sid.errors import SidError
from sid.kaldi_io import ScpTable
from sid.losses import METRIC_LOSSES, MarginScheduler, build_head
from sid.models import build_model, count_parameters
from sid.provenance import code_commit, training_record
from sid.train import checkpoint
from sid.train.data import (Batch, ChunkDataset, ShardSampler, TrainingSet, derive_seed, plan_epoch,
                            plan_epoch_balanced, read_training_set, split_validation, worker_init)
from sid.train.schedule import LRSchedule
from sid.train.specaug import SpecAugment
from sid.train.validate import chunk_loss_acc, equal_error_rate, read_trials

log = logging.getLogger("sid.train")


@dataclass
class TrainOptions:
    seed: int = 777
    num_workers: int = 4
    device: str = "auto"            # auto | cpu | cuda
    precision: str = "auto"         # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    checkpoint_minutes: float = 10.0
    checkpoint_steps: int = 0
    valid_interval: int = 1
    valid_utts: int = 0
    valid_data: str = ""
    valid_trials: str = ""
    log_interval: int = 20
    tensorboard: bool = True
    write_chunk_lists: bool = False
    progress: bool = True
    # Audio source (data.source: audio): the fbank config and the augmentation sources.
    fbank_config: str = ""
    rir_list: str = ""
    noise_dir: str = ""
    music_dir: str = ""
    babble_dir: str = ""
    # Start from this exp's model (an exp dir, or a checkpoint in one): its head too when it was
    # trained on the same speakers (large-margin fine-tuning), else a new head (a new domain).
    init_model: str = ""
    num_threads: int = 0


class _Net(nn.Module):
    """Model and loss head as one module, so DDP synchronises both."""

    def __init__(self, model, head):
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, feats, labels, teacher=None):
        """The head's output; with a ``teacher`` (training.distill), that and the mean of
        ``1 - cos`` between each chunk's embedding and the teacher's."""
        emb = self.model(feats)
        out = self.head(emb, labels)
        if teacher is None:
            return out
        with torch.no_grad():
            ref = teacher(feats)
        return out, distill_term(emb, ref)


def distill_term(emb: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Embedding distillation: ``mean(1 - cos(emb, ref))`` over the batch, in fp32."""
    return (1.0 - nn.functional.cosine_similarity(emb.float(), ref.float(), dim=-1)).mean()


def l2sp_penalty(anchor: list[tuple[nn.Parameter, torch.Tensor]], alpha: float) -> torch.Tensor:
    """L2-SP: ``alpha/2 * sum ||theta - theta_0||^2`` over the (parameter, initial value) pairs that
    train now (its gradient is ``alpha * (theta - theta_0)``)."""
    terms = [(p - p0).square().sum() for p, p0 in anchor if p.requires_grad]
    return 0.5 * alpha * torch.stack(terms).sum() if terms else torch.zeros(())


def _cpu_seconds() -> float:
    """User + system CPU of this process since it started and of its finished children (the
    data loader's workers, which end with each epoch)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                   resource.getrusage(resource.RUSAGE_CHILDREN)))


def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


CONFIG_HEADER = """The config this model was trained with (sid.config), read back by extraction.
features: how the training features were made. source features: for new audio,
steps/make_<features.type>.sh with a config file holding features.config (--compress as
features.compress), energy VAD by steps/compute_vad_decision.sh with a config holding
features.vad.config, decided on features made likewise from features.vad.features_type and
features_config (run.sh's fbank: MFCCs beside them); then steps/extract_embeddings.sh applies the
sliding CMN of features.cmvn_opts, keeps the voiced frames, and refuses features or VAD whose
<data>/.feats_done or .vad_done differ from the record. source audio: steps/extract_embeddings.sh computes the fbank of
features.config from the data dir's audio and subtracts each utterance's mean (nothing where
features.cmvn_opts is none; no VAD)."""


def _train_data_record(data: TrainingSet) -> TrainDataRecord:
    id2spk = {i: s for s, i in data.spk2id.items()}
    lines = "".join(f"{u} {id2spk[int(label)]}\n" for u, label in zip(data.utts, data.labels))
    return TrainDataRecord(len(data.utts), len(set(data.labels.tolist())), hashlib.md5(lines.encode()).hexdigest())


def _add_file_log(path: Path) -> logging.Handler:
    from sid.cli import KaldiFormatter

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(KaldiFormatter())
    logging.getLogger().addHandler(handler)
    return handler


def _build_optimizer(params, cfg: OptimConfig):
    if cfg.type == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.type == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.type == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise SidError(f"optimizer '{cfg.type}' has no implementation")


def _valid_batches(valid: TrainingSet, seed: int, batch_size: int, length: int) -> list[Batch]:
    rng = np.random.default_rng(derive_seed(seed, 0xFA11D))
    out = []
    for i in range(0, len(valid.utts), batch_size):
        sel = np.arange(i, min(i + batch_size, len(valid.utts)))
        room = np.maximum(valid.lengths[sel] - length, 0)
        out.append(Batch(length, sel, np.floor(rng.random(len(sel)) * (room + 1)).astype(np.int64)))
    return out


class Trainer:
    def __init__(self, data_dir: str, exp_dir: str, cfg: TrainConfig, opts: TrainOptions):
        self.opts = opts
        self.exp = Path(exp_dir)
        self.models_dir = self.exp / "models"
        self.rank, self.world, local_rank = _dist_env()
        self.is_main = self.rank == 0
        want_cuda = opts.device == "cuda" or (opts.device == "auto" and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise SidError("--device=cuda but no CUDA device is available")
        self.device = torch.device(f"cuda:{local_rank}" if want_cuda else "cpu")
        if want_cuda:
            torch.cuda.set_device(self.device)
            # Chunk lengths repeat, so cuDNN's autotuned kernels pay off; TF32 for fp32 matmuls.
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if want_cuda else "gloo")
        precision = opts.precision if opts.precision != "auto" else ("bf16" if want_cuda else "fp32")
        if precision not in ("fp32", "bf16", "fp16"):
            raise SidError(f"--precision must be auto, fp32, bf16 or fp16, got '{precision}'")
        self.precision = precision
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if self.is_main:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            self._log_handler = _add_file_log(self.exp / "log" / "train.log")
            if log.getEffectiveLevel() > logging.INFO:
                log.setLevel(logging.INFO)   # train.log gets the progress even when the caller set no logging
        self.cfg = self._settle_config(cfg, data_dir)

    # -- set-up -----------------------------------------------------------------------------------------
    def _settle_config(self, cfg: TrainConfig, data_dir: str) -> TrainConfig:
        saved_cfg = self.exp / "config.yaml"
        spk2id_path = self.exp / "spk2id"
        spk2id = None
        if spk2id_path.exists():
            spk2id = {k: int(v) for k, v in read_dict(spk2id_path).items()}
        self.source = cfg.data.source
        self.frontend = None
        if self.source == "audio":
            from sid.train import audio

            cmvn_opts = self._audio_cmvn_opts()
            cmn = cmvn_opts != "none"
            if cfg.frontend is not None:
                # The config's own front-end (d-vector, ResNetSE34, GRU, ConvGRU): its one home.
                if self.opts.fbank_config:
                    raise SidError(f"--fbank-config {self.opts.fbank_config}: the config's 'frontend' section "
                                   f"({cfg.frontend.type}) says what the model reads from audio; drop the option")
                self.frontend = audio.ModelFrontend(cfg.frontend, cmn)
                where = f"the config's frontend ({cfg.frontend.type}) gives"
            elif not self.opts.fbank_config:
                raise SidError("data.source 'audio' needs --fbank-config (e.g. conf/fbank80.conf, the features "
                               "extraction computes), or a 'frontend' section in the config")
            else:
                self.frontend = audio.FbankFrontend(audio.fbank_options(self.opts.fbank_config), cmn)
                where = f"--fbank-config {self.opts.fbank_config} gives"
            if cfg.data.fbank_on == "device" and cfg.frontend is not None:
                raise SidError("data.fbank_on: device computes the fbank of --fbank-config; a config with a "
                               "'frontend' section computes its front-end in the workers (fbank_on: worker)")
            data = audio.read_audio_training_set(data_dir, self.frontend.frame_opts, spk2id)
            dim = self.frontend.dim
            classes = audio.num_classes(len(data.spk2id), cfg.data.speed_perturb)
        else:
            if cfg.data.fbank_on == "device":
                raise SidError("data.fbank_on: device needs data.source: audio (features are read as they are)")
            if cfg.data.aug_prob > 0 or cfg.data.speed_perturb != "none":
                # (else the chunks would silently go unaugmented)
                raise SidError("data.aug_prob and data.speed_perturb augment chunks of audio (data.source: audio); "
                               "features are read as they are: augment the data dir before its features instead "
                               "(sid.bin.perturb_data_dir_speed, augment_data_dir, reverberate_data_dir)")
            cmvn_opts = None
            data = read_training_set(data_dir, spk2id)
            dim = self._feat_dim(data)
            where = f"{data_dir}/feats.scp has"
            classes = len(data.spk2id)
        if "feat_dim" in cfg.model.args and cfg.model.args["feat_dim"] != dim:
            raise SidError(f"{where} {dim}-dim features but the config's model.feat_dim is {cfg.model.args['feat_dim']}")
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, args={**cfg.model.args, "feat_dim": dim}),
                                  num_classes=classes,
                                  features=self._features_record(data_dir, cfg.frontend, cmvn_opts),
                                  train_data=_train_data_record(data))
        self.spk2id = data.spk2id
        if self.opts.init_model:
            self._check_init_features(cfg.features, data_dir)
        if saved_cfg.exists():
            changed = load_config(saved_cfg, recorded=True).differences(cfg)
            if changed:
                raise SidError(f"{self.exp} was started with other settings or data ({saved_cfg}); now: "
                               + "; ".join(changed) + ". Use a new exp dir, or remove this one to start over")
        self.train_set, self.valid_set = split_validation(data, self.opts.valid_utts, self.opts.seed)
        if self.is_main:
            if spk2id is None:
                write_table(spk2id_path, [(s, str(i)) for s, i in data.spk2id.items()])
            if not saved_cfg.exists():
                cfg.dump(saved_cfg, CONFIG_HEADER)
        return cfg

    @functools.cached_property
    def _init_features(self) -> tuple[FeaturesRecord | None, Path]:
        """The features record of the ``--init-model`` exp, and its config.yaml (read once)."""
        _, src = checkpoint.init_source(self.opts.init_model)
        return load_config(src / "config.yaml", recorded=True).features, src / "config.yaml"

    def _audio_cmvn_opts(self) -> str:
        """What training from audio subtracts from a chunk's features, as its record will say and
        extraction will do: the model fine-tuned's own (features.cmvn_opts of an exp trained or
        imported from audio; none: an import that normalises by itself), else each chunk's mean ("")."""
        if self.opts.init_model:
            theirs, _ = self._init_features
            if theirs is not None and theirs.source == "audio":
                return theirs.cmvn_opts
        return ""

    def _check_init_features(self, record: FeaturesRecord, data_dir: str) -> None:
        """Fine-tuning reads the features the source model was trained on (or imported with)."""
        theirs, where = self._init_features
        if theirs is None:
            return
        for key in ("type", "checksum", "cmvn_opts", "source"):
            if getattr(theirs, key) != getattr(record, key):
                raise SidError(f"{data_dir}'s features differ from those of the model to fine-tune "
                               f"({where}): features.{key} is {getattr(record, key)!r} here, "
                               f"{getattr(theirs, key)!r} there; make the training features with that exp's "
                               "features.config")

    def _features_record(self, data_dir: str, frontend, cmvn_opts: str | None) -> FeaturesRecord:
        """From audio, the fbank config given (or the config's front-end), no sliding CMN and no
        VAD: extraction computes them from the test audio and subtracts each utterance's mean
        (per-chunk means in training), or nothing (``cmvn_opts`` none)."""
        if self.frontend is None:
            return training_record(data_dir)
        from sid.provenance import frontend_record_text, options_md5

        if frontend is not None:
            # What steps/make_frontend_feats.sh records for the same front-end.
            feat_type, text = "frontend", frontend_record_text(frontend)
        else:
            feat_type, text = "fbank", Path(self.opts.fbank_config).read_text(encoding="utf-8")
        return FeaturesRecord(feat_type, text, options_md5(text), cmvn_opts, source="audio")

    def _dataset(self, data: TrainingSet, data_cfg: DataConfig, train: bool) -> ChunkDataset:
        """The chunk dataset of the configured source; held-out chunks get no augmentation."""
        specaug = SpecAugment.from_config(data_cfg.specaug) if train else None
        if self.source == "features":
            return ChunkDataset(data, self.opts.seed, specaug)
        from sid.train import audio

        opts = self.opts
        aug_prob = data_cfg.aug_prob if train else 0.0
        augmenter = None
        if aug_prob > 0:
            noise_dirs = {"noise": opts.noise_dir, "music": opts.music_dir, "babble": opts.babble_dir}
            augmenter = audio.Augmenter.from_config(int(self.frontend.frame_opts.samp_freq), data_cfg,
                                                    [p for p in opts.rir_list.split(",") if p], noise_dirs)
        speed = data_cfg.speed_perturb if train else "none"
        frontend = self.frontend
        if data_cfg.fbank_on == "device":
            # The workers deliver raw chunks; _batch_features finishes them on the device.
            frontend = audio.BatchFbankFrontend(self.frontend.fbank.opts, opts.seed, specaug, self.frontend.cmn)
            specaug = None
        return audio.AudioChunkDataset(data, opts.seed, frontend, specaug, augmenter, aug_prob, speed)

    def _batch_features(self, dataset: ChunkDataset, x: torch.Tensor, b: int) -> torch.Tensor:
        """Batch ``b`` of ``dataset`` as the model reads it, on the device (with data.fbank_on:
        device, the fbank of the raw chunks the workers delivered)."""
        x = x.to(self.device, non_blocking=True)
        if self.cfg.data.fbank_on == "device":
            x = dataset.frontend.features(x, dataset.epoch, b)
        return x

    @staticmethod
    def _feat_dim(data: TrainingSet) -> int:
        return int(ChunkDataset(data, 0).reader[data.utts[0]].shape[1])

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- main loop --------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        finally:
            if self.is_main:
                logging.getLogger().removeHandler(self._log_handler)
                self._log_handler.close()

    def _run(self) -> None:
        cfg, opts = self.cfg, self.opts
        if opts.num_threads > 0:
            torch.set_num_threads(opts.num_threads)
        final, last = self.exp / "final.pt", self.models_dir / "last.pt"
        if final.exists() and last.exists() and final.stat().st_mtime >= last.stat().st_mtime:
            # A finished training reruns as a no-op (nothing rewritten, no new TensorBoard run).
            log.info("%s is already complete; nothing to do", final)
            return
        data_cfg, optim_cfg = cfg.data, cfg.optim
        epochs = cfg.training.epochs
        min_frames, max_frames = data_cfg.min_frames, data_cfg.max_frames
        if data_cfg.sampler == "speaker_balanced":
            n_spk, m_utt = data_cfg.speakers_per_batch, data_cfg.utts_per_speaker
            if n_spk < 2 or m_utt < 1:
                raise SidError("data.sampler: speaker_balanced needs speakers_per_batch >= 2 and utts_per_speaker >= 1")
            batch_size = n_spk * m_utt

            def plan(ep: int) -> list[Batch]:
                return plan_epoch_balanced(self.train_set, opts.seed, ep, n_spk, m_utt, min_frames, max_frames,
                                           self.world)
        else:
            batch_size, m_utt = data_cfg.batch_size, 0

            def plan(ep: int) -> list[Batch]:
                return plan_epoch(self.train_set, opts.seed, ep, batch_size, min_frames, max_frames,
                                  data_cfg.chunks_per_utt, self.world, data_cfg.shuffle_buffer)
        if cfg.loss.type in METRIC_LOSSES and opts.valid_utts > 0:
            raise SidError(f"--valid-utts measures a classification loss; with loss '{cfg.loss.type}' "
                           "validate with --valid-trials and --valid-data instead")
        torch.manual_seed(opts.seed)
        model = build_model(cfg.model)
        if min_frames < model.min_frames or max_frames < min_frames:
            raise SidError(f"data.min_frames/max_frames ({min_frames}/{max_frames}) must satisfy "
                           f"{model.min_frames} <= min_frames <= max_frames for this model")
        head = build_head(cfg.loss, model.output_dim, cfg.num_classes, m_utt)
        net = _Net(model, head).to(self.device)
        frozen_params, frozen_modules = self._frozen(model)
        optimizer = _build_optimizer(net.parameters(), optim_cfg)
        steps_per_epoch = self._steps_per_epoch(len(plan(0)), batch_size)
        total = steps_per_epoch * epochs
        warmup = int(round(optim_cfg.warmup_epochs * steps_per_epoch))
        lr_fn = LRSchedule(optim_cfg.lr, total, warmup, optim_cfg.decay, optim_cfg.final_lr, optim_cfg.warmup_start_lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_fn(s) / lr_fn.lr)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        margin_fn = MarginScheduler.from_config(cfg.loss)
        grad_clip = optim_cfg.grad_clip

        epoch, pos, step = 0, 0, 0
        # For training.json: what earlier runs of this training spent and saw.
        cpu_before, first_loss, epoch_losses = 0.0, None, []
        resumed_sums = None   # the epoch's loss and accuracy sums before a mid-epoch checkpoint
        last = self.models_dir / "last.pt"
        if last.exists():
            state = checkpoint.load(last)
            net.model.load_state_dict(state["model"])
            net.head.load_state_dict(state["head"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            epoch, step = int(state["epoch"]), int(state["step"])
            cpu_before, first_loss = float(state.get("cpu_seconds", 0.0)), state.get("first_loss")
            epoch_losses = list(state.get("epoch_losses", []))
            pos = self._map_position(int(state["position"]), int(state.get("world_size", 1)))
            # Sums over this rank's batches: they hold where the position does (the same world size).
            if pos and int(state.get("world_size", 1)) == self.world:
                resumed_sums = state.get("epoch_sums")
            checkpoint.set_rng_state(state["rng"])
            log.info("Resuming from %s: epoch %d, batch %d of the epoch, step %d", last, epoch + 1, pos, step)
        else:
            if opts.init_model:
                self._load_init_model(net, opts.init_model)
        init = self._init_weights(net, resumed=last.exists())
        # L2-SP's pairs (parameter, its initial value); buffers (batch-norm statistics) are not pulled.
        params = dict(net.named_parameters())
        anchor = [(params[n], v.to(self.device)) for n, v in init.items() if n in params] if cfg.training.l2sp else []
        teacher = self._teacher(model, init) if cfg.training.distill else None
        if not last.exists() and self.is_main:
            log.info("Model %s: %d parameters (%d with the %d-class %s head)", cfg.model.type,
                     count_parameters(model), count_parameters(net), cfg.num_classes, cfg.loss.type)
            log.info("%d training utterances of %d speakers, %d held out; %d steps per epoch (batch %d, %d rank(s)), "
                     "device %s, precision %s", len(self.train_set.utts), cfg.num_classes,
                     0 if self.valid_set is None else len(self.valid_set.utts), steps_per_epoch, batch_size,
                     self.world, self.device, self.precision)

        ddp = net
        if self.world > 1:
            ddp = nn.parallel.DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        writer = None
        if self.is_main and opts.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(self.exp / "tensorboard"), purge_step=step)

        dataset = self._dataset(self.train_set, data_cfg, train=True)
        last_save = time.monotonic()

        def save(epoch_: int, pos_: int) -> None:
            nonlocal last_save
            if self.is_main:
                checkpoint.save_atomic({
                    "model": net.model.state_dict(), "head": net.head.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "epoch": epoch_, "position": pos_, "step": step,
                    "world_size": self.world, "rng": checkpoint.rng_state(),
                    "cpu_seconds": cpu_before + _cpu_seconds(), "first_loss": first_loss,
                    "epoch_losses": epoch_losses,
                    "epoch_sums": [tot_loss, tot_acc, n_batches] if pos_ else None}, last)
                log.info("Saved checkpoint %s (epoch %d, batch %d, step %d)", last, epoch_ + 1, pos_, step)
            last_save = time.monotonic()

        while epoch < epochs:
            batches = plan(epoch)
            dataset.set_plan(epoch, batches)
            if opts.write_chunk_lists:
                self._write_chunk_list(epoch, batches, dataset)
            sampler = ShardSampler(len(batches), self.rank, self.world, start=pos)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=None, sampler=sampler, num_workers=opts.num_workers,
                pin_memory=self.device.type == "cuda", worker_init_fn=worker_init if opts.num_workers else None,
                prefetch_factor=4 if opts.num_workers else None)
            net.train()
            freezing = epoch < cfg.training.freeze_epochs and bool(frozen_params)
            for m in frozen_modules if freezing else ():
                m.eval()   # fixed batch-norm statistics too
            if self.world == 1:
                # No gradients through what is fixed (DDP needs its parameter set fixed: there the
                # gradients are computed and dropped below).
                for p in frozen_params:
                    p.requires_grad_(not freezing)
            if self.is_main and frozen_params and epoch == cfg.training.freeze_epochs and pos == 0 and epoch > 0:
                log.info("Epoch %d: %s trained from now on", epoch + 1, ", ".join(cfg.training.freeze))
            bar = progress(loader, total=steps_per_epoch, initial=pos, desc=f"epoch {epoch + 1}/{epochs}",
                           unit="step", disable=not (self.is_main and opts.progress))
            tot_loss, tot_acc, n_batches, n_chunks, n_frames = 0.0, 0.0, 0, 0, 0
            if resumed_sums:
                # The epoch's mean loss and accuracy include its batches before the resume.
                tot_loss, tot_acc, n_batches = resumed_sums
                resumed_sums = None
            t0 = time.monotonic()
            for feats, labels, b in bar:
                if margin_fn is not None:
                    net.head.margin = margin_fn(epoch + pos / steps_per_epoch)
                feats = self._batch_features(dataset, feats, b)
                labels = labels.to(self.device, non_blocking=True)
                with self._autocast():
                    if teacher is None:
                        loss, logits, *targets = ddp(feats, labels)
                    else:
                        (loss, logits, *targets), distill = ddp(feats, labels, teacher)
                optimizer.zero_grad(set_to_none=True)
                # The logged loss is the task's alone; L2-SP's pull and distillation go into the gradients.
                total = loss + l2sp_penalty(anchor, cfg.training.l2sp) if anchor else loss
                if teacher is not None:
                    total = total + cfg.training.distill * distill
                scaler.scale(total).backward()
                if freezing:
                    for p in frozen_params:
                        p.grad = None   # the optimiser skips these: no step, momentum or weight decay
                if grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                pos += 1
                loss_v = float(loss.detach())
                if step == 1:
                    first_loss = loss_v
                    if self.is_main:
                        log.info("Loss at step 0: %.6f (margin %.3f)", loss_v, float(net.head.margin))
                if not math.isfinite(loss_v):
                    raise SidError(f"loss is {loss_v} at step {step} (epoch {epoch + 1}); lower optim.lr or set "
                                   "optim.grad_clip, then resume (the last checkpoint is kept)")
                # Metric losses score the batch's own speakers: their targets come with the logits.
                acc_v = float((logits.detach().argmax(-1) == (targets[0] if targets else labels)).float().mean())
                tot_loss += loss_v
                tot_acc += acc_v
                n_batches += 1
                n_chunks += len(labels)
                n_frames += feats.shape[0] * feats.shape[1]
                rate = n_chunks / max(time.monotonic() - t0, 1e-9)
                bar.set_postfix(loss=f"{tot_loss / n_batches:.3f}", acc=f"{tot_acc / n_batches:.3f}",
                                chunks_per_s=f"{rate * self.world:.1f}", refresh=False)
                if writer is not None and step % opts.log_interval == 0:
                    writer.add_scalar("train/loss", loss_v, step)
                    writer.add_scalar("train/accuracy", acc_v, step)
                    writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
                    writer.add_scalar("train/margin", float(net.head.margin), step)
                    writer.add_scalar("train/frames_per_second",
                                      n_frames * self.world / max(time.monotonic() - t0, 1e-9), step)
                if (opts.checkpoint_steps and step % opts.checkpoint_steps == 0) or \
                        (opts.checkpoint_minutes > 0 and time.monotonic() - last_save >= 60 * opts.checkpoint_minutes):
                    save(epoch, pos)
            bar.close()
            epoch += 1
            pos = 0
            epoch_losses.append(tot_loss / max(n_batches, 1))
            if self.is_main:
                log.info("Epoch %d: loss %.4f, accuracy %.4f, %.1f chunks/s, lr %.3g%s", epoch,
                         tot_loss / max(n_batches, 1), tot_acc / max(n_batches, 1),
                         n_chunks * self.world / max(time.monotonic() - t0, 1e-9), optimizer.param_groups[0]["lr"],
                         "" if margin_fn is None else f", margin {net.head.margin:.3f}")
                checkpoint.save_atomic({"model": net.model.state_dict(), "head": net.head.state_dict(),
                                        "epoch": epoch, "step": step}, self.models_dir / f"epoch_{epoch}.pt")
            save(epoch, 0)
            if opts.valid_interval > 0 and epoch % opts.valid_interval == 0:
                self._validate(net, epoch, step, writer, batch_size, max_frames)
        if writer is not None:
            writer.close()
        if self.is_main:
            self._finish(epochs, cfg.training.num_avg, {
                "parameters": count_parameters(model), "loss": cfg.loss.type, "batch_size": batch_size,
                "steps": step, "first_loss": first_loss, "epoch_losses": epoch_losses,
                "cpu_seconds": round(cpu_before + _cpu_seconds(), 2), "num_threads": torch.get_num_threads(),
                "world_size": self.world, "commit": code_commit()}, init)
        if self.world > 1:
            dist.barrier()

    def _frozen(self, model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Module]]:
        """The parameters and modules of ``training.freeze`` (prefixes of parameter names)."""
        prefixes = self.cfg.training.freeze
        if prefixes and self.cfg.training.freeze_epochs == 0:
            raise SidError(f"training.freeze ({', '.join(prefixes)}) needs training.freeze_epochs (--freeze-epochs) "
                           "> 0: the number of epochs they stay fixed")

        def under(name: str, among=prefixes) -> bool:
            return any(name == p or name.startswith(p + ".") for p in among)
        names = [n for n, _ in model.named_parameters()]
        for p in prefixes:
            if not any(under(n, [p]) for n in names):
                blocks = sorted({n.split(".")[0] for n in names})
                raise SidError(f"training.freeze: '{p}' names no parameters of model {self.cfg.model.type}; "
                               f"its blocks: {', '.join(blocks)} (a prefix of the parameter names, e.g. "
                               f"'{names[0].rsplit('.', 1)[0]}')")
        params = [p for n, p in model.named_parameters() if under(n)]
        if self.is_main and params and not (self.models_dir / "last.pt").exists():
            log.info("%s fixed for the first %d epoch(s): %d of %d parameters", ", ".join(prefixes),
                     self.cfg.training.freeze_epochs, sum(p.numel() for p in params), count_parameters(model))
        return params, [m for n, m in model.named_modules() if n and under(n)]

    def _load_init_model(self, net: "_Net", path: str) -> None:
        """Start from another exp's model; its head too where it was trained on the same speakers
        (large-margin fine-tuning), else the new head stays (fine-tuning on other speakers)."""
        ckpt, src = checkpoint.init_source(path)
        state = checkpoint.load(ckpt)
        if "model" not in state:
            raise SidError(f"{ckpt} has no 'model' weights (expected final.pt or epoch_<N>.pt of an exp dir)")
        checkpoint.load_weights(net.model, state["model"], str(ckpt))
        same_speakers = (src / "spk2id").exists() and \
            {k: int(v) for k, v in read_dict(src / "spk2id").items()} == self.spk2id
        self._head_from_init = same_speakers and "head" in state
        if self._head_from_init:
            checkpoint.load_weights(net.head, state["head"], str(ckpt), "head")
            what = "model and head"
        else:
            size = "" if self.cfg.loss.type in METRIC_LOSSES else f"{self.cfg.num_classes}-class "
            what = (f"model (new {size}{self.cfg.loss.type} head: "
                    f"{'no head in it' if 'head' not in state else 'other speakers'})")
        if self.is_main:
            log.info("Initialised %s from %s", what, ckpt)

    def _init_weights(self, net: "_Net", resumed: bool) -> dict[str, torch.Tensor]:
        """The weights --init-model gave (``model.*``, and ``head.*`` where its head was kept), which
        ``training.l2sp`` pulls towards and ``training.interpolate_init`` mixes into final.pt. A fresh
        start writes them to ``models/init.pt``; a resumed training reads them back from there
        (--init-model is not read again), so both use the same weights. Empty without --init-model."""
        cfg = self.cfg.training
        path = self.models_dir / "init.pt"
        if resumed:
            if not path.exists():
                if cfg.l2sp == 0 and cfg.distill == 0 and cfg.interpolate_init == 1:
                    return {}   # none needed (and none kept by a training started before init.pt was)
                raise SidError(f"{path} is missing: it holds the --init-model weights that training.l2sp, "
                               f"distill and interpolate_init use. Remove {self.exp} to start over")
            init = checkpoint.load(path)["init"]
            own = net.state_dict()
            for k, v in init.items():
                if k not in own or tuple(own[k].shape) != tuple(v.shape):
                    needs = "has no such weight" if k not in own else f"needs {list(own[k].shape)}"
                    raise SidError(f"{path}: weight '{k}' {list(v.shape)} is not of this model (it {needs}): "
                                   f"the file is of another architecture. Remove {self.exp} to start over")
            return init
        if not self.opts.init_model:
            for key, value, off in (("l2sp", cfg.l2sp, 0.0), ("distill", cfg.distill, 0.0),
                                    ("interpolate_init", cfg.interpolate_init, 1.0)):
                if value != off:
                    raise SidError(f"training.{key} ({value}) needs the weights of --init-model: give --init-model "
                                   f"<exp>, or set training.{key} to {off:g}")
            return {}
        prefixes = ("model.",) + (("head.",) if self._head_from_init else ())
        init = {n: v.detach().cpu().clone() for n, v in net.state_dict().items() if n.startswith(prefixes)}
        if self.is_main:
            checkpoint.save_atomic({"init": init}, path)
            log.info("Kept the %d weights of %s in %s (L2-SP alpha %g, distillation %g, final.pt interpolated at %g)",
                     sum(v.numel() for v in init.values()), self.opts.init_model, path, cfg.l2sp, cfg.distill,
                     cfg.interpolate_init)
        return init

    def _teacher(self, model: nn.Module, init: dict[str, torch.Tensor]) -> nn.Module:
        """training.distill's reference: a frozen copy of the model with the --init-model weights
        (from init.pt on a resume, so it is the same network either way), in eval mode."""
        teacher = copy.deepcopy(model)
        teacher.load_state_dict({n[len("model."):]: v for n, v in init.items() if n.startswith("model.")})
        teacher.requires_grad_(False)
        return teacher.eval()

    def _steps_per_epoch(self, num_batches: int, batch_size: int) -> int:
        """Steps of each rank: the plan's batch count (the same every epoch) over the ranks."""
        if num_batches == 0:
            raise SidError(f"{len(self.train_set.utts)} training utterances make no full batch of {batch_size} "
                           f"on each of {self.world} rank(s): lower data.batch_size (or speakers_per_batch, "
                           "utts_per_speaker)")
        return num_batches // self.world

    def _map_position(self, position: int, old_world: int) -> int:
        """Batches of this rank already done, from a checkpoint written with another world size."""
        if old_world == self.world:
            return position
        done = position * old_world
        log.warning("checkpoint was written by %d rank(s), now %d: resuming at global batch %d", old_world, self.world, done)
        return max(0, -(-(done - self.rank) // self.world))

    def _write_chunk_list(self, epoch: int, batches: list[Batch], dataset: ChunkDataset) -> None:
        """``<batch>-<pos> <utt> <start> <frames>`` per chunk, and from audio its speed and augmentation."""
        path = self.exp / "log" / "chunks" / f"epoch{epoch + 1}.rank{self.rank}.txt"
        from sid.data.table import atomic_path
        draw = getattr(dataset, "draw", None)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for b in range(self.rank, len(batches), self.world):
                batch = batches[b]
                for j, (i, s) in enumerate(zip(batch.utt_index, batch.start)):
                    extra = ""
                    if draw is not None:
                        from sid.train.audio import SPEED_FACTORS

                        choice = draw(b, j, 0)
                        extra = f" speed={SPEED_FACTORS[choice.speed]:g} aug={choice.aug['kind'] if choice.aug else 'none'}"
                    f.write(f"{b}-{j} {self.train_set.utts[i]} {s} {batch.length}{extra}\n")

    def _validate(self, net: _Net, epoch: int, step: int, writer, batch_size: int, length: int) -> None:
        if self.is_main and (self.valid_set is not None or self.opts.valid_trials):
            net.eval()
            msg = []
            if self.valid_set is not None:
                ds = self._dataset(self.valid_set, self.cfg.data, train=False)
                ds.set_plan(0, _valid_batches(self.valid_set, self.opts.seed, batch_size, length))
                batches = ((self._batch_features(ds, x, b), y) for x, y, b in (ds[i] for i in range(len(ds))))
                loss, acc = chunk_loss_acc(net.model, net.head, batches, self.device, self._autocast)
                msg.append(f"held-out loss {loss:.4f}, accuracy {acc:.4f}")
                if writer is not None:
                    writer.add_scalar("valid/loss", loss, step)
                    writer.add_scalar("valid/accuracy", acc, step)
            if self.opts.valid_trials:
                eer = self._trial_eer(net.model)
                msg.append(f"EER {eer:.2f}% on {self.opts.valid_trials}")
                if writer is not None:
                    writer.add_scalar("valid/eer", eer, step)
            log.info("Validation after epoch %d: %s", epoch, "; ".join(msg))
            net.train()
        if self.world > 1:
            dist.barrier()

    def _trial_eer(self, model) -> float:
        from sid.extract import embed_utterances

        if not self.opts.valid_data:
            raise SidError("--valid-trials needs --valid-data, a data dir with the trial utterances' "
                           "features prepared like the training data")
        trials = read_trials(self.opts.valid_trials)
        feats = read_dict(Path(self.opts.valid_data) / "feats.scp")
        utts = sorted({u for a, b, _ in trials for u in (a, b)})
        missing = [u for u in utts if u not in feats]
        if missing:
            raise SidError(f"{self.opts.valid_data}/feats.scp lacks trial utterance '{missing[0]}'")
        reader = ScpTable(feats)
        emb = dict(embed_utterances(model, ((u, reader[u]) for u in utts), self.device))
        norm = {u: e / max(np.linalg.norm(e), 1e-12) for u, e in emb.items()}
        scores = np.array([float(norm[a] @ norm[b]) for a, b, _ in trials])
        return equal_error_rate(scores, np.array([t for _, _, t in trials]))

    def _finish(self, epochs: int, num_avg: int, record: dict, init: dict[str, torch.Tensor]) -> None:
        final = self.exp / "final.pt"
        alpha = self.cfg.training.interpolate_init
        if alpha != 1:
            record["interpolate_init"] = alpha
        with atomic_path(self.exp / "training.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        chosen = list(range(max(1, epochs - num_avg + 1), epochs + 1))
        avg = checkpoint.average_epochs(self.models_dir, chosen)
        what = f"mean of the weights after epoch(s) {', '.join(map(str, chosen))}"
        if alpha != 1:
            avg = checkpoint.interpolate(init, avg, alpha, str(self.models_dir / "init.pt"))
            what = f"{1 - alpha:g} x the --init-model weights ({self.models_dir / 'init.pt'}) + {alpha:g} x the {what}"
        checkpoint.save_atomic(avg, final)
        log.info("Wrote %s: %s", final, what)
