"""The compute_fbank_feats / compute_mfcc_feats programs (shared driver).

Per utterance: decode (``sid.data.audio``), optionally augment (``--utt2aug``,
``sid.augment.apply_recipe``), compute features, write. An utterance that cannot be
read, is empty, shorter than ``--min-duration`` or one frame, has the wrong sample
rate, or gives non-finite features is logged as a WARNING with its id and reason and
skipped, as Kaldi does; the program fails only if no utterance succeeded.
Memory stays flat: one utterance is held at a time and records stream to the ark.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import torch
from tqdm import tqdm

from sid.cli import KaldiOptions
from sid.errors import AudioError, SidError
from sid.features.compute import Fbank, Mfcc
from sid.features.io import AUTOMATIC_COMPRESSION, MatrixWriter, ScalarWriter, read_wavs
from sid.features.options import FEATURE_TYPES
from sid.features.window import num_frames

log = logging.getLogger(__name__)

KINDS = {
    "fbank": ("Create Mel-filterbank features from a wav file.", FEATURE_TYPES["fbank"], Fbank),
    "mfcc": ("Create MFCC feature files.", FEATURE_TYPES["mfcc"], Mfcc),
}


def main(kind: str, argv=None) -> int:
    description, options_cls, computer_cls = KINDS[kind]
    po = KaldiOptions(f"""{description}
Usage:  compute_{kind}_feats [options...] <wav-rspecifier> <feats-wspecifier>
 e.g.:  compute_{kind}_feats --config=conf/{kind}.conf scp:data/train/wav.scp ark,scp:{kind}.ark,{kind}.scp
Computes Kaldi-identical features (dither is Gaussian noise seeded from the utterance id).
Options marked (sid) are extensions that save Kaldi's extra pipe stages.""")
    feat_opts = options_cls()
    feat_opts.register(po)
    po.register("write-utt2dur", "", "Wspecifier to write duration of each utterance in seconds, e.g. 'ark,t:utt2dur'.")
    po.register("min-duration", 0.0, "Minimum duration of segments to process (in seconds).")
    po.register("subtract-mean", False, "Subtract mean of each feature file [CMS]; not recommended to do it this way.")
    po.register("segments", "", "(sid) Segments file '<utt> <recording> <start> <end>': compute features of "
                "these segments of the recordings in scp:wav.scp, as Kaldi's extract-segments does.")
    po.register("utt2aug", "", "(sid) File '<utt> <json-recipe>': augment those utterances with "
                "sid.augment.apply_recipe before computing features.")
    po.register("compress", False, "(sid) Write compressed matrices, as copy-feats --compress=true does.")
    po.register("write-num-frames", "", "(sid) Wspecifier to write the number of frames of each utterance, "
                "e.g. 'ark,t:utt2num_frames' (copy-feats --write-num-frames).")
    opts, (wav_rspecifier, feats_wspecifier) = po.parse(argv, num_args=2)
    feat_opts = options_cls.from_opts(opts)
    torch.set_num_threads(1)  # jobs run in parallel; one core each is what Kaldi uses too
    computer = computer_cls(feat_opts)
    frame_opts = feat_opts.frame_opts
    samp_freq = int(frame_opts.samp_freq)

    utt2aug = None
    apply_recipe = None
    if opts.utt2aug:
        from sid.augment import apply_recipe  # only recipes with augmentation need it
        from sid.data.table import read_dict

        utt2aug = read_dict(opts.utt2aug)

    num_utts = num_success = 0
    frames_total = 0
    seconds_total = 0.0
    started = time.process_time()
    method = AUTOMATIC_COMPRESSION if opts.compress else None
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(MatrixWriter(feats_wspecifier, compression_method=method))
        dur_writer = stack.enter_context(ScalarWriter(opts.write_utt2dur)) if opts.write_utt2dur else None
        nf_writer = stack.enter_context(ScalarWriter(opts.write_num_frames)) if opts.write_num_frames else None
        for utt, where, read in tqdm(read_wavs(wav_rspecifier, opts.segments), desc=f"compute_{kind}_feats",
                                     unit="utt", mininterval=10, disable=None):
            num_utts += 1
            try:
                samples, sr = read(None, False)
                if sr != samp_freq:
                    if (sr > samp_freq and frame_opts.allow_downsample) or (sr < samp_freq and frame_opts.allow_upsample):
                        samples, sr = read(samp_freq, True)
                    else:
                        raise AudioError(f"utterance '{utt}' ({where}): sample frequency {sr} Hz does not match "
                                         f"--sample-frequency={samp_freq} (use --allow-downsample/--allow-upsample)")
                if utt2aug is not None and utt in utt2aug:
                    samples = np.asarray(apply_recipe(samples, sr, utt2aug[utt]), dtype=np.float32)
                duration = len(samples) / samp_freq
                if len(samples) == 0:
                    raise AudioError(f"utterance '{utt}' ({where}): audio is empty")
                if duration < opts.min_duration:
                    raise AudioError(f"utterance '{utt}' ({where}): too short ({duration:.3f} s < "
                                     f"--min-duration={opts.min_duration})")
                if num_frames(len(samples), frame_opts) == 0:
                    raise AudioError(f"utterance '{utt}' ({where}): {len(samples)} samples is shorter than one frame")
                feats = computer.compute(samples, utt)
                if not np.isfinite(feats).all():
                    raise AudioError(f"utterance '{utt}' ({where}): features contain non-finite values")
            except SidError as err:  # AudioError, or a bad augmentation recipe
                log.warning(f"{err}; skipping it")
                continue
            if opts.subtract_mean:
                feats = feats - feats.mean(axis=0, dtype=np.float64).astype(np.float32)
            writer.write(utt, feats)
            if dur_writer:
                dur_writer.write(utt, f"{duration:g}")
            if nf_writer:
                nf_writer.write(utt, feats.shape[0])
            num_success += 1
            frames_total += feats.shape[0]
            seconds_total += duration
        if num_success == 0:
            raise SidError(f"no utterance of {num_utts} in '{wav_rspecifier}' gave features (see the warnings above)")
    cpu = time.process_time() - started
    log.info(f"Processed {num_success} utterances ({frames_total} frames, {seconds_total / 3600:.3f} h of audio) "
             f"in {cpu:.1f} s CPU ({seconds_total / max(cpu, 1e-9):.0f}x real time)")
    log.info(f" Done {num_success} out of {num_utts} utterances.")
    return 0
