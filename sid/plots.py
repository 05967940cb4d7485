"""Score and embedding plots (matplotlib, PNG): DET curves, score histograms, t-SNE maps.

DET curves use normal-deviate (probit) axes as in NIST's DET plots; each
curve's EER point is marked. Histograms show target and non-target score
densities on shared bins (what voxceleb_trainer users draw with
plot_score_histograms.py). t-SNE (scikit-learn) and UMAP (umap-learn) map the
embeddings of a few speakers to 2-D, one colour per speaker. The similarity matrix
shows the cosine scores of N speakers x M utterances each, ordered by speaker: a
good model draws bright M x M blocks on the diagonal on a dark background (the
picture of the GE2E paper).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
# The normal quantile (scipy.stats' norm.ppf is this function; scipy.stats takes 0.5 s to import).
from scipy.special import ndtri  # noqa: E402

from sid.data.table import atomic_path  # noqa: E402

_DET_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_det(curves: dict, path, title: str = "") -> None:
    """``curves``: name -> (false-alarm rates, miss rates, EER in percent)."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    lo, hi = ndtri(_DET_TICKS[0]), ndtri(_DET_TICKS[-1] + 0.1)
    for name, (fpr, fnr, eer) in curves.items():
        x = ndtri(np.clip(fpr, 1e-6, 1 - 1e-6))
        y = ndtri(np.clip(fnr, 1e-6, 1 - 1e-6))
        line, = ax.plot(x, y, label=f"{name} (EER {eer:.2f}%)")
        e = ndtri(min(max(eer / 100.0, 1e-6), 1 - 1e-6))
        ax.plot([e], [e], "o", color=line.get_color())
    ax.plot([lo, hi], [lo, hi], ":", color="grey", linewidth=0.8)
    ticks = ndtri(_DET_TICKS)
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


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def plot_tsne(embeddings: np.ndarray, speakers: list[str], path, title: str = "", seed: int = 0,
              perplexity: float = 30.0) -> None:
    """2-D t-SNE of length-normalised embeddings, one colour (and legend entry) per speaker."""
    from sklearn.manifold import TSNE

    x = _unit(embeddings)
    perplexity = min(perplexity, (len(x) - 1) / 3.0)
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    _scatter(xy, speakers, path, title or f"t-SNE of {len(x)} embeddings, {len(set(speakers))} speakers")


def plot_umap(embeddings: np.ndarray, speakers: list[str], path, title: str = "", seed: int = 0,
              neighbours: int = 15) -> None:
    """2-D UMAP (cosine metric) of the embeddings, one colour per speaker."""
    import umap

    x = _unit(embeddings)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(neighbours, len(x) - 1), metric="cosine", random_state=seed,
                        n_jobs=1)
    xy = reducer.fit_transform(x)
    _scatter(xy, speakers, path, title or f"UMAP of {len(x)} embeddings, {len(set(speakers))} speakers")


def plot_similarity(embeddings: np.ndarray, speakers: list[str], path, title: str = "") -> None:
    """Cosine-similarity matrix of embeddings given grouped by speaker (N x M rows)."""
    x = _unit(embeddings)
    sim = x @ x.T
    names = list(dict.fromkeys(speakers))
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    # Colours span the matrix's own range: an undertrained model's cosines all sit near 1,
    # and a fixed 0..1 scale would hide whatever block structure there is.
    im = ax.imshow(sim, cmap="viridis", vmin=float(sim.min()), vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="cosine")
    starts = [speakers.index(n) for n in names]
    for s in starts[1:]:
        ax.axhline(s - 0.5, color="white", linewidth=0.4)
        ax.axvline(s - 0.5, color="white", linewidth=0.4)
    centres = [(a + b - 1) / 2 for a, b in zip(starts, starts[1:] + [len(speakers)])]
    ax.set_xticks(centres, names, rotation=90, fontsize=6)
    ax.set_yticks(centres, names, fontsize=6)
    ax.set_title(title or f"Cosine similarity, {len(names)} speakers x {len(x) // max(len(names), 1)} utterances")
    _save(fig, path)


def _scatter(xy: np.ndarray, speakers: list[str], path, title: str) -> None:
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
    ax.set_title(title)
    _save(fig, path)
