"""Quality-measure function (QMF) calibration of AS-normalised cosine scores (WeSpeaker's recipe).

A logistic regression maps each trial's quality vector

    [AS-norm score, log duration of enrolment, log duration of test,
     enrolment's and test's mean top-N cohort (imposter) scores]

to a log-likelihood ratio. It is trained on calibration trials drawn from the training
speakers (half target, half non-target, seeded), scored exactly as the evaluation
trials are: cosine of mean-subtracted embeddings, AS-norm against the speaker-mean
cohort, except that a trial side's own speaker is left out of its cohort (the
evaluation speakers are never in it). The regression is prior-weighted (Brümmer's
calibration objective): target trials weigh ``p_fit`` and non-target trials ``1 - p_fit`` in all,
and the log prior odds of ``p_fit`` are taken off the bias, so the output is an LLR whose
errors cost least around the operating point of ``p_fit``; the Bayes decision threshold for a
target prior ``p`` (costs 1) is ``log((1 - p) / p)``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sid.backend.scoring import cohort_stats, length_normalize, snorm
from sid.errors import SidError

FEATURES = ("asnorm_score", "log_dur_enroll", "log_dur_test", "imposter_mean_enroll", "imposter_mean_test")


def bayes_threshold(p_target: float) -> float:
    """The LLR threshold minimising the expected cost at prior ``p_target`` (c_miss = c_fa = 1)."""
    if not 0 < p_target < 1:
        raise SidError(f"target prior must be within (0, 1), got {p_target}")
    return math.log((1 - p_target) / p_target)


def draw_trials(utt2spk: dict[str, str], num_trials: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(enroll index, test index, is_target)`` into the sorted utterances: ``num_trials // 2``
    target pairs (distinct utterances of one speaker) and as many non-target pairs."""
    utts = sorted(utt2spk, key=str.encode)
    spks = np.array([utt2spk[u] for u in utts])
    _, spk_idx = np.unique(spks, return_inverse=True)
    by_spk = [np.flatnonzero(spk_idx == s) for s in range(spk_idx.max() + 1)]
    multi = [g for g in by_spk if len(g) > 1]
    if not multi or len(by_spk) < 2:
        raise SidError("calibration trials need at least two speakers, one of them with two utterances")
    rng = np.random.default_rng(seed)
    half = num_trials // 2
    groups = rng.integers(len(multi), size=half)
    e_t, t_t = np.empty(half, np.int64), np.empty(half, np.int64)
    for k, g in enumerate(groups):
        a, b = rng.choice(len(multi[g]), size=2, replace=False)
        e_t[k], t_t[k] = multi[g][a], multi[g][b]
    e_n = rng.integers(len(utts), size=half * 2)
    t_n = rng.integers(len(utts), size=half * 2)
    keep = spk_idx[e_n] != spk_idx[t_n]
    e_n, t_n = e_n[keep][:half], t_n[keep][:half]
    return (np.concatenate([e_t, e_n]), np.concatenate([t_t, t_n]),
            np.concatenate([np.ones(half, bool), np.zeros(len(e_n), bool)]))


def imposter_stats(vectors: np.ndarray, cohort: np.ndarray, top_n: int,
                   exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each length-normalised vector's ``top_n`` best cosine scores against
    the cohort; ``exclude[i]``: a cohort row to leave out for vector ``i`` (-1: none)."""
    v = length_normalize(vectors.astype(np.float64))
    c = length_normalize(cohort.astype(np.float64))
    n = min(top_n, len(c) - (1 if exclude is not None else 0))
    if n < 2:
        raise SidError(f"the cohort ({len(c)} vectors) is too small for AS-norm statistics")

    def rows(sl):
        block = v[sl] @ c.T
        if exclude is not None:
            ex = exclude[sl]
            hit = ex >= 0
            block[np.flatnonzero(hit), ex[hit]] = -np.inf
        return block

    return cohort_stats(rows, len(v), n)


def features(scores, dur_enroll, dur_test, imp_enroll, imp_test) -> np.ndarray:
    return np.stack([scores, np.log(dur_enroll), np.log(dur_test), imp_enroll, imp_test], axis=1)


class QMF:
    """The fitted logistic regression: ``llr = x @ weights + bias``, with ``top_n`` (the cohort
    size its imposter means were computed with)."""

    def __init__(self, weights, bias: float, top_n: int, num_trials: int = 0, p_fit: float = 0.5):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = float(bias)
        self.top_n = int(top_n)
        self.num_trials = num_trials
        self.p_fit = float(p_fit)

    @classmethod
    def fit(cls, x: np.ndarray, labels: np.ndarray, top_n: int, p_fit: float = 0.5) -> "QMF":
        """Logistic regression of ``labels`` on quality vectors ``x``, weighted for target prior ``p_fit``."""
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels, dtype=bool)
        if not 0 < p_fit < 1:
            raise SidError(f"the calibration prior must be within (0, 1), got {p_fit}")
        # Standardised inputs for the solver; the weights are mapped back to raw features.
        mu, sd = x.mean(axis=0), x.std(axis=0)
        sd[sd == 0] = 1.0
        weight = np.where(labels, p_fit / labels.sum(), (1 - p_fit) / (~labels).sum()) * len(labels)
        lr = LogisticRegression(C=1e4, max_iter=1000)
        lr.fit((x - mu) / sd, labels, sample_weight=weight)
        w = lr.coef_[0] / sd
        bias = float(lr.intercept_[0] - w @ mu) - math.log(p_fit / (1 - p_fit))
        return cls(w, bias, top_n, len(labels), p_fit)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weights + self.bias

    def save(self, path: str | Path) -> None:
        from sid.data.table import atomic_path

        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump({"features": list(FEATURES), "weights": self.weights.tolist(), "bias": self.bias,
                       "top_n": self.top_n, "num_trials": self.num_trials, "p_fit": self.p_fit}, f, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path: str | Path) -> "QMF":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            if d["features"] != list(FEATURES):
                raise ValueError(f"features {d['features']}, expected {list(FEATURES)}")
            return cls(d["weights"], d["bias"], d["top_n"], d.get("num_trials", 0), d.get("p_fit", 0.5))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SidError(f"{path}: not a QMF model ({err})") from None


def asnorm_trials(emb: np.ndarray, cohort: np.ndarray, ei: np.ndarray, ti: np.ndarray, top_n: int,
                  exclude: np.ndarray | None = None):
    """Cosine and AS-norm scores of trials (rows ``ei``/``ti`` of ``emb``) and each row's imposter mean."""
    e = length_normalize(emb.astype(np.float64))
    raw = np.einsum("ij,ij->i", e[ei], e[ti])
    mean, std = imposter_stats(emb, cohort, top_n, exclude)
    return raw, snorm(raw, ei, ti, (mean, std), (mean, std)), mean
