"""Train a speaker-embedding network on a data dir of prepared features.

One process per device: ``steps/train_xvector.sh`` starts it under torchrun for
several GPUs or nodes (rank, world size and master address come from torchrun's
environment). Rerunning the same command resumes from ``<exp-dir>/models/last.pt``.
"""

from sid.cli import KaldiOptions, run_main

USAGE = """Train an x-vector / ECAPA-TDNN / ResNet speaker-embedding network, resumably.
Usage:  train_xvector [options] <data-dir> <exp-dir>
 e.g.:  train_xvector --model-config=conf/ecapa_c512.yaml data/train_combined_no_sil exp/ecapa
<data-dir> holds feats.scp (sliding-CMN'd, voiced-only features, see steps/prepare_feats_for_egs.sh),
utt2spk and preferably utt2num_frames; with data.source 'audio' in the config, wav.scp (and segments),
utt2spk and utt2dur: chunks are read, augmented and turned into fbank in the DataLoader workers."""


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("model-config", "", "YAML config: model, loss, data, optim, training sections (required)")
    po.register("seed", 777, "Seed of chunk sampling, SpecAugment, initialisation and held-out selection")
    po.register("num-workers", 4, "DataLoader worker processes per rank")
    po.register("device", "auto", "auto (CUDA when present), cpu or cuda")
    po.register("precision", "auto", "auto (bf16 on GPU, fp32 on CPU), fp32, bf16 or fp16")
    po.register("checkpoint-minutes", 10.0, "Write a checkpoint at least this often (also at every epoch end)")
    po.register("checkpoint-steps", 0, "If > 0, also write a checkpoint every this many steps")
    po.register("valid-interval", 1, "Validate every this many epochs (0: never)")
    po.register("valid-utts", 0, "Hold out this many training utterances for validation loss/accuracy")
    po.register("valid-data", "", "Data dir with prepared features of the --valid-trials utterances")
    po.register("valid-trials", "", "Kaldi trials file (utt1 utt2 target|nontarget) for a validation EER")
    po.register("log-interval", 20, "TensorBoard scalars every this many steps")
    po.register("tensorboard", True, "Write TensorBoard scalars to <exp-dir>/tensorboard")
    po.register("write-chunk-lists", False, "Write each rank's chunks per epoch to <exp-dir>/log/chunks/ (audit)")
    po.register("progress", True, "Show a tqdm progress bar (rank 0)")
    po.register("fbank-config", "", "data.source audio: Kaldi fbank config of the front-end (e.g. conf/fbank80.conf)")
    po.register("rir-list", "", "data.source audio: comma-separated RIRS_NOISES rir_list files for 'reverb'")
    po.register("noise-dir", "", "data.source audio: MUSAN noise data dir (local/make_musan.py) for 'noise'")
    po.register("music-dir", "", "data.source audio: MUSAN music data dir for 'music'")
    po.register("init-model", "", "Start from this exp dir's model (<exp> or a checkpoint in it, e.g. "
                "<exp>/final.pt; trained here or imported): its model, front-end and extraction settings, with "
                "the loss, data, optim and training settings of --model-config; its head too when it was trained "
                "on the same speakers, else a new head. Ignored when resuming")
    po.register("freeze", "", "Comma-separated blocks of the model (parameter-name prefixes, e.g. 'lstm' or "
                "'frames.0,frames.1') kept fixed for the first --freeze-epochs epochs (default: the config's "
                "training.freeze)")
    po.register("freeze-epochs", -1, "Epochs the --freeze blocks stay fixed (default -1: the config's "
                "training.freeze_epochs)")
    po.register("babble-dir", "", "data.source audio: MUSAN speech data dir for 'babble'")
    po.register("num-threads", 0, "Intra-op threads per process on CPU; 0: torch's default (the cores or "
                "OMP_NUM_THREADS). CPU kernels sum in an order that depends on it, so a fixed value gives the "
                "same model on every machine")
    opts, (data_dir, exp_dir) = po.parse(num_args=2)

    import dataclasses

    from sid.config import load_config, load_finetune_config
    from sid.errors import SidError
    from sid.train.checkpoint import init_source
    from sid.train.trainer import TrainOptions, Trainer

    if not opts.model_config:
        raise SidError("--model-config=<yaml> is required (see conf/*.yaml)")
    if opts.init_model:
        _, src = init_source(opts.init_model)
        cfg = load_finetune_config(opts.model_config, load_config(src / "config.yaml", recorded=True),
                                   str(src / "config.yaml"))
    else:
        cfg = load_config(opts.model_config)
    training = cfg.training
    if opts.freeze:
        training = dataclasses.replace(training, freeze=[b for b in opts.freeze.split(",") if b])
    if opts.freeze_epochs >= 0:
        training = dataclasses.replace(training, freeze_epochs=opts.freeze_epochs)
    cfg = dataclasses.replace(cfg, training=training)
    topts = TrainOptions(**{k: getattr(opts, k) for k in TrainOptions.__dataclass_fields__})
    Trainer(data_dir, exp_dir, cfg, topts).run()
    return 0


if __name__ == "__main__":
    run_main(main)
