"""SeCu: cluster discrimination with size-bounded online hard assignment.

Qian's SeCu ("Stable Cluster Discrimination for Deep Clustering") on fixed
features: unit-norm features against unit-norm cluster centres with a
temperature τ, hard pseudo-labels assigned online under lower and upper
bounds on the cluster sizes through dual variables (supplement §2), and the
closed-form centre update of Theorem 1 (supplement §1.3, eq. 4). The
estimator; its training steps are in ``_secu_steps``.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from skentropy._estimators._atomic import atomic_fit
from skentropy._estimators._base import _CALLER, _warn_degenerate
from skentropy._estimators._batching import batch_bounds, to_tensor
from skentropy._estimators._docstrings import fill_doc
from skentropy._estimators._params import (
    check_n_samples,
    check_partial_labels,
    persistent_random_state,
    relative_sample_weight,
    validate_features,
)
from skentropy._estimators._secu_steps import (
    _normalize,
    cluster_log_probs,
    constrained_assignment,
    secu_epoch,
)
from skentropy._estimators._seeding import init_rows, init_size, seed_prototypes
from skentropy._torch_utils import resolve_device, torch_dtype, torch_generator


@fill_doc
class SeCuClustering(ClusterMixin, BaseEstimator):
    """Stable cluster discrimination (SeCu) with bounded cluster sizes.

    Rows of X are projected onto the unit sphere and clustered against K
    unit-norm centres w_j by the cluster-discrimination model

        p_ij = softmax_j(x_iᵀw_j / τ).

    Each epoch makes one pass over X in shuffled mini-batches. Every point of
    a mini-batch gets the hard label that minimizes −ln p_ij − ρ_j + ρ'_j,
    where the dual variables ρ ≥ 0 and ρ' ≥ 0 of the size constraints ::

        lower_ratio · N/K ≤ |cluster j| ≤ upper_ratio · N/K

    are then updated by one projected ascent step on the mini-batch. After
    the epoch the centres take the closed form of Theorem 1 for these labels,
    w_j ∝ Σ_{i: y_i = j} (1 − p_ij) x_i. This is the method of Qian,
    restricted to the clustering of fixed features.

    Parameters
    ----------
    n_clusters : int, default=8
        {n_clusters}

    temperature : float, default=0.3
        Temperature τ of the softmax over the cosine similarities x_iᵀw_j.
        Small values make p sharp, so that the centre update weighs the
        points near the cluster borders (1 − p_ij large) more. The paper uses
        0.05 on learned 128-d features; on fixed features smaller values than
        the default made the closed-form centre update oscillate between
        epochs in our runs on blobs.

    lower_ratio : float, default=0.9
        Ratio γ of the lower bound on the cluster sizes: every cluster should
        hold at least γ N/K of the N (weighted) training samples. 0 removes
        the bound, 1 asks for equal sizes. The paper uses 0.9 on small data
        sets and 0.4 on ImageNet.

    upper_ratio : float or None, default=None
        Ratio γ' of the upper bound on the cluster sizes: every cluster
        should hold at most γ' N/K samples. ``None`` removes the bound, which
        the paper finds unnecessary in its experiments.

    dual_lr : float, default=0.1
        Step size η_ρ of the dual ascent on ρ and ρ'. The duals are in units
        of ln p; a step moves them by η_ρ times the violation of a bound by
        the mini-batch's cluster fractions. Larger steps meet the bounds
        sooner but make the duals, and so the cluster sizes, fluctuate more.
        The paper uses 20 on ImageNet (K = 1000).

    max_iter : int, default=100
        {max_iter}

    batch_size : int, default=128
        {batch_size}

    tol : float, default=1e-2
        Tolerance of the stopping rule: training stops once no centre has
        moved by more than ``tol`` (Euclidean norm, the centres having unit
        norm) in each of ``n_iter_no_change`` epochs in a row. The training
        loss is no stopping signal here: it rises as the size bounds take
        hold. The online duals keep the centres moving a little, so a
        tolerance far below their fluctuation is never met.

    n_iter_no_change : int, default=5
        Number of consecutive epochs with centre moves of at most ``tol``
        that stop training.

    random_state : int, RandomState instance or None, default=None
        {random_state}

    verbose : int, default=0
        {verbose}

    device : {"auto", "cpu", "cuda"}, default="auto"
        {device}

    semi_supervised : bool, default=False
        Weak supervision. If True, ``fit(X, y)`` and ``partial_fit(X, y)`` read
        y, with a cluster index in 0..K−1 for each labeled sample and −1 for
        each unlabeled one: labeled samples keep their given cluster in every
        assignment (they count in the cluster sizes and the centres), and a
        cluster with labeled samples starts at their mean, so that cluster k
        means class k. If False, y is ignored.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Unit-norm centres w_j, in the dtype of the training data.

    lower_dual_ : ndarray of shape (n_clusters,)
        Dual variables ρ ≥ 0 of the lower size bounds.

    upper_dual_ : ndarray of shape (n_clusters,)
        Dual variables ρ' ≥ 0 of the upper size bounds (zero without an
        upper bound).

    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample, ``predict`` of the training data at
        the end of training.

    n_iter_ : int
        Number of epochs run.

    loss_curve_ : list of float
        Mean training loss, mean −ln p_{i y_i} of the epoch's hard labels, of
        each epoch.

    converged_ : bool
        Whether training stopped on the ``tol`` rule (centre moves) before
        ``max_iter``.

    {input_attributes}

    See Also
    --------
    EntropyClustering : Self-labeling with soft pseudo-labels and fairness.
    sklearn.cluster.KMeans : Clustering by distances to centroids.

    Notes
    -----
    What is trained. The paper trains an encoder f_θ together with the
    centres; its loss for the encoder is ℓ_SeCu with the negative centres
    w̃_k held fixed (stop-gradient). On fixed features there is no encoder,
    and this estimator trains the centres only, by their exact closed form.
    A trainable linear map in front of the normalization (the analogue of
    the Norm-FC head of the other estimators) was left out on purpose: SeCu
    learns its representation from augmented views, which fixed features do
    not have, and a linear map trained on the model's own hard labels only
    sharpens whatever partition it starts from, with an optimizer and its
    settings as the price.

    Centres (Theorem 1, supplement §1.3). With the labels y fixed, the
    centres minimize Σ_i −ln p_{i y_i} with the negatives w̃ fixed; their
    optimum satisfies w_j = Π(Σ_{i: y_i = j} (1 − p_ij) x_i /
    Σ_{i: y_i = j} (1 − p_ij)) (eq. 4), one projected gradient step with
    step 1. It is applied once per epoch with p computed from the centres of
    that epoch (which stay fixed during it) and the epoch's labels. As a
    fixed-point iteration it can overshoot: with the labels held fixed it
    converged at τ = 1 but ended in a 2-cycle at τ = 0.5 on random data, and
    with τ = 0.1 the centre of a cluster spanning two blobs flipped between
    them from epoch to epoch; hence the default τ = 0.3.

    Size bounds (supplement §2). The labels solve, online, the assignment
    problem min_y Σ_ij −y_ij ln p_ij subject to γN/K ≤ Σ_i y_ij ≤ γ'N/K:
    each mini-batch gets the closed-form labels for the current duals, then
    the duals take one projected step
    ρ_j ← max(0, ρ_j − η_ρ (f_j − γ/K)), ρ'_j ← max(0, ρ'_j + η_ρ (f_j − γ'/K))
    on the batch's cluster fractions f_j. The duals carry over from epoch to
    epoch and are part of the fitted model: ``predict`` assigns new points
    with them, y = argmax_j ln p_ij + ρ_j − ρ'_j, so that the labels of the
    training data respect the bounds (up to the fluctuation of the duals).
    ``predict_proba`` returns p itself; ``predict`` is its argmax whenever
    no bound is active (ρ = ρ' = 0). Both use the fitted model only, the
    centres, the duals and the temperature they were trained at: as for
    KMeans, ``set_params`` changes the next fit, not the predictions.

    Degenerate fits. ``fit`` warns (ConvergenceWarning) where the clustering
    is degenerate: clusters that ``labels_`` leaves empty, or p nearly
    uniform (mean entropy above 0.95 ln K), as for all-zero or identical
    rows. The training loss is no such signal: mean −ln p_{i y_i} of the
    hard labels is ln K for a uniform p, but the size bounds raise it too:
    each label they force onto a cluster of p_ij < 1/K adds more than ln K.

    References
    ----------
    Qian, Q., "Stable Cluster Discrimination for Deep Clustering", ICCV 2023,
    and its supplementary material.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_blobs
    >>> from skentropy import SeCuClustering
    >>> centers = [[4, 0, 0], [0, 4, 0], [0, 0, 4]]
    >>> X, _ = make_blobs(n_samples=[100, 300, 600], centers=centers,
    ...                   random_state=0)
    >>> secu = SeCuClustering(n_clusters=3, lower_ratio=0.8, upper_ratio=1.2,
    ...                       random_state=0).fit(X)
    >>> sizes = np.bincount(secu.labels_, minlength=3)
    >>> bool(sizes.min() >= 0.8 * 1000 / 3 - 10)
    True
    >>> secu.predict_proba(X[:2]).shape
    (2, 3)
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "lower_ratio": [Interval(Real, 0, 1, closed="both")],
        "upper_ratio": [Interval(Real, 1, None, closed="left"), None],
        "dual_lr": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "semi_supervised": ["boolean"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        temperature=0.3,
        lower_ratio=0.9,
        upper_ratio=None,
        dual_lr=0.1,
        max_iter=100,
        batch_size=128,
        tol=1e-2,
        n_iter_no_change=5,
        random_state=None,
        verbose=0,
        device="auto",
        semi_supervised=False,
    ):
        self.n_clusters = n_clusters
        self.temperature = temperature
        self.lower_ratio = lower_ratio
        self.upper_ratio = upper_ratio
        self.dual_lr = dual_lr
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.semi_supervised = semi_supervised

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Cluster X: at most ``max_iter`` epochs from k-means++ seeds.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. float32 data trains in float32, anything else in
            float64. Only mini-batches are copied, so read-only memory maps
            work.

        y : array-like of shape (n_samples,), default=None
            Ignored unless ``semi_supervised=True``: then the cluster of each
            labeled sample and −1 for each unlabeled one.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the cluster sizes, the centres and the
            loss. ``None`` gives every sample weight one.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """One epoch over X, continuing from the fitted centres and duals.

        The first call seeds the centres on X. Each call assigns the rows of
        X in shuffled mini-batches with a dual step after each, then sets
        every centre that got points to the closed form of Theorem 1 on this
        chunk's labels, so chunks should be large enough to represent every
        cluster. Parameters changed by ``set_params`` since the last call
        (``temperature``, the bounds, ``dual_lr``) apply to this epoch, except
        ``n_clusters``: a ValueError asks for a new model then.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.

        y : array-like of shape (n_samples,), default=None
            Ignored unless ``semi_supervised=True``: then the cluster of each
            labeled sample and −1 for each unlabeled one.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples. ``None`` gives every sample weight one.

        Returns
        -------
        self : object
            Updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def _fit(self, X, y, sample_weight, *, incremental):
        """``fit`` (``incremental=False``) or one epoch of ``partial_fit``.

        Atomic (:func:`atomic_fit`): if anything raises, a ``KeyboardInterrupt``
        included, the estimator keeps the attributes it had before the call.
        """
        with atomic_fit(self):
            new = not (incremental and hasattr(self, "n_iter_"))
            if not new:
                self._check_continuation()
            X = validate_features(self, X, reset=new)
            if new:
                check_n_samples(X, self.n_clusters)
            if incremental:
                random_state = persistent_random_state(self)
            else:
                random_state = check_random_state(self.random_state)
            sample_weight = relative_sample_weight(sample_weight, X, X.dtype)
            given = check_partial_labels(
                y, X.shape[0], self.n_clusters, semi_supervised=self.semi_supervised
            )
            if new:
                state = self._initial_state(X, given, sample_weight, random_state)
            else:
                state = self._fitted_state(X.dtype)
            generator = torch_generator(random_state)

            loss_curve = []
            n_small_moves, converged = 0, False
            epochs = tqdm(
                range(1 if incremental else self.max_iter),
                unit="epoch",
                disable=not self.verbose,
            )
            with epochs:
                for _ in epochs:
                    centres = state[0]
                    state, loss = secu_epoch(
                        X,
                        given,
                        sample_weight,
                        state,
                        generator,
                        **self._epoch_params(),
                    )
                    loss_curve.append(loss)
                    moves = torch.linalg.vector_norm(state[0] - centres, dim=1)
                    move = moves.max().item()
                    epochs.set_postfix(loss=f"{loss:.5g}", move=f"{move:.3g}")
                    n_small_moves = n_small_moves + 1 if move <= self.tol else 0
                    if not incremental and n_small_moves >= self.n_iter_no_change:
                        converged = True
                        break
            self._set_fitted(
                X,
                sample_weight,
                state,
                loss_curve,
                converged,
                incremental=incremental,
                new=new,
            )
        return self

    def _check_continuation(self):
        """Check that ``partial_fit`` can continue from the fitted model."""
        fitted = self.cluster_centers_.shape[0]
        if self.n_clusters != fitted:
            raise ValueError(
                f"Training cannot continue with n_clusters={self.n_clusters!r} "
                f"from a model fitted with n_clusters={fitted!r}; fit a new model "
                "(call fit, or partial_fit on a clone)."
            )

    def _set_fitted(
        self, X, sample_weight, state, loss_curve, converged, *, incremental, new
    ):
        """Set every fitted attribute from a training's end state; warn on it.

        ``fit`` warns (ConvergenceWarning) if training stopped at ``max_iter``
        and if the clustering is degenerate (:func:`_warn_degenerate`: empty
        clusters, nearly uniform p); ``partial_fit`` does not, a single epoch
        being no whole training.
        """
        if not (incremental or converged):
            warnings.warn(
                f"Training stopped at max_iter={self.max_iter} epochs while the "
                f"centres still moved by more than tol={self.tol}; consider "
                "increasing max_iter or decreasing dual_lr.",
                ConvergenceWarning,
                stacklevel=_CALLER,
            )
        centres, lower_dual, upper_dual = state
        log_probs = self._log_probs(X, centres, self.temperature)
        labels = constrained_assignment(log_probs, lower_dual, upper_dual)
        labels = labels.cpu().numpy()
        if not incremental:
            _warn_degenerate(
                log_probs,
                labels,
                sample_weight,
                gamma=0.0,
                balance="lower_ratio",
                stacklevel=_CALLER,
            )
        if incremental and not new:
            loss_curve = [*self.loss_curve_, *loss_curve]

        self.cluster_centers_ = centres.cpu().numpy()
        self.lower_dual_ = lower_dual.cpu().numpy()
        self.upper_dual_ = upper_dual.cpu().numpy()
        self._fitted_temperature = self.temperature
        self.labels_ = labels
        self.n_iter_ = len(loss_curve)
        self.loss_curve_ = loss_curve
        self.converged_ = converged

    def _initial_state(self, X, given, sample_weight, random_state):
        """Centres on k-means++ seeds of the normalized rows; zero duals.

        With weak supervision, a cluster with labeled samples starts at the
        normalized mean of their normalized rows instead (as seeded k-means,
        Basu et al. 2002), so that cluster k starts at class k.
        """
        dtype = torch_dtype(X.dtype)
        device = resolve_device(self.device)
        size = init_size(self.batch_size, self.n_clusters)
        rows = init_rows(X.shape[0], size, random_state)
        subset = _normalize(torch.tensor(X[rows], dtype=dtype)).numpy()
        seeds, _ = seed_prototypes(
            subset, sample_weight[rows], self.n_clusters, size, random_state
        )
        if given is not None:
            # seeded k-means: a cluster with labeled samples starts at their mean
            labeled = np.flatnonzero(given >= 0)
            features = _normalize(torch.tensor(X[labeled], dtype=torch.float64))
            sums = torch.zeros(self.n_clusters, X.shape[1], dtype=torch.float64)
            sums.index_add_(0, torch.as_tensor(given[labeled]), features)
            has_labels = torch.linalg.vector_norm(sums, dim=1) > 0
            seeds = np.where(has_labels[:, None].numpy(), sums.numpy(), seeds)
        centres = _normalize(torch.tensor(seeds, dtype=dtype, device=device))
        zeros = torch.zeros(self.n_clusters, dtype=dtype, device=device)
        return centres, zeros, zeros.clone()

    def _fitted_state(self, dtype):
        """Centres and duals of the fitted model, on the estimator's device."""
        device = resolve_device(self.device)
        dtype = torch_dtype(dtype)
        return tuple(
            torch.tensor(array, dtype=dtype, device=device)
            for array in (self.cluster_centers_, self.lower_dual_, self.upper_dual_)
        )

    def _epoch_params(self):
        """The settings of :func:`secu_epoch`."""
        return {
            "batch_size": self.batch_size,
            "temperature": self.temperature,
            "lower_bound": self.lower_ratio / self.n_clusters,
            # Without an upper bound, ρ' stays 0: no fraction exceeds 1.
            "upper_bound": (
                1.0 if self.upper_ratio is None else self.upper_ratio / self.n_clusters
            ),
            "dual_lr": self.dual_lr,
        }

    @torch.no_grad()
    def _log_probs(self, X, centres, temperature):
        """ln p of all rows of X, computed batch by batch."""
        return torch.cat(
            [
                cluster_log_probs(
                    _normalize(to_tensor(X[start:stop], like=centres)),
                    centres,
                    temperature,
                )
                for start, stop in batch_bounds(X.shape[0], self.batch_size)
            ]
        )

    def _inference(self, X):
        """ln p of the fitted model on X, the validated X, the fitted duals.

        Only fitted values are used (the centres, the duals and the
        temperature they were trained at), so that ``set_params`` after
        ``fit`` does not change the predictions, as for KMeans.
        """
        check_is_fitted(self)
        X = validate_features(self, X, reset=False)
        centres, lower_dual, upper_dual = self._fitted_state(
            self.cluster_centers_.dtype
        )
        log_probs = self._log_probs(X, centres, self._fitted_temperature)
        return log_probs, X, (lower_dual, upper_dual)

    def predict(self, X):
        """Cluster of each sample, argmax_j ln p_ij + ρ_j − ρ'_j.

        The fitted duals shift the cosine scores as they did in training
        (supplement §2), so the sizes of the training clusters respect the
        bounds; with no active bound this is the argmax of ``predict_proba``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Index of the cluster each sample belongs to.
        """
        log_probs, _, duals = self._inference(X)
        return constrained_assignment(log_probs, *duals).cpu().numpy()

    def predict_proba(self, X):
        """Cluster probabilities p_ij = softmax_j(x_iᵀw_j / τ), eq. (3).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data; rows are normalized to unit length.

        Returns
        -------
        probs : ndarray of shape (n_samples, n_clusters)
            Probability of each cluster for each sample; rows sum to one.
        """
        log_probs, _, _ = self._inference(X)
        return log_probs.exp().cpu().numpy()

    def score(self, X, y=None, sample_weight=None):
        """Mean ln p_{i y_i} of the predicted clusters y = ``predict(X)``.

        The opposite of the objective of the assignment problem of supplement
        §2 (mean cross-entropy of the hard labels), at most 0; higher is
        better. It depends on ``temperature``, so do not compare scores
        across temperatures.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        y : Ignored
            Not used, present here for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the mean.

        Returns
        -------
        score : float
            Mean log-probability of the predicted clusters.
        """
        log_probs, X, duals = self._inference(X)
        sample_weight = relative_sample_weight(sample_weight, X, X.dtype)
        labels = constrained_assignment(log_probs, *duals)
        chosen = log_probs.gather(1, labels[:, None])[:, 0].cpu().numpy()
        return float(np.average(chosen, weights=sample_weight))
