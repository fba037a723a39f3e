"""The documentation: gallery examples run, and their figures show what they claim.

Every ``examples/**/plot_*.py`` runs here (in-process, matplotlib's Agg
backend), so a broken example fails the suite as it would fail ``make docs``.
The claim of each figure is then checked on the example's own data and fitted
models, read from the globals of its run. The Sphinx build is the last test,
run when the docs extra is installed; it renders the gallery without running
it again.
"""

import math
import runpy
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402

from skentropy import MaxMarginEntropyClustering  # noqa: E402
from skentropy.plotting import plot_decision_regions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The examples and the Sphinx build: outside make check.
pytestmark = pytest.mark.slow
EXAMPLES = sorted((ROOT / "examples").glob("**/plot_*.py"))
_RUNS = {}


def run_example(name):
    """Globals of a run of the gallery example ``name`` (run once per session)."""
    if name not in _RUNS:
        (path,) = [p for p in EXAMPLES if p.stem == name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _RUNS[name] = runpy.run_path(str(path), run_name="__main__")
        plt.close("all")
    return _RUNS[name]


def test_gallery_is_not_empty():
    names = {p.stem for p in EXAMPLES}
    assert {
        "plot_kmeans_vs_entropy",
        "plot_margin_gamma",
        "plot_forward_reverse",
        "plot_collision_vs_shannon",
        "plot_digits_pipeline",
        "plot_grid_search_gamma",
        "plot_weak_supervision",
        "plot_compare_estimators",
        "plot_neighbor_views",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path):
    run_example(path.stem)


# -- Claims of the figures, on the examples' own data --------------------------


def test_kmeans_splits_anisotropic_clusters_wrongly():
    """Fig. 1: K-means cuts the stretched blobs across, entropy clustering not."""
    run = run_example("plot_kmeans_vs_entropy")
    assert run["kmeans_ari"] < 0.7
    assert run["entropy_ari"] > 0.85
    assert run["entropy_ari"] > run["kmeans_ari"] + 0.2


def test_margin_grows_with_gamma():
    """Supplement Fig. 4: 1/‖v₁ − v₂‖ grows with γ, the partition does not change."""
    run = run_example("plot_margin_gamma")
    margins = [run["margins"][gamma] for gamma in run["gammas"]]
    assert all(b > 1.2 * a for a, b in zip(margins, margins[1:], strict=False))
    labels = [run["models"][gamma].labels_ for gamma in run["gammas"]]
    y = run["y"]
    for found in labels:
        agreement = np.mean(found == y)
        assert max(agreement, 1 - agreement) == 1.0


def test_margin_band_is_pale_in_the_gap():
    """The σ-weighted colours fade in a band that widens with γ."""
    run = run_example("plot_margin_gamma")
    X = run["X"]
    widths = []
    for gamma in run["gammas"]:
        fig, ax = plt.subplots()
        plot_decision_regions(run["models"][gamma], X, ax=ax, grid_resolution=100)
        alpha = ax.images[0].get_array()[..., 3]
        widths.append(np.mean(alpha < 0.5))
        plt.close(fig)
    assert all(b > a for a, b in zip(widths, widths[1:], strict=False))


def test_forward_and_reverse_curves():
    """Fig. 2: reverse KL and reverse CE stay bounded, their forward forms do not."""
    run = run_example("plot_forward_reverse")
    x = run["x"]
    for name, u in run["priors"].items():
        assert run["reverse_kl"][name][[0, -1]].max() <= -math.log(min(u)) + 1e-6
        # Forward KL(u‖σ̄) at the end points of the grid (1e-4 from 0 and 1)
        # already exceeds every value of the reverse one, and grows towards them.
        assert run["forward_kl"][name][[0, -1]].max() > run["reverse_kl"][name].max()
        assert run["forward_kl"][name][0] > run["forward_kl"][name][1]
    for name, y in run["labels"].items():
        bound = -math.log(min(y))
        assert run["reverse_ce"][name].max() <= bound + 1e-9
        assert run["forward_ce"][name].max() > bound + 1
        # H(y, σ) is minimized at σ = y: it copies the label's uncertainty.
        assert abs(x[np.argmin(run["forward_ce"][name])] - y[0]) < 0.01
    uniform = run["reverse_ce"]["y₂ = (0.5, 0.5)"]
    np.testing.assert_allclose(uniform, math.log(2), rtol=1e-9)


def test_collision_cross_entropy_curves():
    """Collision Fig. 1: H₂ is bounded for soft y and flat for y = (0.5, 0.5)."""
    run = run_example("plot_collision_vs_shannon")
    for name, (y, _) in run["pseudo_labels"].items():
        assert run["collision"][name].max() <= -math.log(min(y)) + 1e-9
        assert run["shannon"][name].max() > -math.log(min(y)) + 1
        assert np.all(run["shannon"][name][[0, -1]] > run["collision"][name][[0, -1]])
    np.testing.assert_allclose(
        run["collision"]["y₃ = (0.5, 0.5)"], math.log(2), rtol=1e-9
    )


def test_digits_pipeline_beats_kmeans():
    run = run_example("plot_digits_pipeline")
    assert run["entropy_accuracy"] > run["kmeans_accuracy"] + 0.1
    np.testing.assert_allclose(run["probs"].sum(axis=1), 1.0, rtol=1e-5)


def test_grid_search_gamma_scores():
    """The papers' γ = 0.02 beats K-means on every form of the digits input."""
    run = run_example("plot_grid_search_gamma")
    assert run["search"].best_params_["gamma"] in (1e-3, 1e-2, 2e-2)
    at_papers_value = run["gammas"].index(2e-2)
    for name, curve in run["accuracy"].items():
        assert curve[at_papers_value] >= run["kmeans_accuracy"][name], name


def test_weak_supervision_helps():
    run = run_example("plot_weak_supervision")
    accuracies = run["accuracies"]
    assert accuracies[0] < 0.5  # no labels: cluster indices are arbitrary
    assert accuracies[-1] > 0.85
    assert all(b > a for a, b in zip(accuracies, accuracies[1:], strict=False))


def test_compare_estimators_find_the_blobs():
    run = run_example("plot_compare_estimators")
    scores = run["scores"]
    assert set(scores) == set(run["estimators"])
    # What the example's closing text says: every estimator, with its
    # defaults, finds the blobs (MIGD's single start merged two at lr=0.01).
    assert min(scores.values()) > 0.85


def test_choose_k_and_gamma_without_labels():
    """Stability picks K near the ten classes and a γ that labels would accept."""
    run = run_example("plot_choose_k_and_gamma")
    assert 8 <= run["result"].n_clusters <= 12
    stability, accuracy = run["stability"], run["accuracy"]
    # The γ chosen without labels loses little held-out accuracy, and the
    # largest γ, which empties clusters, is not chosen.
    assert accuracy[np.argmax(stability)] > accuracy.max() - 0.05
    assert stability[-1] < stability.max()


def test_neighbor_views_beat_plain_and_kmeans():
    run = run_example("plot_neighbor_views")
    assert run["purity"] > 0.9
    scores = run["scores"]
    for score in ("accuracy", "NMI"):
        assert scores["n_neighbors=10"][score] > scores["EntropyClustering"][score]
        assert scores["n_neighbors=10"][score] > scores["K-means"][score] + 0.1


# -- The plotting helper ------------------------------------------------------


def test_plot_decision_regions_fades_at_the_boundary():
    X, _ = make_blobs(n_samples=100, centers=[[-3, 0], [3, 0]], random_state=0)
    model = MaxMarginEntropyClustering(n_clusters=2, random_state=0).fit(X)
    fig, ax = plt.subplots()
    plot_decision_regions(model, X, ax=ax, grid_resolution=41)
    image = ax.images[0].get_array()
    plt.close(fig)
    assert image.shape == (41, 41, 4)
    alpha = image[..., 3]
    # Opaque far from the boundary, pale somewhere in between.
    assert alpha[:, 0].min() > 0.9 and alpha[:, -1].min() > 0.9
    assert alpha.min() < 0.2


def test_plot_decision_regions_checks_input():
    X, _ = make_blobs(n_samples=30, n_features=3, centers=2, random_state=0)
    model = MaxMarginEntropyClustering(n_clusters=2, max_iter=2, random_state=0)
    with pytest.raises(ValueError, match="two columns"):
        plot_decision_regions(model.fit(X), X)
    model.fit(X[:, :2])
    with pytest.raises(ValueError, match="colors"):
        plot_decision_regions(model, X[:, :2], colors=["red"])
    plt.close("all")


# -- The full build -------------------------------------------------------------


@pytest.mark.slow
def test_docs_build(tmp_path):
    """``make docs`` in a temporary copy, without running the gallery: no warning.

    The examples ran in :func:`test_example_runs` already, so Sphinx only
    renders them here (``plot_gallery=0``), leaving their figures out: the
    figure directives of the user guide that show them cannot read their
    images (``image.not_readable``, the one kind of warning suppressed).
    ``make docs`` runs the examples in the build.
    """
    pytest.importorskip("sphinx")
    pytest.importorskip("sphinx_gallery")
    pytest.importorskip("numpydoc")
    pytest.importorskip("pydata_sphinx_theme")
    source = tmp_path / "repo"
    shutil.copytree(
        ROOT / "docs",
        source / "docs",
        ignore=shutil.ignore_patterns("_build", "auto_examples", "gen_modules"),
    )
    shutil.copytree(ROOT / "examples", source / "examples")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-D",
            "plot_gallery=0",
            "-D",
            "suppress_warnings=image.not_readable",
            str(source / "docs"),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "html" / "auto_examples" / "index.html").exists()
