"""Option structs mirroring Kaldi's, with Kaldi's option names and defaults.

Each struct registers its options on a ``sid.cli.KaldiOptions`` (so ``--config``
files written for Kaldi work unchanged) and is built back from the parsed
namespace with ``from_opts``. Only options this package implements are registered,
so an unsupported Kaldi option (e.g. VTLN) is a clear "invalid option" error
rather than being silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sid.errors import SidError

WINDOW_TYPES = ("hamming", "hanning", "povey", "rectangular", "sine", "blackman")


class _Registrable:
    # (field name, Kaldi option name, help); the default is the field's.
    _OPTIONS: tuple[tuple[str, str, str], ...] = ()

    def register(self, po) -> None:
        for name, opt, text in self._OPTIONS:
            po.register(opt, getattr(self, name), text)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, _Registrable):
                value.register(po)

    @classmethod
    def from_opts(cls, ns):
        kwargs = {}
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            if isinstance(default, _Registrable):
                kwargs[f.name] = type(default).from_opts(ns)
        for name, opt, _ in cls._OPTIONS:
            kwargs[name] = getattr(ns, opt.replace("-", "_"))
        obj = cls(**kwargs)
        obj.check()
        return obj

    def check(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, _Registrable):
                value.check()


@dataclass
class FrameExtractionOptions(_Registrable):
    samp_freq: float = 16000.0
    frame_shift_ms: float = 10.0
    frame_length_ms: float = 25.0
    dither: float = 1.0
    preemph_coeff: float = 0.97
    remove_dc_offset: bool = True
    window_type: str = "povey"
    round_to_power_of_two: bool = True
    blackman_coeff: float = 0.42
    snip_edges: bool = True
    allow_downsample: bool = False
    allow_upsample: bool = False

    _OPTIONS = (
        ("samp_freq", "sample-frequency", "Waveform data sample frequency (must match the waveform file, if specified there)"),
        ("frame_shift_ms", "frame-shift", "Frame shift in milliseconds"),
        ("frame_length_ms", "frame-length", "Frame length in milliseconds"),
        ("dither", "dither", "Dithering constant (0.0 means no dither); Gaussian noise, seeded per utterance"),
        ("preemph_coeff", "preemphasis-coefficient", "Coefficient for use in signal preemphasis"),
        ("remove_dc_offset", "remove-dc-offset", "Subtract mean from waveform on each frame"),
        ("window_type", "window-type", "Type of window (\"hamming\"|\"hanning\"|\"povey\"|\"rectangular\"|\"sine\"|\"blackman\")"),
        ("round_to_power_of_two", "round-to-power-of-two", "If true, round window size to power of two by zero-padding input to FFT."),
        ("blackman_coeff", "blackman-coeff", "Constant coefficient for generalized Blackman window."),
        ("snip_edges", "snip-edges", "If true, end effects will be handled by outputting only frames that completely fit in the file, and the number of frames depends on the frame-length.  If false, the number of frames depends only on the frame-shift, and we reflect the data at the ends."),
        ("allow_downsample", "allow-downsample", "If true, allow the input waveform to have a higher frequency than the specified --sample-frequency (and we'll downsample)."),
        ("allow_upsample", "allow-upsample", "If true, allow the input waveform to have a lower frequency than the specified --sample-frequency (and we'll upsample)."),
    )

    @property
    def window_shift(self) -> int:
        return int(self.samp_freq * 0.001 * self.frame_shift_ms)

    @property
    def window_size(self) -> int:
        return int(self.samp_freq * 0.001 * self.frame_length_ms)

    @property
    def padded_window_size(self) -> int:
        size = self.window_size
        return 1 << (size - 1).bit_length() if self.round_to_power_of_two else size

    def check(self) -> None:
        if self.window_shift <= 0 or self.window_size < 2:
            raise SidError(f"frame shift {self.frame_shift_ms} ms / length {self.frame_length_ms} ms at "
                           f"{self.samp_freq} Hz give too few samples per frame")
        if self.window_type not in WINDOW_TYPES:
            raise SidError(f"invalid --window-type={self.window_type}; expected one of {', '.join(WINDOW_TYPES)}")
        if self.dither < 0:
            raise SidError(f"--dither must be >= 0, got {self.dither}")


@dataclass
class MelBanksOptions(_Registrable):
    num_bins: int = 25
    low_freq: float = 20.0
    high_freq: float = 0.0

    _OPTIONS = (
        ("num_bins", "num-mel-bins", "Number of triangular mel-frequency bins"),
        ("low_freq", "low-freq", "Low cutoff frequency for mel bins"),
        ("high_freq", "high-freq", "High cutoff frequency for mel bins (if <= 0, offset from Nyquist)"),
    )

    def check(self) -> None:
        if self.num_bins < 3:
            raise SidError(f"--num-mel-bins must be at least 3, got {self.num_bins}")


@dataclass
class FbankOptions(_Registrable):
    frame_opts: FrameExtractionOptions = field(default_factory=FrameExtractionOptions)
    mel_opts: MelBanksOptions = field(default_factory=lambda: MelBanksOptions(num_bins=23))
    use_energy: bool = False
    energy_floor: float = 0.0
    raw_energy: bool = True
    use_log_fbank: bool = True
    use_power: bool = True

    _OPTIONS = (
        ("use_energy", "use-energy", "Add an extra dimension with energy to the FBANK output."),
        ("energy_floor", "energy-floor", "Floor on energy (absolute, not relative) in FBANK computation. Only makes a difference if --use-energy=true; only necessary if --dither=0.0.  Suggested values: 0.1 or 1.0"),
        ("raw_energy", "raw-energy", "If true, compute energy before preemphasis and windowing"),
        ("use_log_fbank", "use-log-fbank", "If true, produce log-filterbank, else produce linear."),
        ("use_power", "use-power", "If true, use power, else use magnitude."),
    )


@dataclass
class MfccOptions(_Registrable):
    frame_opts: FrameExtractionOptions = field(default_factory=FrameExtractionOptions)
    mel_opts: MelBanksOptions = field(default_factory=lambda: MelBanksOptions(num_bins=23))
    num_ceps: int = 13
    use_energy: bool = True
    energy_floor: float = 0.0
    raw_energy: bool = True
    cepstral_lifter: float = 22.0

    _OPTIONS = (
        ("num_ceps", "num-ceps", "Number of cepstra in MFCC computation (including C0)"),
        ("use_energy", "use-energy", "Use energy (not C0) in MFCC computation"),
        ("energy_floor", "energy-floor", "Floor on energy (absolute, not relative) in MFCC computation. Only makes a difference if --use-energy=true; only necessary if --dither=0.0.  Suggested values: 0.1 or 1.0"),
        ("raw_energy", "raw-energy", "If true, compute energy before preemphasis and windowing"),
        ("cepstral_lifter", "cepstral-lifter", "Constant that controls scaling of MFCCs"),
    )

    def check(self) -> None:
        super().check()
        if not 1 <= self.num_ceps <= self.mel_opts.num_bins:
            raise SidError(f"--num-ceps={self.num_ceps} must be between 1 and --num-mel-bins={self.mel_opts.num_bins}")


@dataclass
class VadEnergyOptions(_Registrable):
    vad_energy_threshold: float = 5.0
    vad_energy_mean_scale: float = 0.5
    vad_frames_context: int = 0
    vad_proportion_threshold: float = 0.6

    _OPTIONS = (
        ("vad_energy_threshold", "vad-energy-threshold", "Constant term in energy threshold for VAD (also see --vad-energy-mean-scale)"),
        ("vad_energy_mean_scale", "vad-energy-mean-scale", "If this is set to s, to get the actual threshold we let m be the mean log-energy of the file, and use s*m + vad-energy-threshold"),
        ("vad_frames_context", "vad-frames-context", "Number of frames of context on each side of central frame, in window for which energy is monitored"),
        ("vad_proportion_threshold", "vad-proportion-threshold", "Parameter controlling the proportion of frames within the window that need to have more energy than the threshold"),
    )

    def check(self) -> None:
        if self.vad_energy_mean_scale < 0:
            raise SidError(f"--vad-energy-mean-scale must be >= 0, got {self.vad_energy_mean_scale}")
        if self.vad_frames_context < 0:
            raise SidError(f"--vad-frames-context must be >= 0, got {self.vad_frames_context}")
        if not 0.0 < self.vad_proportion_threshold < 1.0:
            raise SidError(f"--vad-proportion-threshold must be in (0, 1), got {self.vad_proportion_threshold}")


@dataclass
class SlidingWindowCmnOptions(_Registrable):
    cmn_window: int = 600
    min_window: int = 100
    normalize_variance: bool = False
    center: bool = False

    _OPTIONS = (
        ("cmn_window", "cmn-window", "Window in frames for running average CMN computation"),
        ("min_window", "min-cmn-window", "Minimum CMN window used at start of decoding (adds latency only at start). Only applicable if center == false, ignored if center==true"),
        ("normalize_variance", "norm-vars", "If true, normalize variance to one."),
        ("center", "center", "If true, use a window centered on the current frame (to the extent possible, modulo end effects). If false, window is to the left."),
    )

    def check(self) -> None:
        if self.cmn_window <= 0:
            raise SidError(f"--cmn-window must be > 0, got {self.cmn_window}")
        if not self.center and self.min_window <= 0:
            raise SidError(f"--min-cmn-window must be > 0, got {self.min_window}")


# Feature type (steps/make_<type>.sh, compute_<type>_feats) -> its options.
FEATURE_TYPES = {"fbank": FbankOptions, "mfcc": MfccOptions}
