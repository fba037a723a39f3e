"""Tests for skentropy.model_selection: label-free choice of K and γ."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skentropy.model_selection
from skentropy import EntropyClustering, MaxMarginEntropyClustering
from skentropy.metrics import stability_score
from skentropy.model_selection import (
    gaussian_reference,
    select_n_clusters,
    unsupervised_scorer,
)
from skentropy.plotting import plot_n_clusters_selection

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Three well separated blobs (distance 10, unit spread) and a grid around 3.
CENTERS = [[0, 0], [10, 0], [5, 9]]


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=240, centers=CENTERS, random_state=0)
    return X * 50 + 7  # the scorer works on any scale, as the estimators do


def fast_model(**params):
    # lr=0.01: these short trainings of 2-D toy data were set at the step that
    # lr="auto" gives 1,280 features; "auto" steps 4 times larger on 2
    # features, where 20 epochs and the stability of the splits differ
    # (the 4-blob test below chose K = 5 with the uncapped 0.25)
    return MaxMarginEntropyClustering(max_iter=20, random_state=0, lr=0.01, **params)


# -- unsupervised_scorer ---------------------------------------------------------


def test_grid_search_without_labels_finds_the_number_of_blobs(blobs):
    # error_score="raise": GridSearchCV would otherwise turn an exception of
    # the scorer into a NaN score and a warning.
    search = GridSearchCV(
        fast_model(),
        {"n_clusters": [2, 3, 4, 5]},
        scoring=unsupervised_scorer,
        cv=2,
        error_score="raise",
    ).fit(blobs)
    assert search.best_params_ == {"n_clusters": 3}
    assert search.cv_results_["mean_test_score"][1] > 0.9


def test_scorer_in_a_pipeline_refits_the_whole_pipeline(blobs):
    pipeline = make_pipeline(StandardScaler(), fast_model(n_clusters=3))
    train, test = next(KFold(2, shuffle=True, random_state=0).split(blobs))
    fitted = pipeline.fit(blobs[train])
    score = unsupervised_scorer(fitted, blobs[test])
    # The same computation by hand: the clone is the whole pipeline (its
    # scaler fitted on the held-out fold), with a seed derived from 0.
    seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max)
    refit = make_pipeline(StandardScaler(), fast_model(n_clusters=3))
    refit.set_params(maxmarginentropyclustering__random_state=seed)
    labels = refit.fit(blobs[test]).predict(blobs[test])
    assert score == stability_score(fitted.predict(blobs[test]), labels, n_clusters=3)
    assert score > 0.9

    search = GridSearchCV(
        pipeline,
        {"maxmarginentropyclustering__n_clusters": [2, 3, 4]},
        scoring=unsupervised_scorer,
        cv=2,
        error_score="raise",
    ).fit(blobs)
    assert search.best_params_ == {"maxmarginentropyclustering__n_clusters": 3}


@pytest.mark.slow
def test_scorer_with_n_jobs_matches_one_job_and_pickles(blobs):
    grid = {"n_clusters": [2, 3], "gamma": [1e-4, 1e-3]}
    results = [
        GridSearchCV(
            fast_model(),
            grid,
            scoring=unsupervised_scorer,
            cv=2,
            n_jobs=n_jobs,
            error_score="raise",
        )
        .fit(blobs)
        .cv_results_
        for n_jobs in (1, 2)
    ]
    scores = [result["mean_test_score"] for result in results]
    np.testing.assert_array_equal(scores[0], scores[1])
    # Real scores, not NaN: the settings with three clusters score high.
    assert np.isfinite(scores[1]).all()
    three = np.asarray(results[1]["param_n_clusters"]) == 3
    assert three.sum() == 2
    assert scores[1][three].min() > 0.9
    assert pickle.loads(pickle.dumps(unsupervised_scorer)) is unsupervised_scorer


def test_scorer_is_deterministic_given_random_state(blobs):
    model = fast_model(n_clusters=4).fit(blobs[:120])
    first = unsupervised_scorer(model, blobs[120:])
    assert unsupervised_scorer(model, blobs[120:]) == first


def test_scorer_works_for_other_clusterers(blobs):
    scores = {
        k: cross_val_score(
            KMeans(k, n_init=3, random_state=0),
            blobs,
            scoring=unsupervised_scorer,
            cv=2,
            error_score="raise",
        ).mean()
        for k in (2, 3, 4)
    }
    assert max(scores, key=scores.get) == 3


def test_scorer_rejects_a_fold_smaller_than_n_clusters(blobs):
    model = fast_model(n_clusters=5).fit(blobs)
    with pytest.raises(ValueError, match="fewer than n_clusters=5"):
        unsupervised_scorer(model, blobs[:4])


# -- select_n_clusters -----------------------------------------------------------


def test_select_n_clusters_returns_what_it_documents(blobs):
    result = select_n_clusters(
        fast_model(), blobs, [4, 2, 3], n_repeats=2, random_state=0
    )
    assert result.param_name == "n_clusters"
    np.testing.assert_array_equal(result.candidates, [2, 3, 4])
    # 2 splits: 4 fits per candidate, every pair of them compared.
    assert result.pairs == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert result.scores.shape == (3, 6)
    np.testing.assert_allclose(result.mean_score, result.scores.mean(axis=1))
    np.testing.assert_allclose(result.std_score, result.scores.std(axis=1))
    assert result.n_clusters == result.candidates[np.argmax(result.mean_score)] == 3
    assert len(result.halves) == 4
    for r in range(2):
        half_a, half_b = result.halves[2 * r], result.halves[2 * r + 1]
        np.testing.assert_array_equal(
            np.sort(np.concatenate([half_a, half_b])), np.arange(len(blobs))
        )
    assert not np.array_equal(result.halves[0], result.halves[2])


@pytest.mark.slow
def test_select_n_clusters_scores_pairs_of_fits_with_their_own_seeds(blobs):
    result = select_n_clusters(fast_model(), blobs, [2, 3], n_repeats=2, random_state=0)
    # Fit f is the estimator with the f-th derived seed on half f; the
    # stability of column p compares the labels of all rows by the fits of
    # pair p, on X and on the Gaussian reference drawn after the splits.
    rng = np.random.RandomState(0)
    for _ in range(2):
        rng.permutation(len(blobs))
    reference = gaussian_reference(blobs, random_state=rng)
    seeds = [0, *np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=3)]
    k = 3
    for data, stability in (
        (blobs, result.stability),
        (reference, result.reference_stability),
    ):
        labels = [
            fast_model(n_clusters=k)
            .set_params(random_state=int(seed))
            .fit(data[half])
            .predict(data)
            for seed, half in zip(seeds, result.halves, strict=True)
        ]
        for p, (f, g) in enumerate(result.pairs):
            assert stability[1, p] == stability_score(
                labels[f], labels[g], n_clusters=k
            )
    np.testing.assert_array_equal(
        result.scores, result.stability - result.reference_stability
    )
    # The second fit's seed is the one unsupervised_scorer gives its clone.
    model = fast_model(n_clusters=k).fit(blobs[result.halves[0]])
    clone_labels = (
        fast_model(n_clusters=k)
        .set_params(random_state=int(seeds[1]))
        .fit(blobs[result.halves[1]])
        .predict(blobs)
    )
    assert result.stability[1, 0] == stability_score(
        model.predict(blobs), clone_labels, n_clusters=k
    )


def test_select_n_clusters_without_a_reference_scores_x_alone(blobs):
    with_reference = select_n_clusters(
        fast_model(), blobs, [2, 3], n_repeats=1, random_state=0
    )
    alone = select_n_clusters(
        fast_model(), blobs, [2, 3], n_repeats=1, random_state=0, reference=None
    )
    assert alone.reference_stability is None
    np.testing.assert_array_equal(alone.scores, alone.stability)
    np.testing.assert_array_equal(alone.stability, with_reference.stability)


@pytest.mark.slow
def test_the_reference_removes_the_stability_of_a_structureless_cloud():
    # One elongated Gaussian: halving it along its long axis is found again
    # every time, so stability alone prefers K = 2; on its own reference the
    # same split is as stable, and the corrected scores are all near 0.
    X = np.random.default_rng(0).normal(size=(400, 2)) * [4.0, 1.0]
    result = select_n_clusters(fast_model(), X, [2, 3, 4], n_repeats=2, random_state=0)
    assert result.stability.mean(axis=1)[0] > 0.75
    assert np.abs(result.mean_score).max() < 0.15
    blobs_result = select_n_clusters(
        fast_model(),
        make_blobs(n_samples=300, centers=CENTERS, random_state=0)[0],
        [2, 3, 4],
        n_repeats=2,
        random_state=0,
    )
    assert blobs_result.n_clusters == 3
    assert blobs_result.mean_score[1] > 0.5


def test_gaussian_reference_has_the_mean_and_covariance_of_x(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 3)) @ [[2.0, 0, 0], [1, 1, 0], [0, 0.5, 0.1]] + 5.0
    for data in (X, X.astype(np.float32)):
        reference = gaussian_reference(data, random_state=0)
        assert reference.shape == X.shape and reference.dtype == data.dtype
        np.testing.assert_allclose(reference.mean(axis=0), X.mean(axis=0), atol=0.05)
        np.testing.assert_allclose(np.cov(reference.T), np.cov(X.T), atol=0.1)
    path = tmp_path / "X.npy"
    np.save(path, X.astype(np.float32))
    np.testing.assert_array_equal(
        gaussian_reference(np.load(path, mmap_mode="r"), random_state=0),
        gaussian_reference(X.astype(np.float32), random_state=0),
    )
    # Fewer rows than features: the covariance is singular, the draw lies
    # in the span of the rows.
    few = rng.normal(size=(5, 10))
    reference = gaussian_reference(few, random_state=0)
    assert np.isfinite(reference).all()
    assert np.linalg.matrix_rank(reference - few.mean(axis=0), tol=1e-6) <= 4


@pytest.mark.parametrize(
    "X",
    [
        sparse.random(10, 3, density=0.5, format="csr", random_state=0),
        np.array([["a", "b"], ["c", "d"], ["e", "f"]]),
        np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]),
        np.ones((1, 3)),
    ],
    ids=["sparse", "strings", "nan", "one row"],
)
def test_gaussian_reference_rejects_what_it_cannot_draw_from(X):
    with pytest.raises(ValueError, match="reference=None"):
        gaussian_reference(X)


@pytest.mark.slow
def test_select_n_clusters_in_a_pipeline_and_in_parallel(blobs):
    pipeline = make_pipeline(StandardScaler(), fast_model())
    results = [
        select_n_clusters(
            pipeline, blobs, [2, 3, 4], n_repeats=1, random_state=0, n_jobs=n_jobs
        )
        for n_jobs in (1, 2)
    ]
    assert results[0].param_name == "maxmarginentropyclustering__n_clusters"
    assert results[0].n_clusters == 3
    np.testing.assert_array_equal(results[0].scores, results[1].scores)


def test_select_n_clusters_with_a_self_labeling_estimator():
    X, _ = make_blobs(n_samples=300, centers=CENTERS + [[-5, 9]], random_state=1)
    model = EntropyClustering(max_iter=20, random_state=0, lr=0.01)  # fast_model's
    result = select_n_clusters(model, X, [3, 4, 5], n_repeats=1, random_state=0)
    assert result.n_clusters == 4


@pytest.mark.parametrize(
    "candidates, message",
    [
        ([1, 2, 3], "at least 2"),
        ([], "non-empty"),
        ([2.5, 3], "integers"),
        ([3, 3], "distinct"),
        ([[2, 3]], "1-D"),
    ],
)
def test_select_n_clusters_rejects_bad_candidates(blobs, candidates, message):
    with pytest.raises(ValueError, match=message):
        select_n_clusters(fast_model(), blobs, candidates)


def test_select_n_clusters_rejects_bad_settings(blobs):
    with pytest.raises(ValueError, match="fewer than n_clusters=8"):
        select_n_clusters(fast_model(), blobs[:14], [2, 8])
    with pytest.raises(ValueError, match="n_repeats"):
        select_n_clusters(fast_model(), blobs, [2, 3], n_repeats=0)
    with pytest.raises(ValueError, match="reference must be"):
        select_n_clusters(fast_model(), blobs, [2, 3], reference="uniform")
    with pytest.raises(ValueError, match="no parameter 'k'"):
        select_n_clusters(fast_model(), blobs, [2, 3], param_name="k")


# -- plot_n_clusters_selection ---------------------------------------------------------


def test_plot_n_clusters_selection(blobs):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = select_n_clusters(
        fast_model(), blobs, [2, 3, 4], n_repeats=1, random_state=0
    )
    fig, ax = plt.subplots()
    assert plot_n_clusters_selection(result, ax=ax) is ax
    (line,) = ax.lines[:1]
    np.testing.assert_allclose(line.get_xdata(), result.candidates)
    np.testing.assert_allclose(line.get_ydata(), result.mean_score)
    assert ax.get_xlabel() == "n_clusters"
    plt.close(fig)


def test_moved_functions_are_re_exported():
    assert skentropy.model_selection.stability_score is stability_score
    assert (
        skentropy.model_selection.plot_n_clusters_selection is plot_n_clusters_selection
    )
    assert {"stability_score", "plot_n_clusters_selection"} <= set(
        skentropy.model_selection.__all__
    )


@pytest.mark.slow
def test_matplotlib_is_imported_lazily():
    code = "import sys, skentropy.model_selection; print('matplotlib' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"
