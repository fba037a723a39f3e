"""Maximum-margin entropy clustering: decisiveness, fairness and margin.

The estimator is the shared base plus its mini-batch loss,
:func:`skentropy.losses.max_margin_entropy` without the margin term, which
the base adds.
"""

import functools

from skentropy import losses
from skentropy._estimators._base import _BaseEntropyClustering
from skentropy._estimators._docstrings import fill_doc


@fill_doc
class MaxMarginEntropyClustering(_BaseEntropyClustering):
    """Maximum-margin entropy clustering: decisiveness, fairness and margin.

    A linear softmax model σ(vᵀx + b) is trained without labels by mini-batch
    gradient descent on

        mean H(σ) + λ KL(σ̄‖u) + γ‖v‖²,

    the mutual-information loss of Bridle et al. and Krause et al. with an
    explicit margin term. The mean entropy H(σ) makes every prediction
    decisive, KL(σ̄‖u) makes the clusters fair (used in the proportions
    ``prior``), and γ‖v‖² maximizes the margin between clusters (the bias b is
    not penalized). There are no pseudo-labels.

    Parameters
    ----------
    n_clusters : int, default=8
        {n_clusters}

    gamma : float, default=0.02
        {gamma}

    fairness_weight : float, default=1.0
        Weight λ of the fairness term λ KL(σ̄‖u), which pulls the mean
        prediction σ̄ towards ``prior``. With λ = 1 and equal proportions the
        loss is minus the mutual information plus the margin term.

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
        Mean training loss, mean H(σ) + λ KL(σ̄‖u) + γ‖v‖² with σ̄ on each
        mini-batch, of each epoch.
        {loss_curve_}

    converged_ : bool
        {converged_}

    {input_attributes}

    {deep_attributes}

    See Also
    --------
    EntropyClustering : Self-labeling with the reverse cross-entropy.
    CollisionCEClustering : Self-labeling with the collision cross-entropy.
    sklearn.cluster.KMeans : Clustering by distances to centroids.

    Notes
    -----
    The loss is eq. (11) of Zhang et al. in the KL form of their supplement
    eq. (a): mean H(σ) − H(σ̄) + γ‖v‖² = mean H(σ) + KL(σ̄‖u) + γ‖v‖² − ln K
    for equal proportions u, with the fairness weight λ = 1 of MI-GD (eq. 1,
    4). §2.2 there relates γ‖v‖² to margin maximization: without it a
    linear model may separate clusters by boundaries that pass just between
    data points. σ̄ is estimated on each mini-batch. The reverse divergence
    KL(σ̄‖u) tolerates empty clusters (Fig. 2a there); the self-labeling
    estimators use the zero-avoiding KL(u‖ȳ) instead.

    {initialization_notes}

    {defaults_notes}

    On standardized digits (10 clusters, random_state 0 to 4) these defaults
    reach a mean clustering accuracy of 0.76, :class:`~sklearn.cluster.KMeans`
    with ``n_init=10`` 0.61.

    References
    ----------
    Zhang, Z., Boykov, Y. et al., "Discriminative Entropy Clustering and its
    Relation to K-means and SVM".

    Bridle, J. S., Heading, A. J. R. and MacKay, D. J. C., "Unsupervised
    classifiers, mutual information and 'phantom targets'", NIPS 1991.

    Krause, A., Perona, P. and Gomes, R., "Discriminative clustering by
    regularized information maximization", NIPS 2010.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from skentropy import MaxMarginEntropyClustering
    >>> centers = [[0, 4], [4, -2], [-4, -2]]
    >>> X, y = make_blobs(n_samples=300, centers=centers, random_state=0)
    >>> clustering = MaxMarginEntropyClustering(n_clusters=3, random_state=0)
    >>> clustering.fit(X).predict_proba(X[:2]).shape
    (2, 3)
    >>> adjusted_rand_score(y, clustering.labels_) > 0.95
    True
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        gamma=0.02,
        fairness_weight=1.0,
        prior=None,
        max_iter=200,
        batch_size=250,
        lr="auto",
        optimizer="adam",
        weight_decay=0.0,
        tol=1e-4,
        n_iter_no_change="auto",
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

    # the batch loss takes the heads' ln σ stacked (see TrainingLoss.stacked)
    _stacked_loss = True

    def _mini_batch_loss(self):
        # mean H(σ) + λ KL(σ̄‖u): eq. (11) in KL form, σ̄ over the mini-batch;
        # losses.max_margin_entropy without its margin term, one head or a stack
        return functools.partial(
            losses._max_margin_terms, fairness_weight=self.fairness_weight
        )
