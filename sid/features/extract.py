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
from typing import Callable, Iterator

import numpy as np

from sid.backend import limit_blas_threads
from sid.cli import KaldiOptions, progress
from sid.data.audio import read_audio
from sid.data.table import iter_lines, read_table
from sid.errors import AudioError, SidError
from sid.features.compute import Fbank, Mfcc
from sid.features.options import FEATURE_TYPES
from sid.features.window import num_frames
from sid.kaldi_io import AUTOMATIC_COMPRESSION, ScalarWriter, TableWriter, split_specifier

log = logging.getLogger(__name__)

KINDS = {
    "fbank": ("Create Mel-filterbank features from a wav file.", FEATURE_TYPES["fbank"], Fbank),
    "mfcc": ("Create MFCC feature files.", FEATURE_TYPES["mfcc"], Mfcc),
}


def utterance_augmenter(utt2aug: str) -> Callable[[str, np.ndarray, int], np.ndarray]:
    """The feature tools' ``--utt2aug``: ``augment(utt, samples, sample_rate)`` applies the file's
    recipe for ``utt`` (``sid.augment.apply_recipe``, float32), and leaves the samples of an
    utterance it does not list, or of every one without a file, as they are."""
    if not utt2aug:
        return lambda utt, samples, sr: samples
    from sid.augment import apply_recipe  # only recipes with augmentation need it
    from sid.data.table import read_dict

    recipes = read_dict(utt2aug)

    def augment(utt: str, samples: np.ndarray, sr: int) -> np.ndarray:
        recipe = recipes.get(utt)
        return samples if recipe is None else np.asarray(apply_recipe(samples, sr, recipe), dtype=np.float32)

    return augment


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
    limit_blas_threads()  # jobs run in parallel; one core each is what Kaldi uses too
    computer = computer_cls(feat_opts)
    frame_opts = feat_opts.frame_opts
    samp_freq = int(frame_opts.samp_freq)

    augment = utterance_augmenter(opts.utt2aug)

    num_utts = num_success = 0
    frames_total = 0
    seconds_total = 0.0
    started = time.process_time()
    method = AUTOMATIC_COMPRESSION if opts.compress else None
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(TableWriter(feats_wspecifier, compression_method=method,
                                                 expected_items=_count_entries(wav_rspecifier, opts.segments)))
        dur_writer = stack.enter_context(ScalarWriter(opts.write_utt2dur)) if opts.write_utt2dur else None
        nf_writer = stack.enter_context(ScalarWriter(opts.write_num_frames)) if opts.write_num_frames else None
        for utt, where, read in progress(read_wavs(wav_rspecifier, opts.segments), desc=f"compute_{kind}_feats",
                                         unit="utt", mininterval=10):
            num_utts += 1
            try:
                samples, sr = read(None, False)
                if sr != samp_freq:
                    if (sr > samp_freq and frame_opts.allow_downsample) or (sr < samp_freq and frame_opts.allow_upsample):
                        samples, sr = read(samp_freq, True)
                    else:
                        raise AudioError(f"utterance '{utt}' ({where}): sample frequency {sr} Hz does not match "
                                         f"--sample-frequency={samp_freq} (use --allow-downsample/--allow-upsample)")
                samples = augment(utt, samples, sr)
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


def _count_entries(rspecifier: str, segments: str) -> int | None:
    """Utterances a job will write (lines of segments or wav.scp), to estimate its output size."""
    opts, path = split_specifier(rspecifier)
    if not segments and "scp" not in opts:
        return None
    try:
        with open(segments or path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


def read_wavs(rspecifier: str, segments: str = "") -> Iterator[tuple[str, str, Callable]]:
    """``(utt, where, read(sample_rate, resample) -> (samples, sr))`` per utterance.

    ``scp:wav.scp`` entries are decoded with ``sid.data.audio.read_audio`` (any format
    it knows, pipes, ``segments``); an ``ark:`` of wav data is read through kaldiio.
    Decoding happens in ``read`` so one bad utterance raises ``AudioError`` for itself.
    """
    opts, path = split_specifier(rspecifier)
    if "scp" in opts:
        try:
            table = read_table(path)
        except FileNotFoundError:
            raise SidError(f"cannot open '{path}': no such file") from None
        wav = dict(table)
        if segments:
            for lineno, utt, rest in iter_lines(segments):
                fields = rest.split()
                try:
                    rec, start, end = fields[0], float(fields[1]), float(fields[2])
                except (IndexError, ValueError):
                    raise SidError(f"{segments}:{lineno}: expected '<utt> <recording> <start> <end>'") from None
                if rec not in wav:
                    log.warning(f"{segments}:{lineno}: recording '{rec}' of '{utt}' is not in {path}")
                    yield utt, f"{segments}:{lineno}", _missing(utt, rec)
                    continue
                yield utt, wav[rec], _reader(wav[rec], utt, start, end)
        else:
            for utt, value in table:
                yield utt, value, _reader(value, utt, 0.0, None)
        return
    if segments:
        raise SidError("--segments needs the recordings as scp:wav.scp")
    import kaldiio  # an archive of wav data, rare: kaldiio parses RIFF objects

    for utt, (rate, data) in kaldiio.ReadHelper(rspecifier):
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[:, 0]
        yield utt, rspecifier, lambda *_a, _d=data, _r=rate: (_d.astype(np.float32), _r)


def _reader(spec: str, utt: str, start: float, end: float | None):
    def read(sample_rate: int | None, resample: bool):
        return read_audio(spec, utt=utt, sample_rate=sample_rate, resample=resample, start=start, end=end)
    return read


def _missing(utt: str, rec: str):
    def read(*_):
        raise AudioError(f"utterance '{utt}': recording '{rec}' is not in wav.scp")
    return read
