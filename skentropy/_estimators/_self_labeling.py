"""The self-labeling estimators of the papers: soft pseudo-labels solved by EM.

Each estimator is the shared base plus its mini-batch loss, a function of ln σ
below (returned by its hook ``_mini_batch_loss``); the base adds the margin
term γ‖v‖² and does the rest.
"""

import functools

from skentropy import losses
from skentropy._estimators._base import _BaseEntropyClustering
from skentropy._estimators._docstrings import fill_doc
from skentropy._estimators._params import PSEUDO_LABEL_CONSTRAINTS
from skentropy.pseudo_labels import collision_ce_labels, reverse_ce_labels


def reverse_ce_loss(log_probs, prior, sample_weight, *, fairness_weight, tol, max_iter):
    """mean H(σ, y), y = argmin_y mean H(σ, y) + λ H(u, ȳ) solved with σ detached.

    Eq. (13)-(17) of entropy-clustering-kmeans-svm: the pseudo-labels by the
    EM of :func:`~skentropy.pseudo_labels.reverse_ce_labels`, then the
    reverse cross-entropy with y fixed. ``log_probs`` of one head, of shape
    (n_samples, n_clusters), or of a stack of heads, of shape (n_heads,
    n_samples, n_clusters) with ``prior`` of shape (n_heads, n_clusters),
    (n_clusters,) or None: the heads' pseudo-labels are then solved at once,
    each as it would be alone, and the loss of each head is returned.
    """
    targets = reverse_ce_labels(
        log_probs.detach().exp(),
        prior=prior,
        fairness_weight=fairness_weight,
        tol=tol,
        max_iter=max_iter,
        sample_weight=sample_weight,
        method="em",
        check_input=False,
    )
    return _per_head(
        losses._reverse_cross_entropy_rows, log_probs, targets, sample_weight
    )


def collision_ce_loss(
    log_probs, prior, sample_weight, *, fairness_weight, tol, max_iter
):
    """mean −ln(σ·y), y = argmin_y mean −ln(σ·y) + λ H(u, ȳ) with σ detached.

    Eq. (11)-(17) of collision-cross-entropy: the pseudo-labels by the EM of
    :func:`~skentropy.pseudo_labels.collision_ce_labels`, then the collision
    cross-entropy with y fixed. One head or a stack of heads, as for
    :func:`reverse_ce_loss`.
    """
    targets = collision_ce_labels(
        log_probs.detach().exp(),
        prior=prior,
        fairness_weight=fairness_weight,
        tol=tol,
        max_iter=max_iter,
        sample_weight=sample_weight,
        method="em",
        check_input=False,
    )
    return _per_head(
        losses._collision_cross_entropy_rows, log_probs, targets, sample_weight
    )


def _per_head(rows, log_probs, targets, sample_weight):
    """The weighted mean of the ``rows`` loss of one head (shape ()), or of each
    head of a stack (shape (n_heads,)), in one set of tensor operations."""
    return losses._weighted_mean(rows(log_probs, targets), sample_weight)


@fill_doc
class EntropyClustering(_BaseEntropyClustering):
    """Self-labeling entropy clustering with the reverse cross-entropy.

    A linear softmax model σ(vᵀx + b) is trained without labels on
    mini-batches. For every mini-batch, soft pseudo-labels y are first solved
    for exactly (EM), so that they agree with the predictions σ and are used
    in the proportions ``prior``; then one optimizer step decreases

        mean H(σ, y) + γ‖v‖²

    with y fixed, where H(σ, y) = −Σ_k σ_k ln y_k is the reverse cross-entropy
    and γ‖v‖² maximizes the margin between clusters (the bias b is not
    penalized). This is the self-labeling method of Zhang et al.

    Parameters
    ----------
    n_clusters : int, default=8
        {n_clusters}

    gamma : float, default=0.02
        {gamma}

    fairness_weight : float, default=100.0
        Weight λ of the strong fairness term λ KL(u‖ȳ) of the pseudo-label
        problem, which pulls the cluster proportions ȳ of the pseudo-labels
        towards ``prior``. The papers use 100.

    prior : array-like of shape (n_clusters,), "auto" or None, default=None
        {prior}

    max_iter : int, default=200
        {max_iter}

    batch_size : int, default=250
        {batch_size}

    lr : float or "auto", default="auto"
        {lr}

    optimizer : {"adam", "sgd"}, default="adam"
        {optimizer}

    weight_decay : float, default=0.0
        {weight_decay}

    tol : float, default=1e-4
        {tol}

    n_iter_no_change : int or "auto", default="auto"
        {n_iter_no_change}

    em_tol : float, default=5e-2
        Tolerance of the pseudo-label EM: the relative KKT residual at which it
        stops (``tol`` of :func:`~skentropy.pseudo_labels.reverse_ce_labels` with
        ``method="em"``).

    em_max_iter : int, default=1000
        Maximum number of iterations of the pseudo-label solver per mini-batch.

    head : {"linear", "normfc"}, default="linear"
        {head}

    n_heads : int, default=5
        {n_heads}

    temperature : float, default=0.1
        {temperature}

    semi_supervised : bool, default=False
        {semi_supervised}

    n_init : int, default=1
        {n_init}

    warm_start : bool, default=False
        {warm_start}

    random_state : int, RandomState instance or None, default=None
        {random_state}

    verbose : int, default=0
        {verbose}

    device : {"auto", "cpu", "cuda"}, default="auto"
        {device}

    n_neighbors : int, default=None
        {n_neighbors}

    {deep_parameters}

    Attributes
    ----------
    {head_attributes}

    loss_curve_ : list of float
        Mean training loss, mean H(σ, y) + γ‖v‖², of each epoch.
        {loss_curve_}

    converged_ : bool
        {converged_}

    {input_attributes}

    {deep_attributes}

    See Also
    --------
    CollisionCEClustering : Self-labeling with the collision cross-entropy.
    MaxMarginEntropyClustering : Decisiveness, fairness and margin, without
        pseudo-labels.
    sklearn.cluster.KMeans : Clustering by distances to centroids.

    Notes
    -----
    The loss is eq. (13) of Zhang et al., mean H(σ, y) + λ KL(u‖ȳ) + γ‖v‖²,
    minimized alternately: for each mini-batch the pseudo-labels y minimize
    mean H(σ, y) + λ H(u, ȳ) (eq. 14) with σ fixed, solved by the EM algorithm
    of eq. (16)-(17) in :func:`~skentropy.pseudo_labels.reverse_ce_labels`;
    then the model takes one step on mean H(σ, y) + γ‖v‖² with y fixed
    (Algorithm 1 of the supplement). Solving y per mini-batch rather than per
    epoch is the papers' "batch version" (eq. 18).

    {initialization_notes}

    {defaults_notes}

    Pseudo-labels solved to a relative KKT residual of ``em_tol=5e-2``
    cluster as well as tighter ones at a fraction of the cost: one
    stochastic step does not need exact labels (CIFAR-10 and USPS features,
    five heads, seed 0: accuracy 0.494 and 0.688 at ``em_tol=1e-2``, 0.488
    and 0.687 at 5e-2, in half the fit time). On standardized digits (10
    clusters, random_state 0 to 4) these defaults reach a mean clustering
    accuracy of 0.78, :class:`~sklearn.cluster.KMeans` with ``n_init=10``
    0.61.

    References
    ----------
    Zhang, Z., Boykov, Y. et al., "Discriminative Entropy Clustering and its
    Relation to K-means and SVM".

    Arthur, D. and Vassilvitskii, S., "k-means++: the advantages of careful
    seeding", SODA 2007.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from skentropy import EntropyClustering
    >>> centers = [[0, 4], [4, -2], [-4, -2]]
    >>> X, y = make_blobs(n_samples=300, centers=centers, random_state=0)
    >>> clustering = EntropyClustering(n_clusters=3, random_state=0).fit(X)
    >>> clustering.predict_proba(X[:2]).shape
    (2, 3)
    >>> adjusted_rand_score(y, clustering.labels_) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **_BaseEntropyClustering._parameter_constraints,
        **PSEUDO_LABEL_CONSTRAINTS,
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        gamma=0.02,
        fairness_weight=100.0,
        prior=None,
        max_iter=200,
        batch_size=250,
        lr="auto",
        optimizer="adam",
        weight_decay=0.0,
        tol=1e-4,
        n_iter_no_change="auto",
        em_tol=5e-2,
        em_max_iter=1000,
        head="linear",
        n_heads=5,
        temperature=0.1,
        semi_supervised=False,
        n_init=1,
        warm_start=False,
        random_state=None,
        verbose=0,
        device="auto",
        n_neighbors=None,
        module=None,
        augment=None,
        n_augmentations=2,
        callbacks=None,
        **kwargs,
    ):
        super().__init__(
            n_clusters,
            gamma=gamma,
            fairness_weight=fairness_weight,
            prior=prior,
            max_iter=max_iter,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            n_init=n_init,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            device=device,
            n_neighbors=n_neighbors,
            head=head,
            n_heads=n_heads,
            temperature=temperature,
            semi_supervised=semi_supervised,
            module=module,
            augment=augment,
            n_augmentations=n_augmentations,
            callbacks=callbacks,
            **kwargs,
        )
        self.em_tol = em_tol
        self.em_max_iter = em_max_iter

    _stacked_loss = True

    def _mini_batch_loss(self):
        return functools.partial(
            reverse_ce_loss,
            fairness_weight=self.fairness_weight,
            tol=self.em_tol,
            max_iter=self.em_max_iter,
        )


@fill_doc
class CollisionCEClustering(_BaseEntropyClustering):
    """Self-labeling entropy clustering with the collision cross-entropy.

    A linear softmax model σ(vᵀx + b) is trained without labels on
    mini-batches. For every mini-batch, soft pseudo-labels y are first solved
    for exactly (EM), so that they agree with the predictions σ and are used
    in the proportions ``prior``; then one optimizer step decreases

        mean −ln(σ·y) + γ‖v‖²

    with y fixed, where −ln σ·y, the collision cross-entropy, is minus the log
    probability that a cluster drawn from σ equals one drawn from y; γ‖v‖²
    maximizes the margin between clusters (the bias b is not penalized).
    Uncertain pseudo-labels have little influence on the training. This is
    the method of Zhang and Boykov.

    Parameters
    ----------
    n_clusters : int, default=8
        {n_clusters}

    gamma : float, default=0.02
        {gamma}

    fairness_weight : float, default=100.0
        Weight λ of the strong fairness term λ KL(u‖ȳ) of the pseudo-label
        problem, which pulls the cluster proportions ȳ of the pseudo-labels
        towards ``prior``. The paper uses 100.

    prior : array-like of shape (n_clusters,), "auto" or None, default=None
        {prior}

    max_iter : int, default=200
        {max_iter}

    batch_size : int, default=250
        {batch_size}

    lr : float or "auto", default="auto"
        {lr}

    optimizer : {"adam", "sgd"}, default="adam"
        {optimizer}

    weight_decay : float, default=0.0
        {weight_decay}

    tol : float, default=1e-4
        {tol}

    n_iter_no_change : int or "auto", default="auto"
        {n_iter_no_change}

    em_tol : float, default=5e-2
        Tolerance of the pseudo-label EM: the relative KKT residual at which it
        stops (``tol`` of :func:`~skentropy.pseudo_labels.collision_ce_labels`
        with ``method="em"``).

    em_max_iter : int, default=1000
        Maximum number of iterations of the pseudo-label solver per mini-batch.

    head : {"linear", "normfc"}, default="linear"
        {head}

    n_heads : int, default=5
        {n_heads}

    temperature : float, default=0.1
        {temperature}

    semi_supervised : bool, default=False
        {semi_supervised}

    n_init : int, default=1
        {n_init}

    warm_start : bool, default=False
        {warm_start}

    random_state : int, RandomState instance or None, default=None
        {random_state}

    verbose : int, default=0
        {verbose}

    device : {"auto", "cpu", "cuda"}, default="auto"
        {device}

    n_neighbors : int, default=None
        {n_neighbors}

    {deep_parameters}

    Attributes
    ----------
    {head_attributes}

    loss_curve_ : list of float
        Mean training loss, mean −ln(σ·y) + γ‖v‖², of each epoch.
        {loss_curve_}

    converged_ : bool
        {converged_}

    {input_attributes}

    {deep_attributes}

    See Also
    --------
    EntropyClustering : Self-labeling with the reverse cross-entropy.
    MaxMarginEntropyClustering : Decisiveness, fairness and margin, without
        pseudo-labels.
    sklearn.cluster.KMeans : Clustering by distances to centroids.

    Notes
    -----
    The loss is eq. (11)-(12) of Zhang and Boykov plus the margin term,
    mean −ln(σ·y) + λ KL(u‖ȳ) + γ‖v‖², minimized alternately: for each
    mini-batch the pseudo-labels y minimize mean −ln(σ·y) + λ H(u, ȳ) with σ
    fixed, solved by the EM algorithm of §4 (E-step eq. 14, M-step eq. 16-17
    and supplement C) in :func:`~skentropy.pseudo_labels.collision_ce_labels`;
    then the model takes one step on mean −ln(σ·y) + γ‖v‖² with y fixed
    (Algorithm 1). The paper's fixed-feature experiments put the norm penalty
    on the classifier weights as here (supplement F).

    The EM starts from σ and stops at the loose residual ``em_tol``, like the
    papers' few EM iterations per batch: its labels are softer than the exact,
    often sparse optimum, and trained better. On standardized digits
    (random_state 0 to 4) exact labels (``em_tol=1e-6`` with the default
    method of :func:`~skentropy.pseudo_labels.collision_ce_labels`) gave a
    mean clustering accuracy of 0.73, the EM at ``em_tol=1e-2`` 0.81 (one
    head, measured before the sound KKT rule of the solvers).

    {initialization_notes}

    {defaults_notes}

    On standardized digits (10 clusters, random_state 0 to 4) these defaults
    reach a mean clustering accuracy of 0.81, :class:`~sklearn.cluster.KMeans`
    with ``n_init=10`` 0.61.

    References
    ----------
    Zhang, Z. and Boykov, Y., "Collision Cross-entropy and EM Algorithm for
    Self-labeled Classification".

    Arthur, D. and Vassilvitskii, S., "k-means++: the advantages of careful
    seeding", SODA 2007.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from skentropy import CollisionCEClustering
    >>> centers = [[0, 4], [4, -2], [-4, -2]]
    >>> X, y = make_blobs(n_samples=300, centers=centers, random_state=0)
    >>> clustering = CollisionCEClustering(n_clusters=3, random_state=0).fit(X)
    >>> clustering.predict_proba(X[:2]).shape
    (2, 3)
    >>> adjusted_rand_score(y, clustering.labels_) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **_BaseEntropyClustering._parameter_constraints,
        **PSEUDO_LABEL_CONSTRAINTS,
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        gamma=0.02,
        fairness_weight=100.0,
        prior=None,
        max_iter=200,
        batch_size=250,
        lr="auto",
        optimizer="adam",
        weight_decay=0.0,
        tol=1e-4,
        n_iter_no_change="auto",
        em_tol=5e-2,
        em_max_iter=1000,
        head="linear",
        n_heads=5,
        temperature=0.1,
        semi_supervised=False,
        n_init=1,
        warm_start=False,
        random_state=None,
        verbose=0,
        device="auto",
        n_neighbors=None,
        module=None,
        augment=None,
        n_augmentations=2,
        callbacks=None,
        **kwargs,
    ):
        super().__init__(
            n_clusters,
            gamma=gamma,
            fairness_weight=fairness_weight,
            prior=prior,
            max_iter=max_iter,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            n_init=n_init,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            device=device,
            n_neighbors=n_neighbors,
            head=head,
            n_heads=n_heads,
            temperature=temperature,
            semi_supervised=semi_supervised,
            module=module,
            augment=augment,
            n_augmentations=n_augmentations,
            callbacks=callbacks,
            **kwargs,
        )
        self.em_tol = em_tol
        self.em_max_iter = em_max_iter

    _stacked_loss = True

    def _mini_batch_loss(self):
        return functools.partial(
            collision_ce_loss,
            fairness_weight=self.fairness_weight,
            tol=self.em_tol,
            max_iter=self.em_max_iter,
        )
