"""compute_frontend_feats: a model config's front-end (sid.features.frontends) as features."""

from sid.cli import KaldiOptions, run_main

USAGE = """Compute the front-end a model config names in its 'frontend' section (vt_mel: voxceleb_trainer's
log-mel; waveform: raw 10 ms sample rows; fbank: Kaldi's filterbank with its num_mel_bins; resemblyzer:
Resemblyzer's trimmed mel), with Kaldi's frame count (25 ms / 10 ms) so VAD decisions made on Kaldi
features apply (resemblyzer: its own frames, trimmed by its own VAD); with --utt2aug, each utterance
augmented by its recipe first (a speed-perturbed copy's own frames). Unreadable, empty
or too short utterances are warned about and skipped; the program fails if none succeeded.
Usage:  compute_frontend_feats [options] --model-config=<yaml> <wav-rspecifier> <feats-wspecifier>
 e.g.:  compute_frontend_feats --model-config=conf/resnetse34l_ap.yaml scp:data/train/wav.scp ark,scp:fe.ark,fe.scp"""


def main() -> int:
    po = KaldiOptions(USAGE)
    po.register("model-config", "", "Model config with a 'frontend' section (required)")
    po.register("snip-edges", False, "Frame count as Kaldi's --snip-edges (match the features the VAD came from)")
    po.register("write-num-frames", "", "Wspecifier for the frame count of each utterance, e.g. 'ark,t:utt2num_frames'")
    po.register("compress", False, "Write compressed matrices (copy-feats --compress=true)")
    po.register("write-utt2dur", "", "Wspecifier for the duration of each utterance in seconds, e.g. 'ark,t:utt2dur'")
    po.register("segments", "", "Segments file '<utt> <recording> <start> <end>': the segments of the recordings "
                "in scp:wav.scp")
    po.register("utt2aug", "", "File '<utt> <json-recipe>': augment those utterances with sid.augment.apply_recipe "
                "before computing the front-end")
    opts, (wav_rspecifier, feats_wspecifier) = po.parse(num_args=2)

    import contextlib
    import logging

    import numpy as np
    import torch
    from tqdm import tqdm

    from sid.errors import SidError
    from sid.features.compute import Fbank
    from sid.features.frontends import build_frontend, frontend_features, kaldi_frames
    from sid.features.extract import read_wavs, utterance_augmenter
    from sid.kaldi_io import AUTOMATIC_COMPRESSION, ScalarWriter, TableWriter
    from sid.features.options import FbankOptions
    from sid.config import load_config

    log = logging.getLogger("compute_frontend_feats")
    if not opts.model_config:
        raise SidError("--model-config=<yaml> is required")
    cfg = load_config(opts.model_config, recorded=True)   # a model config, or an exp's config.yaml
    fe_cfg = cfg.frontend
    if fe_cfg is None:
        raise SidError(f"{opts.model_config} has no 'frontend' section")
    torch.set_num_threads(1)
    frontend = build_frontend(fe_cfg)
    if frontend is None:
        fb_opts = FbankOptions()
        fb_opts.mel_opts.num_bins = fe_cfg.num_mel_bins
        fb_opts.frame_opts.snip_edges = opts.snip_edges
        fbank = Fbank(fb_opts)
    augment = utterance_augmenter(opts.utt2aug)
    done = tried = 0
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(TableWriter(feats_wspecifier,
                                                  compression_method=AUTOMATIC_COMPRESSION if opts.compress else None))
        nf = stack.enter_context(ScalarWriter(opts.write_num_frames)) if opts.write_num_frames else None
        dur = stack.enter_context(ScalarWriter(opts.write_utt2dur)) if opts.write_utt2dur else None
        for utt, where, read in tqdm(read_wavs(wav_rspecifier, opts.segments), desc="compute_frontend_feats", unit="utt",
                                     mininterval=10, disable=None):
            tried += 1
            try:
                samples, sr = read(16000, False)
                samples = augment(utt, samples, sr)
                if kaldi_frames(len(samples), opts.snip_edges) == 0:
                    raise SidError(f"utterance '{utt}' ({where}): {len(samples)} samples make no frame")
                feats = fbank.compute(samples, utt) if frontend is None else frontend_features(
                    frontend, samples, opts.snip_edges, f"utterance '{utt}' ({where})")
                if not np.isfinite(feats).all():
                    raise SidError(f"utterance '{utt}' ({where}): features contain non-finite values")
            except SidError as err:
                log.warning("%s; skipping it", err)
                continue
            writer.write(utt, feats)
            if nf:
                nf.write(utt, feats.shape[0])
            if dur:
                dur.write(utt, f"{len(samples) / 16000:g}")
            done += 1
        if done == 0:
            raise SidError(f"no utterance of {tried} in '{wav_rspecifier}' gave features (see the warnings above)")
    log.info("Computed %s features of %d of %d utterances", fe_cfg.type, done, tried)
    return 0


if __name__ == "__main__":
    run_main(main)
