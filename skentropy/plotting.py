"""Plots of soft clusterings in two dimensions and of the choice of K.

:func:`plot_decision_regions` draws the soft decision regions of a 2-D
clusterer; :func:`plot_n_clusters_selection` the stability scores of
:func:`skentropy.model_selection.select_n_clusters`. matplotlib is imported
only when a function is called, so that the package does not depend on it
(install it with the ``docs`` extra).
"""

import numpy as np

__all__ = ["plot_decision_regions", "plot_n_clusters_selection"]

# Cluster colours: matplotlib's "tab10" cycle, repeated for more clusters.
_TAB10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def plot_decision_regions(
    estimator,
    X,
    *,
    ax=None,
    grid_resolution=200,
    padding=0.1,
    colors=None,
):
    """Draw the soft decision regions of a fitted 2-D clusterer.

    Every point x of a grid over the bounding box of ``X`` gets the colour of
    its most likely cluster, argmax_k σ_k(x), faded towards white by the
    confidence of the prediction: the opacity is
    (max_k σ_k(x) − 1/K) / (1 − 1/K), 0 where σ(x) is uniform and 1 where it
    is one-hot. The weak-confidence band around a linear decision boundary,
    the soft margin, stays pale. This is the σ-weighted colour transparency of
    Fig. 1(b) of Zhang et al. and of Fig. 4 of its supplement.

    Parameters
    ----------
    estimator : estimator instance
        A fitted clusterer with ``predict_proba`` and ``n_clusters``, trained
        on two features.

    X : array-like of shape (n_samples, 2)
        Data whose bounding box (widened by ``padding``) the grid covers,
        usually the training data.

    ax : matplotlib Axes, default=None
        Axes to draw on. ``None`` uses the current axes.

    grid_resolution : int, default=200
        Number of grid points along each axis.

    padding : float, default=0.1
        Margin added on each side of the bounding box of ``X``, as a share of
        its width and height.

    colors : list of str, default=None
        One matplotlib colour per cluster. ``None`` uses the ``tab10`` cycle.

    Returns
    -------
    ax : matplotlib Axes
        The axes with the regions drawn as an image (data points are not
        drawn; add them with ``ax.scatter``).

    References
    ----------
    Zhang, Z., Boykov, Y. et al., "Discriminative Entropy Clustering and its
    Relation to K-means and SVM".

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import make_blobs
    >>> from skentropy import MaxMarginEntropyClustering
    >>> from skentropy.plotting import plot_decision_regions
    >>> X, _ = make_blobs(n_samples=100, centers=2, random_state=0)
    >>> clustering = MaxMarginEntropyClustering(n_clusters=2, random_state=0)
    >>> clustering = clustering.fit(X)
    >>> fig, ax = plt.subplots()
    >>> ax = plot_decision_regions(clustering, X, ax=ax, grid_resolution=50)
    >>> ax.images[0].get_array().shape
    (50, 50, 4)
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have two columns, got shape {X.shape}.")
    if ax is None:
        ax = plt.gca()
    n_clusters = estimator.n_clusters
    if colors is None:
        colors = [_TAB10[k % len(_TAB10)] for k in range(n_clusters)]
    if len(colors) < n_clusters:
        raise ValueError(f"colors has {len(colors)} entries for {n_clusters} clusters.")

    low, high = X.min(axis=0), X.max(axis=0)
    pad = padding * (high - low)
    low, high = low - pad, high + pad
    xs = np.linspace(low[0], high[0], grid_resolution)
    ys = np.linspace(low[1], high[1], grid_resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)
    grid = np.c_[grid_x.ravel(), grid_y.ravel()].astype(X.dtype)

    probs = np.asarray(estimator.predict_proba(grid))
    rgb = np.array([to_rgb(c) for c in colors[:n_clusters]])[probs.argmax(axis=1)]
    # Opacity: confidence above the uniform prediction, scaled to [0, 1].
    uniform = 1.0 / n_clusters
    alpha = np.clip((probs.max(axis=1) - uniform) / (1.0 - uniform), 0.0, 1.0)
    image = np.c_[rgb, alpha].reshape(grid_resolution, grid_resolution, 4)
    ax.imshow(
        image,
        origin="lower",
        extent=(low[0], high[0], low[1], high[1]),
        aspect="auto",
        interpolation="bilinear",
    )
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    return ax


def plot_n_clusters_selection(result, *, ax=None):
    """Plot the stability scores of ``select_n_clusters`` against K.

    Draws the mean score of each candidate with a bar of ± one standard
    deviation over the pairs of fits, and marks the chosen number of clusters.
    matplotlib is imported only when this function is called.

    Parameters
    ----------
    result : :class:`~sklearn.utils.Bunch`
        The result of :func:`~skentropy.model_selection.select_n_clusters`.

    ax : matplotlib Axes, default=None
        Axes to draw on. ``None`` uses the current axes.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn.utils import Bunch
    >>> from skentropy.plotting import plot_n_clusters_selection
    >>> result = Bunch(
    ...     n_clusters=3, candidates=np.array([2, 3, 4]),
    ...     mean_score=np.array([0.6, 0.9, 0.5]),
    ...     std_score=np.array([0.1, 0.05, 0.1]), param_name="n_clusters",
    ... )
    >>> ax = plot_n_clusters_selection(result)
    >>> ax.get_xlabel()
    'n_clusters'
    """
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.gca()
    ax.errorbar(
        result.candidates,
        result.mean_score,
        yerr=result.std_score,
        fmt="o-",
        capsize=3,
        label="stability (mean ± std over pairs of fits)",
    )
    ax.axvline(
        result.n_clusters,
        color="grey",
        linestyle="--",
        label=f"chosen: {result.n_clusters}",
    )
    ax.set_xlabel(result.param_name.rsplit("__", 1)[-1])
    ax.set_ylabel("stability score")
    ax.set_xticks(result.candidates)
    ax.legend()
    return ax
