"""Applying one utterance's augmentation recipe to its samples, as Kaldi's tools would.

A recipe is a single-line JSON object recorded in a data dir's ``utt2aug`` when the
augmented copy was made; every random choice is already in it, so applying it is
deterministic. Keys (all optional):

  ``speed``     factor, as ``sox speed``: pitch and tempo change together, the
                output has ``len / factor`` samples (Kaldi's perturb_data_dir_speed.sh).
  ``rir``       a room impulse response (``wav.scp``-style spec) to convolve with.
  ``additive``  a list of ``{"file": spec, "snr": dB, "start": seconds, "fill": bool,
                "dur": seconds}``: noises added at ``start`` seconds with the SNR in dB
                relative to the (early-reverberation) signal power; ``fill`` repeats or
                trims the noise to the utterance's length first (a background noise,
                Kaldi's ``wav-reverberate --duration=<utt-dur>``); otherwise it is added
                as far as the utterance reaches. ``dur``, the noise file's duration,
                lets a long filling noise (minutes of MUSAN music) be read only as far
                as the utterance needs.
  ``seed``      the seed the choices were drawn with (provenance; nothing random is left).

RIR and noise follow ``wav-reverberate --shift-output=true`` (its defaults
``--normalize-output=true``): the signal power used for the SNR is that of the
signal convolved with the early part of the RIR (1 ms before to 50 ms after its
peak); noises are added to the full reverberated signal; the result is scaled back
to the clean signal's power and shifted by the RIR's peak, so it stays aligned with
the clean signal (the clean VAD applies) and keeps its length.
"""

from __future__ import annotations

import functools
import json
from fractions import Fraction

import numpy as np

from sid.errors import AudioError

# wav-reverberate's early-reverberation window around the RIR's peak.
SEC_BEFORE_PEAK = 0.001
SEC_AFTER_PEAK = 0.05
KEYS = {"speed", "rir", "additive", "seed"}
ADDITIVE_KEYS = {"file", "snr", "start", "fill", "dur"}


# Small caches: a job's utterances draw their RIRs and noises at random from
# thousands of files, so a hit is rare except for small sets (tests, a few RIRs),
# and a MUSAN music file decodes to tens of MB.
@functools.lru_cache(maxsize=64)
def _read_rir(spec: str, sample_rate: int) -> np.ndarray:
    from sid.data.audio import read_audio

    rir, _ = read_audio(spec, sample_rate=sample_rate, resample=True)
    # read_audio gives the int16 range; wav-reverberate divides by 2^15 too.
    return rir.astype(np.float64) / 32768.0


@functools.lru_cache(maxsize=4)
def _read_noise(spec: str, sample_rate: int) -> np.ndarray:
    from sid.data.audio import read_audio

    noise, _ = read_audio(spec, sample_rate=sample_rate, resample=True)
    return noise


def _read_start(spec: str, sample_rate: int, length: int, dur: float | None) -> np.ndarray:
    """The first ``length`` samples of a noise known to be longer, else all of it."""
    if dur is None or dur * sample_rate <= length + 1:
        return _read_noise(spec, sample_rate)
    from sid.data.audio import read_audio

    # Half a sample over, so that int(end * rate) is exactly ``length``.
    noise, _ = read_audio(spec, sample_rate=sample_rate, resample=True, end=(length + 0.5) / sample_rate)
    return noise


def parse_recipe(recipe: str | dict) -> dict:
    """The recipe as a dict, checked; a malformed one is an error quoting it."""
    if isinstance(recipe, dict):
        rec = recipe
    else:
        try:
            rec = json.loads(recipe)
        except json.JSONDecodeError as err:
            raise AudioError(f"augmentation recipe is not JSON ({err}): {recipe!r}") from None
    if not isinstance(rec, dict) or set(rec) - KEYS:
        raise AudioError(f"augmentation recipe must be an object with keys among {sorted(KEYS)}: {recipe!r}")
    if "speed" in rec and not (isinstance(rec["speed"], (int, float)) and rec["speed"] > 0):
        raise AudioError(f"augmentation recipe: speed must be a positive number: {recipe!r}")
    for add in rec.get("additive", []):
        if not isinstance(add, dict) or "file" not in add or "snr" not in add or set(add) - ADDITIVE_KEYS:
            raise AudioError(f"augmentation recipe: each additive entry needs 'file' and 'snr' "
                             f"(and optionally 'start', 'fill', 'dur'): {recipe!r}")
    return rec


def speed_perturb(samples: np.ndarray, factor: float) -> np.ndarray:
    """``sox speed <factor>``: resample by ``1/factor`` so the audio plays ``factor`` times faster."""
    from scipy.signal import resample_poly  # scipy loads slowly; data-dir tools never need it

    ratio = Fraction(1 / factor).limit_denominator(1000)
    if ratio == 1:
        return samples
    return resample_poly(samples, ratio.numerator, ratio.denominator)


def _power(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.dot(x, x) / len(x)) if len(x) else 0.0


def _fill(noise: np.ndarray, length: int) -> np.ndarray:
    """Repeat or trim to ``length`` samples."""
    reps = -(-length // len(noise))
    return np.tile(noise, reps)[:length]


def reverberate_and_add(samples: np.ndarray, sample_rate: int, rir: np.ndarray | None,
                        additive: list[tuple[np.ndarray, float, float, str]]) -> np.ndarray:
    """wav-reverberate --shift-output=true --normalize-output=true on float64 ``samples``.

    ``additive``: ``(noise, snr_db, start_seconds, name)``, noises already filled if wanted.
    """
    from scipy.signal import fftconvolve

    x = np.array(samples, dtype=np.float64)  # a copy: noise is added in place
    n = len(x)
    power_before = _power(x)
    signal_power = power_before
    shift = 0
    if rir is not None:
        peak = int(np.argmax(rir))
        first = max(0, int(peak - SEC_BEFORE_PEAK * sample_rate))
        last = min(len(rir), int(peak + SEC_AFTER_PEAK * sample_rate))
        signal_power = _power(fftconvolve(x, rir[first:last]))
        x = fftconvolve(x, rir)
        shift = peak
    for noise, snr, start, name in additive:
        noise_power = _power(noise)
        if noise_power == 0:
            raise AudioError(f"noise '{name}' is silent: it cannot be scaled to an SNR")
        scale = np.sqrt(10 ** (-snr / 10) * signal_power / noise_power)
        offset = int(start * sample_rate)
        length = min(len(x) - offset, len(noise))
        if length > 0:
            x[offset:offset + length] += scale * noise[:length]
    power_after = _power(x)
    if power_after > 0:
        x *= np.sqrt(power_before / power_after)
    return x[shift:shift + n]


def apply_recipe(samples: np.ndarray, sample_rate: int, recipe: str | dict) -> np.ndarray:
    """Apply an ``utt2aug`` recipe to one utterance's samples (int16 range); returns float32.

    RIR and noise files are read through ``sid.data.audio.read_audio`` (resampled to
    ``sample_rate`` if need be) and a few are cached, as one job applies the same
    files to many utterances.
    """
    rec = parse_recipe(recipe)
    x = np.asarray(samples, dtype=np.float64)
    if "speed" in rec:
        x = speed_perturb(x, float(rec["speed"]))
    if "rir" in rec or rec.get("additive"):
        rir = _read_rir(rec["rir"], sample_rate) if "rir" in rec else None
        additive = []
        for add in rec.get("additive", []):
            if add.get("fill", False):
                noise = _fill(_read_start(add["file"], sample_rate, len(x), add.get("dur")), len(x))
            else:
                noise = _read_noise(add["file"], sample_rate)
            additive.append((noise, float(add["snr"]), float(add.get("start", 0.0)), add["file"]))
        x = reverberate_and_add(x, sample_rate, rir, additive)
    return x.astype(np.float32)
