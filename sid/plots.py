"""Score and embedding plots (matplotlib, PNG): DET curves, score histograms, t-SNE maps.

DET curves use normal-deviate (probit) axes as in NIST's DET plots; each
curve's EER point is marked. Histograms show target and non-target score
densities on shared bins (what voxceleb_trainer users draw with
plot_score_histograms.py). t-SNE maps embeddings of a few speakers to 2-D
(scikit-learn), one colour per speaker.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from sid.data.table import atomic_path  # noqa: E402

_DET_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_det(curves: dict, path, title: str = "") -> None:
    """``curves``: name -> (false-alarm rates, miss rates, EER in percent)."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    lo, hi = norm.ppf(_DET_TICKS[0]), norm.ppf(_DET_TICKS[-1] + 0.1)
    for name, (fpr, fnr, eer) in curves.items():
        x = norm.ppf(np.clip(fpr, 1e-6, 1 - 1e-6))
        y = norm.ppf(np.clip(fnr, 1e-6, 1 - 1e-6))
        line, = ax.plot(x, y, label=f"{name} (EER {eer:.2f}%)")
        e = norm.ppf(min(max(eer / 100.0, 1e-6), 1 - 1e-6))
        ax.plot([e], [e], "o", color=line.get_color())
    ax.plot([lo, hi], [lo, hi], ":", color="grey", linewidth=0.8)
    ticks = norm.ppf(_DET_TICKS)
    labels = [f"{100 * t:g}" for t in _DET_TICKS]
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.grid(True, linewidth=0.4)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "DET")
    _save(fig, path)


def plot_histograms(target: np.ndarray, nontarget: np.ndarray, path, title: str = "", bins: int = 80) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    edges = np.histogram_bin_edges(np.concatenate([target, nontarget]), bins=bins)
    ax.hist(nontarget, bins=edges, density=True, alpha=0.55, color="tab:red",
            label=f"non-target ({len(nontarget)})")
    ax.hist(target, bins=edges, density=True, alpha=0.55, color="tab:green", label=f"target ({len(target)})")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title(title or "Score distributions")
    _save(fig, path)


def plot_tsne(embeddings: np.ndarray, speakers: list[str], path, title: str = "", seed: int = 0,
              perplexity: float = 30.0) -> None:
    """2-D t-SNE of length-normalised embeddings, one colour (and legend entry) per speaker."""
    from sklearn.manifold import TSNE

    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    perplexity = min(perplexity, (len(x) - 1) / 3.0)
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    fig, ax = plt.subplots(figsize=(6.5, 6))
    names = sorted(set(speakers))
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    spk = np.array(speakers)
    for i, name in enumerate(names):
        sel = spk == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=12, color=cmap(i % cmap.N), label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(names) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    ax.set_title(title or f"t-SNE of {len(x)} embeddings, {len(names)} speakers")
    _save(fig, path)
