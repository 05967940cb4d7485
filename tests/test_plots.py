"""Plots: DET curves, score histograms and t-SNE maps are written as PNGs of the expected size."""

import matplotlib.image
import numpy as np
import pytest

from sid.metrics import det_points, eer_of, error_rates
from sid.plots import plot_det, plot_histograms, plot_tsne


def test_det_and_histograms(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(3000) < 300
    curves = {}
    for name, shift in (("good", 3.0), ("weak", 1.0)):
        scores = np.where(labels, rng.normal(shift, 1, 3000), rng.normal(0, 1, 3000))
        rates = error_rates(scores, labels)
        fpr, fnr = det_points(rates)
        curves[name] = (fpr, fnr, eer_of(rates) * 100.0)
        plot_histograms(scores[labels], scores[~labels], tmp_path / f"hist_{name}.png")
    plot_det(curves, tmp_path / "det.png", title="test")
    for f in ("det.png", "hist_good.png", "hist_weak.png"):
        img = matplotlib.image.imread(tmp_path / f)
        assert img.shape[0] > 300 and img.shape[1] > 300
        assert img[..., :3].std() > 0.05  # something was drawn
    assert curves["good"][2] < curves["weak"][2]


def test_tsne(tmp_path):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16)) * 3
    x = np.repeat(centres, 10, axis=0) + rng.normal(size=(40, 16))
    plot_tsne(x, [f"spk{i // 10}" for i in range(40)], tmp_path / "tsne.png", perplexity=10)
    img = matplotlib.image.imread(tmp_path / "tsne.png")
    assert img.shape[0] > 300 and img[..., :3].std() > 0.05


@pytest.mark.slow   # umap-learn compiles with numba on first use (cached afterwards)
def test_umap_and_similarity_matrix(tmp_path):
    from sid.plots import plot_similarity, plot_umap

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((4, 16)) * 3
    x = np.repeat(centres, 10, axis=0) + rng.standard_normal((40, 16))
    spk = [f"spk{i // 10}" for i in range(40)]
    plot_umap(x, spk, tmp_path / "umap.png")
    assert matplotlib.image.imread(tmp_path / "umap.png").shape[0] > 100
    plot_similarity(x, spk, tmp_path / "sim.png")
    img = matplotlib.image.imread(tmp_path / "sim.png")
    assert img.shape[0] > 100 and img.shape[1] > 100
