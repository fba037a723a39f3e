"""MI-GD: mutual-information clustering by gradient descent, a baseline.

The comparison method of eq. (1) and (4) of entropy-clustering-kmeans-svm
(Bridle et al.; Krause et al.), on the shared base: its mini-batch loss is
``skentropy.losses.max_margin_entropy`` with weight decay as regularizer
instead of the margin term γ‖v‖² (zero by default, as in the original
method). There are no pseudo-labels.
"""

import functools

from skentropy import losses
from skentropy._estimators._base import _BaseEntropyClustering
from skentropy._estimators._docstrings import fill_doc


@fill_doc
class MIGDClustering(_BaseEntropyClustering):
    """Mutual-information clustering by gradient descent (MI-GD).

    A linear softmax model σ(vᵀx + b) is trained without labels on
    mini-batches by gradient descent on minus the mutual information between
    the input and the predicted cluster,

        mean H(σ) − H(σ̄) = mean H(σ) + λ KL(σ̄‖u) − ln K   (λ = 1, u uniform),

    with weight decay on all parameters, the bias included, as a Gaussian
    prior (Bridle et al. 1991; Krause et al. 2010). H(σ) makes each
    prediction decisive and KL(σ̄‖u) makes the clusters fair. There are no
    pseudo-labels.

    Parameters
    ----------
    n_clusters : int, default=8
        {n_clusters}

    gamma : float, default=0.0
        {gamma}
        MI-GD has no margin term: it regularizes through ``weight_decay``;
        with ``gamma > 0`` and ``weight_decay=0`` the estimator is
        :class:`MaxMarginEntropyClustering`.

    fairness_weight : float, default=1.0
        Weight λ of the fairness term λ KL(σ̄‖u). With λ = 1 and equal
        proportions the loss is minus the mutual information (eq. 1).

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

    weight_decay : float, default=0.01
        {weight_decay}
        Here it is the regularizer ‖[v, w]‖² of eq. (4), as the gradient term
        ``weight_decay`` · θ, i.e. (``weight_decay`` / 2) ‖θ‖² in the loss.

    tol : float, default=1e-4
        {tol}

    n_iter_no_change : int or "auto", default="auto"
        {n_iter_no_change}

    head : {"linear", "normfc"}, default="linear"
        {head}

    n_heads : int, default=1
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
        Mean training loss, mean H(σ) + λ KL(σ̄‖u) (+ γ‖v‖²) on mini-batches,
        of each epoch; the weight decay is not part of it.
        {loss_curve_}

    converged_ : bool
        {converged_}

    {input_attributes}

    {deep_attributes}

    See Also
    --------
    MaxMarginEntropyClustering : The same loss with the margin term γ‖v‖²
        (bias excluded) instead of weight decay on all parameters.
    SeLaClustering : Self-labeling with hard balanced pseudo-labels.
    MIADMClustering : Self-labeling with the forward cross-entropy and KL
        fairness.

    Notes
    -----
    The loss is eq. (1) of entropy-clustering-kmeans-svm (Bridle et al.) in
    the KL form of eq. (4) (Krause et al.), L = mean H(σ) + KL(σ̄‖u) +
    ‖[v, w]‖², minimized by stochastic gradient descent; σ̄ is estimated on
    each mini-batch. The difference from
    :class:`MaxMarginEntropyClustering` (eq. 11 and supplement eq. a there)
    is the regularizer only: weight decay shrinks every parameter, the bias
    b included, where the margin term γ‖v‖² leaves the bias free, which is
    what relates it to margin maximization (§2.2 there). The optimizer's
    weight decay is also not part of the reported loss.

    {initialization_notes}

    Defaults. The papers' fixed-feature protocol (SGD with lr 0.1 for 10
    epochs of batches of 250) makes too few steps on small data sets; as for
    :class:`MaxMarginEntropyClustering` the defaults use Adam (lr 0.01) for up
    to 200 epochs with early stopping, and a weight decay of 0.01. On
    standardized digits (10 clusters, random_state 0 to 2) they reach a mean
    clustering accuracy of 0.78 (0.70 without weight decay);
    :class:`~sklearn.cluster.KMeans` with ``n_init=10`` reaches 0.59.

    References
    ----------
    Bridle, J. S., Heading, A. J. R. and MacKay, D. J. C., "Unsupervised
    classifiers, mutual information and 'phantom targets'", NIPS 1991.

    Krause, A., Perona, P. and Gomes, R., "Discriminative clustering by
    regularized information maximization", NIPS 2010.

    Zhang, Z., Boykov, Y. et al., "Discriminative Entropy Clustering and its
    Relation to K-means and SVM", eq. (1), (4).

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from skentropy import MIGDClustering
    >>> centers = [[0, 4], [4, -2], [-4, -2]]
    >>> X, y = make_blobs(n_samples=300, centers=centers, random_state=0)
    >>> clustering = MIGDClustering(n_clusters=3, max_iter=400, random_state=0)
    >>> clustering = clustering.fit(X)
    >>> clustering.predict_proba(X[:2]).shape
    (2, 3)
    >>> adjusted_rand_score(y, clustering.labels_) > 0.95
    True
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        gamma=0.0,
        fairness_weight=1.0,
        prior=None,
        max_iter=200,
        batch_size=250,
        lr="auto",
        optimizer="adam",
        weight_decay=0.01,
        tol=1e-4,
        n_iter_no_change="auto",
        head="linear",
        n_heads=1,
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
            head=head,
            n_heads=n_heads,
            temperature=temperature,
            semi_supervised=semi_supervised,
            n_init=n_init,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            device=device,
            n_neighbors=n_neighbors,
            module=module,
            augment=augment,
            n_augmentations=n_augmentations,
            callbacks=callbacks,
            **kwargs,
        )

    def _mini_batch_loss(self):
        # mean H(σ) + λ KL(σ̄‖u): eq. (4), σ̄ over the mini-batch; the weight
        # decay ‖[v, w]‖² is the optimizer's
        return functools.partial(
            losses.max_margin_entropy, fairness_weight=self.fairness_weight
        )
