"""Which back-end scores a model's embeddings: ``<model-dir>/backend.yaml``.

``python -m sid.bin.record_backend`` writes it after the recipe has trained a back-end for
the model (steps/score_plda.sh's ``backend_plda``, or steps/score_qmf.sh's ``backend_cosine``
with ``qmf.json``); ``sid.Embedder`` and ``sid.bin.verify --exp`` read it. It only points:
the back-end's files stay where the scoring steps wrote them (paths relative to the model
dir), the threshold stays in score_qmf.sh's ``.threshold`` file. Kinds:

* ``plda``: mean, optional LDA, length norm, PLDA log-likelihood ratio (score_plda.sh);
* ``cosine_asnorm_qmf``: mean-subtracted cosine, AS-norm against the speaker-mean cohort,
  QMF calibration from both sides' durations and imposter means (score_cosine.sh,
  score_norm.sh, score_qmf.sh), with the calibrated Bayes threshold of one target prior.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sid.errors import SidError

RECORD = "backend.yaml"
KINDS = ("plda", "cosine_asnorm_qmf")


def _read_threshold(path: Path, p_target: float) -> float:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise SidError(f"cannot read threshold file {path}: {err.strerror}") from None
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        try:
            p, th = float(fields[0]), float(fields[1])
        except (IndexError, ValueError):
            raise SidError(f"{path}:{lineno}: expected '<p-target> <threshold>', got '{line}'") from None
        if p == p_target:
            return th
    raise SidError(f"{path} has no threshold for p-target {p_target:g} (steps/score_qmf.sh --p-targets)")


class Backend:
    """A trained back-end: ``score(a, b, dur_a, dur_b)`` and its decision ``threshold`` (or None)."""

    def __init__(self, kind: str, directory: str | Path, cohort: str | Path | None = None,
                 threshold_file: str | Path | None = None, p_target: float | None = None):
        from sid import kaldi_io

        if kind not in KINDS:
            raise SidError(f"back-end kind '{kind}' unknown; allowed: {', '.join(KINDS)}")
        self.kind, self.dir = kind, Path(directory)
        self.threshold = self.p_target = None
        self.transform = self.plda = self.qmf = self.cohort = None
        need = ("mean.vec", "plda") if kind == "plda" else ("mean.vec", "qmf.json")
        for name in need:
            if not (self.dir / name).exists():
                raise SidError(f"{self.dir / name} not found: a {kind} back-end dir is "
                               f"{'steps/score_plda.sh' if kind == 'plda' else 'steps/score_qmf.sh'}'s "
                               f"{'backend_plda' if kind == 'plda' else 'backend_cosine'} ({', '.join(need)})")
        self.mean = kaldi_io.read_vector(str(self.dir / "mean.vec"))
        if kind == "plda":
            from sid.backend.plda import Plda

            if (self.dir / "transform.mat").exists():
                self.transform = kaldi_io.read_matrix(str(self.dir / "transform.mat"))
            self.plda = Plda.read(str(self.dir / "plda"))
        else:
            from sid.backend import pipeline
            from sid.backend.qmf import QMF

            if cohort is None:
                raise SidError("a cosine_asnorm_qmf back-end needs its cohort (the speaker-mean embeddings "
                               "steps/score_qmf.sh used, <train-emb-dir>/spk_xvector.scp)")
            self.qmf = QMF.load(self.dir / "qmf.json")
            _, self.cohort = pipeline.read_prepared(f"scp:{cohort}", self.mean, None, False)
            if len(self.cohort) == 0:
                raise SidError(f"{cohort}: no cohort vectors")
        if threshold_file is not None:
            self.p_target = 0.01 if p_target is None else float(p_target)
            self.threshold = _read_threshold(Path(threshold_file), self.p_target)
        self.paths = {"dir": self.dir, "cohort": cohort, "threshold_file": threshold_file}

    @property
    def needs_durations(self) -> bool:
        return self.kind == "cosine_asnorm_qmf"

    # -- the record ---------------------------------------------------------------------------------
    def write(self, model_dir: str | Path) -> Path:
        """``<model-dir>/backend.yaml`` pointing here (paths relative to the model dir)."""
        import yaml

        from sid.data.table import atomic_path

        model_dir = Path(model_dir)
        record = {"kind": self.kind}
        for key, path in self.paths.items():
            if path is not None:
                record[key] = os.path.relpath(Path(path).resolve(), model_dir.resolve())
        if self.p_target is not None:
            record["p_target"] = self.p_target
        out = model_dir / RECORD
        text = ("# The back-end sid.Embedder and sid.bin.verify --exp score this model with "
                "(sid.bin.record_backend);\n# paths relative to this dir.\n" + yaml.safe_dump(record, sort_keys=False))
        if out.is_file() and out.read_text(encoding="utf-8") == text:
            return out   # (unchanged: a rerun of the recipe rewrites nothing)
        with atomic_path(out) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return out

    @classmethod
    def of_model(cls, model_dir: str | Path) -> "Backend | None":
        """The back-end ``<model-dir>/backend.yaml`` records, or None when there is none."""
        import yaml

        path = Path(model_dir) / RECORD
        if not path.exists():
            return None
        try:
            record = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise SidError(f"cannot read {path}: {err}") from None
        allowed = ("kind", "dir", "cohort", "threshold_file", "p_target")
        if not isinstance(record, dict) or "kind" not in record or "dir" not in record:
            raise SidError(f"{path}: expected a mapping with kind and dir (written by sid.bin.record_backend)")
        unknown = [k for k in record if k not in allowed]
        if unknown:
            raise SidError(f"{path}: unknown key '{unknown[0]}'; allowed: {', '.join(allowed)}")

        def where(key):
            return None if record.get(key) is None else Path(model_dir) / record[key]
        try:
            return cls(record["kind"], where("dir"), where("cohort"), where("threshold_file"), record.get("p_target"))
        except SidError as err:
            raise SidError(f"{path}: {err}") from None

    # -- scoring ------------------------------------------------------------------------------------
    def score(self, a: np.ndarray, b: np.ndarray, dur_a: float | None = None, dur_b: float | None = None) -> float:
        """The score of one pair as the scoring steps compute it for a trial (durations in seconds:
        QMF needs them)."""
        x = np.stack([np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)])
        if self.kind == "plda":
            from sid.backend import pipeline

            y = self.plda.transform_vectors(pipeline.prepare(x, self.mean, self.transform), 1)[0]
            return float(self.plda.log_likelihood_ratios(y[:1], np.ones(1), y[1:], np.zeros(1, int),
                                                         np.zeros(1, int))[0])
        from sid.backend.qmf import asnorm_trials, features

        if dur_a is None or dur_b is None:
            raise SidError("QMF calibration needs both durations (seconds): score(a, b, dur_a, dur_b)")
        x = x - self.mean.astype(np.float32)
        _, asnorm, imposter = asnorm_trials(x, self.cohort, np.array([0]), np.array([1]), self.qmf.top_n)
        q = features(asnorm, np.array([dur_a]), np.array([dur_b]), imposter[:1], imposter[1:])
        return float(self.qmf(q)[0])
