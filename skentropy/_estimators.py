"""The discriminative entropy clustering estimators.

Each estimator is the shared base plus its mini-batch loss (the hook
``_batch_loss``); the base adds the margin term γ‖v‖² and does the rest.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from skentropy import losses
from skentropy._base import _BaseEntropyClustering
from skentropy.pseudo_labels import collision_ce_labels, reverse_ce_labels

# Stopping rule of the pseudo-label solvers of the self-labeling estimators.
_PSEUDO_LABEL_CONSTRAINTS = {
    "em_tol": [Interval(Real, 0, None, closed="neither")],
    "em_max_iter": [Interval(Integral, 1, None, closed="left")],
}


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
        The number of clusters K, the number of outputs of the softmax model.

    gamma : float, default=3e-4
        Weight γ of the margin term γ‖v‖² on the weights v of the linear model
        (not on its bias). Larger values widen the soft margin 1/‖v‖ between
        the clusters. γ is in units of the data: the model sees X through
        z = (x − x̄)/s, centered and scaled to unit root-mean-square norm,
        and v acts on z, so a value means the same on raw, standardized or
        unit-norm features at any scale (see :ref:`input-scale`). Good values
        lie from about 1e-4 to 1e-3; much larger ones leave clusters empty (a
        ``ConvergenceWarning`` says so). The margin weight grows from 0 to γ
        over the first 10 epochs of a new model.

    fairness_weight : float, default=100.0
        Weight λ of the strong fairness term λ KL(u‖ȳ) of the pseudo-label
        problem, which pulls the cluster proportions ȳ of the pseudo-labels
        towards ``prior``. The papers use 100.

    prior : array-like of shape (n_clusters,), default=None
        Target cluster proportions u: positive, summing to one. ``None``
        means equal proportions, u_k = 1/K.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data).

    batch_size : int, default=250
        Number of samples in a mini-batch. Each mini-batch gets its own
        pseudo-labels and one optimizer step. The rows of an epoch are split
        into batches of at most ``batch_size`` rows and nearly equal sizes.

    lr : float, default=0.01
        Learning rate of the optimizer.

    optimizer : {"adam", "sgd"}, default="adam"
        ``"adam"`` is :class:`torch.optim.Adam`, ``"sgd"`` plain stochastic
        gradient descent (:class:`torch.optim.SGD`) as in the papers.

    weight_decay : float, default=0.0
        Weight decay of the optimizer, on all parameters including the bias.
        A separate setting from ``gamma``.

    tol : float, default=1e-4
        Tolerance of the stopping rule: training stops when the mean training
        loss of an epoch has not been lower than the best so far minus ``tol``
        for more than ``n_iter_no_change`` epochs in a row.

    n_iter_no_change : int, default=10
        Number of epochs without an improvement of at least ``tol`` that
        training tolerates before it stops.

    em_tol : float, default=1e-2
        Tolerance of the pseudo-label EM: the relative KKT residual at which it
        stops (``tol`` of :func:`~skentropy.pseudo_labels.reverse_ce_labels` with
        ``method="em"``).

    em_max_iter : int, default=1000
        Maximum number of iterations of the pseudo-label solver per mini-batch.

    head : {"linear", "normfc"}, default="linear"
        The head producing the logits. ``"linear"`` is the linear model
        vᵀx + b. ``"normfc"`` is the Norm-FC head of Han et al. (twostage
        supplement eq. 2): the cosines between the projected features
        g = Wx + b and fixed random unit prototypes, divided by
        ``temperature``; the projection W (square) is trained, the prototypes
        are drawn once from ``random_state`` and never change. ``gamma``
        applies to W; as the logits are bounded by 1/τ, it shrinks W but
        does not set a margin as for the linear head.

    n_heads : int, default=1
        Number of heads trained at once on the same mini-batches, each from
        its own k-means++ seeds (and Norm-FC prototypes); the head with the
        lowest training loss in the last epoch is kept, a selection that
        needs no labels (as in IIC, SCAN and TwoStageUC). Unlike ``n_init``,
        whose trainings run one after the other, each with its own epochs
        and early stopping, the heads share every epoch; early stopping
        follows the lowest head loss. Both can be combined.

    temperature : float, default=0.1
        Temperature τ of the Norm-FC head, logits = cos / τ; the paper uses
        0.1. Ignored by the linear head.

    semi_supervised : bool, default=False
        If True, ``fit`` and ``partial_fit`` use ``y`` as weak supervision:
        y_i in ``0..n_clusters - 1`` labels sample i with cluster (class)
        y_i, y_i = -1 leaves it unlabeled, and the mean cross-entropy
        −ln σ_{i,y_i} of the labeled samples of each mini-batch is added to
        the training loss (Zhang and Boykov §5.3; Zhang et al. supplement
        E.4). Cluster k then means class k. ``y=None`` means no labels. If
        False, ``y`` is ignored, as by every scikit-learn clusterer.

    n_init : int, default=1
        Number of trainings from different initializations. The one with the
        lowest training loss in its last epoch is kept.

    warm_start : bool, default=False
        If True, ``fit`` continues from the parameters of the previous fit (a
        single training; ``n_init`` is ignored).

    random_state : int, RandomState instance or None, default=None
        Determines the initialization (k-means++ seeds) and the order of the
        samples in the mini-batches. Pass an int for reproducible results
        across multiple function calls (on the CPU).
        See :term:`Glossary <random_state>`.

    verbose : int, default=0
        If positive, show a progress bar over the epochs with the training
        loss.

    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the model is trained and evaluated. ``"auto"`` uses a CUDA GPU
        if one is available. The fitted parameters are stored as numpy arrays
        in any case.

    <deep mode parameters>

    Attributes
    ----------
    coef_ : ndarray of shape (n_clusters, n_features)
        Weights v of the linear model, in the dtype of the training data.
        Only with ``head="linear"``; with several heads, those of the kept
        head (as for every head attribute).

    intercept_ : ndarray of shape (n_clusters,)
        Bias b of the linear model. Only with ``head="linear"``.

    projection_coef_ : ndarray of shape (n_features, n_features)
        Projection W of the Norm-FC head. Only with ``head="normfc"``.

    projection_intercept_ : ndarray of shape (n_features,)
        Bias b of the projection of the Norm-FC head. Only with
        ``head="normfc"``.

    prototypes_ : ndarray of shape (n_clusters, n_features)
        Fixed unit prototypes of the Norm-FC head. Only with
        ``head="normfc"``.

    head_losses_ : ndarray of shape (n_heads,)
        Training loss of each head in the last epoch.

    best_head_ : int
        Index of the kept head, the argmin of ``head_losses_``; ``predict``
        uses it only.

    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample (argmax σ) at the end of training.

    n_iter_ : int
        Number of epochs run.

    n_steps_ : int
        Number of optimizer steps (mini-batches) made.

    loss_curve_ : list of float
        Mean training loss, mean H(σ, y) + γ‖v‖², of each epoch.
        With several heads, the lowest of the heads' losses; with
        ``semi_supervised``, including the cross-entropy of the labeled
        samples.

    converged_ : bool
        Whether training stopped on the ``tol`` rule before ``max_iter``.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    <deep mode attributes>

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

    The model starts as a soft nearest-prototype classifier on k-means++
    seeds, σ_k(x) ∝ exp(−‖x − c_k‖² / 2T), so that every cluster starts with
    some points: a randomly initialized linear model on low-dimensional data
    can start with clusters that hold no point, and the loss does not revive
    them.

    Defaults. The papers' protocol on fixed features (SGD with lr 0.1, batches
    of 250, 10 epochs) makes 80 optimizer steps on a data set of 2,000
    samples, far too few, and a fixed SGD step suits features of one scale
    only. The defaults keep the batches but use Adam (lr 0.01), whose steps do
    not depend on the scale of the features, for up to 200 epochs, stopped
    once the training loss stops improving (``tol``, ``n_iter_no_change``): a
    small data set gets the hundreds of steps it needs (standardized digits:
    30 to 85 epochs of 8 steps), a large one stops after a few thousand steps
    (10,000 image features: 20 to 40 epochs of 40 steps). Pseudo-labels solved
    to a relative KKT residual of ``em_tol=1e-2`` cluster as well as nearly
    exact ones at a fraction of the cost: one stochastic step does not need
    exact labels. On standardized digits (10 clusters, random_state 0 to 4)
    these defaults reach a mean clustering accuracy of 0.78,
    :class:`~sklearn.cluster.KMeans` with ``n_init=10`` 0.61. As the margin
    term acts on the scale of X, standardize the features (e.g. with
    :class:`~sklearn.preprocessing.StandardScaler`) for ``gamma`` to mean the
    same across data sets.

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
        **_PSEUDO_LABEL_CONSTRAINTS,
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        gamma=3e-4,
        fairness_weight=100.0,
        prior=None,
        max_iter=200,
        batch_size=250,
        lr=0.01,
        optimizer="adam",
        weight_decay=0.0,
        tol=1e-4,
        n_iter_no_change=10,
        em_tol=1e-2,
        em_max_iter=1000,
        head="linear",
        n_heads=1,
        temperature=0.1,
        semi_supervised=False,
        n_init=1,
        warm_start=False,
        random_state=None,
        verbose=0,
        device="auto",
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

    def _batch_loss(self, log_probs, prior, sample_weight):
        # y = argmin_y mean H(σ, y) + λ H(u, ȳ), solved with σ detached.
        targets = reverse_ce_labels(
            log_probs.detach().exp(),
            prior=prior,
            fairness_weight=self.fairness_weight,
            tol=self.em_tol,
            max_iter=self.em_max_iter,
            sample_weight=sample_weight,
            method="em",
            check_input=False,
        )
        return losses.reverse_cross_entropy(log_probs, targets, sample_weight)


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
        The number of clusters K, the number of outputs of the softmax model.

    gamma : float, default=3e-4
        Weight γ of the margin term γ‖v‖² on the weights v of the linear model
        (not on its bias). Larger values widen the soft margin 1/‖v‖ between
        the clusters. γ is in units of the data: the model sees X through
        z = (x − x̄)/s, centered and scaled to unit root-mean-square norm,
        and v acts on z, so a value means the same on raw, standardized or
        unit-norm features at any scale (see :ref:`input-scale`). Good values
        lie from about 1e-4 to 1e-3; much larger ones leave clusters empty (a
        ``ConvergenceWarning`` says so). The margin weight grows from 0 to γ
        over the first 10 epochs of a new model.

    fairness_weight : float, default=100.0
        Weight λ of the strong fairness term λ KL(u‖ȳ) of the pseudo-label
        problem, which pulls the cluster proportions ȳ of the pseudo-labels
        towards ``prior``. The paper uses 100.

    prior : array-like of shape (n_clusters,), default=None
        Target cluster proportions u: positive, summing to one. ``None``
        means equal proportions, u_k = 1/K.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data).

    batch_size : int, default=250
        Number of samples in a mini-batch. Each mini-batch gets its own
        pseudo-labels and one optimizer step. The rows of an epoch are split
        into batches of at most ``batch_size`` rows and nearly equal sizes.

    lr : float, default=0.01
        Learning rate of the optimizer.

    optimizer : {"adam", "sgd"}, default="adam"
        ``"adam"`` is :class:`torch.optim.Adam`, ``"sgd"`` plain stochastic
        gradient descent (:class:`torch.optim.SGD`) as in the paper.

    weight_decay : float, default=0.0
        Weight decay of the optimizer, on all parameters including the bias.
        A separate setting from ``gamma``.

    tol : float, default=1e-4
        Tolerance of the stopping rule: training stops when the mean training
        loss of an epoch has not been lower than the best so far minus ``tol``
        for more than ``n_iter_no_change`` epochs in a row.

    n_iter_no_change : int, default=10
        Number of epochs without an improvement of at least ``tol`` that
        training tolerates before it stops.

    em_tol : float, default=1e-2
        Tolerance of the pseudo-label EM: the relative KKT residual at which it
        stops (``tol`` of :func:`~skentropy.pseudo_labels.collision_ce_labels` with
        ``method="em"``).

    em_max_iter : int, default=1000
        Maximum number of iterations of the pseudo-label solver per mini-batch.

    head : {"linear", "normfc"}, default="linear"
        The head producing the logits. ``"linear"`` is the linear model
        vᵀx + b. ``"normfc"`` is the Norm-FC head of Han et al. (twostage
        supplement eq. 2): the cosines between the projected features
        g = Wx + b and fixed random unit prototypes, divided by
        ``temperature``; the projection W (square) is trained, the prototypes
        are drawn once from ``random_state`` and never change. ``gamma``
        applies to W; as the logits are bounded by 1/τ, it shrinks W but
        does not set a margin as for the linear head.

    n_heads : int, default=1
        Number of heads trained at once on the same mini-batches, each from
        its own k-means++ seeds (and Norm-FC prototypes); the head with the
        lowest training loss in the last epoch is kept, a selection that
        needs no labels (as in IIC, SCAN and TwoStageUC). Unlike ``n_init``,
        whose trainings run one after the other, each with its own epochs
        and early stopping, the heads share every epoch; early stopping
        follows the lowest head loss. Both can be combined.

    temperature : float, default=0.1
        Temperature τ of the Norm-FC head, logits = cos / τ; the paper uses
        0.1. Ignored by the linear head.

    semi_supervised : bool, default=False
        If True, ``fit`` and ``partial_fit`` use ``y`` as weak supervision:
        y_i in ``0..n_clusters - 1`` labels sample i with cluster (class)
        y_i, y_i = -1 leaves it unlabeled, and the mean cross-entropy
        −ln σ_{i,y_i} of the labeled samples of each mini-batch is added to
        the training loss (Zhang and Boykov §5.3; Zhang et al. supplement
        E.4). Cluster k then means class k. ``y=None`` means no labels. If
        False, ``y`` is ignored, as by every scikit-learn clusterer.

    n_init : int, default=1
        Number of trainings from different initializations. The one with the
        lowest training loss in its last epoch is kept.

    warm_start : bool, default=False
        If True, ``fit`` continues from the parameters of the previous fit (a
        single training; ``n_init`` is ignored).

    random_state : int, RandomState instance or None, default=None
        Determines the initialization (k-means++ seeds) and the order of the
        samples in the mini-batches. Pass an int for reproducible results
        across multiple function calls (on the CPU).
        See :term:`Glossary <random_state>`.

    verbose : int, default=0
        If positive, show a progress bar over the epochs with the training
        loss.

    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the model is trained and evaluated. ``"auto"`` uses a CUDA GPU
        if one is available. The fitted parameters are stored as numpy arrays
        in any case.

    <deep mode parameters>

    Attributes
    ----------
    coef_ : ndarray of shape (n_clusters, n_features)
        Weights v of the linear model, in the dtype of the training data.
        Only with ``head="linear"``; with several heads, those of the kept
        head (as for every head attribute).

    intercept_ : ndarray of shape (n_clusters,)
        Bias b of the linear model. Only with ``head="linear"``.

    projection_coef_ : ndarray of shape (n_features, n_features)
        Projection W of the Norm-FC head. Only with ``head="normfc"``.

    projection_intercept_ : ndarray of shape (n_features,)
        Bias b of the projection of the Norm-FC head. Only with
        ``head="normfc"``.

    prototypes_ : ndarray of shape (n_clusters, n_features)
        Fixed unit prototypes of the Norm-FC head. Only with
        ``head="normfc"``.

    head_losses_ : ndarray of shape (n_heads,)
        Training loss of each head in the last epoch.

    best_head_ : int
        Index of the kept head, the argmin of ``head_losses_``; ``predict``
        uses it only.

    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample (argmax σ) at the end of training.

    n_iter_ : int
        Number of epochs run.

    n_steps_ : int
        Number of optimizer steps (mini-batches) made.

    loss_curve_ : list of float
        Mean training loss, mean −ln(σ·y) + γ‖v‖², of each epoch.
        With several heads, the lowest of the heads' losses; with
        ``semi_supervised``, including the cross-entropy of the labeled
        samples.

    converged_ : bool
        Whether training stopped on the ``tol`` rule before ``max_iter``.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    <deep mode attributes>

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
    mean clustering accuracy of 0.73, the EM at ``em_tol=1e-2`` 0.81.

    The model starts as a soft nearest-prototype classifier on k-means++
    seeds, σ_k(x) ∝ exp(−‖x − c_k‖² / 2T), so that every cluster starts with
    some points: a randomly initialized linear model on low-dimensional data
    can start with clusters that hold no point, and the loss does not revive
    them.

    Defaults. The papers' protocol on fixed features (SGD with lr 0.1, batches
    of 250, 10 epochs) makes 80 optimizer steps on a data set of 2,000
    samples, far too few, and a fixed SGD step suits features of one scale
    only. The defaults keep the batches but use Adam (lr 0.01), whose steps do
    not depend on the scale of the features, for up to 200 epochs, stopped
    once the training loss stops improving (``tol``, ``n_iter_no_change``): a
    small data set gets the hundreds of steps it needs (standardized digits:
    30 to 85 epochs of 8 steps), a large one stops after a few thousand steps
    (10,000 image features: 20 to 40 epochs of 40 steps). Pseudo-labels solved
    to a relative KKT residual of ``em_tol=1e-2`` cluster as well as nearly
    exact ones at a fraction of the cost: one stochastic step does not need
    exact labels. On standardized digits (10 clusters, random_state 0 to 4)
    these defaults reach a mean clustering accuracy of 0.81,
    :class:`~sklearn.cluster.KMeans` with ``n_init=10`` 0.61. As the margin
    term acts on the scale of X, standardize the features (e.g. with
    :class:`~sklearn.preprocessing.StandardScaler`) for ``gamma`` to mean the
    same across data sets.

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
        **_PSEUDO_LABEL_CONSTRAINTS,
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        gamma=3e-4,
        fairness_weight=100.0,
        prior=None,
        max_iter=200,
        batch_size=250,
        lr=0.01,
        optimizer="adam",
        weight_decay=0.0,
        tol=1e-4,
        n_iter_no_change=10,
        em_tol=1e-2,
        em_max_iter=1000,
        head="linear",
        n_heads=1,
        temperature=0.1,
        semi_supervised=False,
        n_init=1,
        warm_start=False,
        random_state=None,
        verbose=0,
        device="auto",
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

    def _batch_loss(self, log_probs, prior, sample_weight):
        # y = argmin_y mean −ln(σ·y) + λ H(u, ȳ), solved with σ detached.
        targets = collision_ce_labels(
            log_probs.detach().exp(),
            prior=prior,
            fairness_weight=self.fairness_weight,
            tol=self.em_tol,
            max_iter=self.em_max_iter,
            sample_weight=sample_weight,
            method="em",
            check_input=False,
        )
        return losses.collision_cross_entropy(log_probs, targets, sample_weight)


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
        The number of clusters K, the number of outputs of the softmax model.

    gamma : float, default=3e-4
        Weight γ of the margin term γ‖v‖² on the weights v of the linear model
        (not on its bias). Larger values widen the soft margin 1/‖v‖ between
        the clusters. γ is in units of the data: the model sees X through
        z = (x − x̄)/s, centered and scaled to unit root-mean-square norm,
        and v acts on z, so a value means the same on raw, standardized or
        unit-norm features at any scale (see :ref:`input-scale`). Good values
        lie from about 1e-4 to 1e-3; much larger ones leave clusters empty (a
        ``ConvergenceWarning`` says so). The margin weight grows from 0 to γ
        over the first 10 epochs of a new model.

    fairness_weight : float, default=1.0
        Weight λ of the fairness term λ KL(σ̄‖u), which pulls the mean
        prediction σ̄ towards ``prior``. With λ = 1 and equal proportions the
        loss is minus the mutual information plus the margin term.

    prior : array-like of shape (n_clusters,), default=None
        Target cluster proportions u: positive, summing to one. ``None``
        means equal proportions, u_k = 1/K.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data).

    batch_size : int, default=250
        Number of samples in a mini-batch, one optimizer step each. The rows
        of an epoch are split into batches of at most ``batch_size`` rows and
        nearly equal sizes.

    lr : float, default=0.01
        Learning rate of the optimizer.

    optimizer : {"adam", "sgd"}, default="adam"
        ``"adam"`` is :class:`torch.optim.Adam`, ``"sgd"`` plain stochastic
        gradient descent (:class:`torch.optim.SGD`).

    weight_decay : float, default=0.0
        Weight decay of the optimizer, on all parameters including the bias.
        A separate setting from ``gamma``.

    tol : float, default=1e-4
        Tolerance of the stopping rule: training stops when the mean training
        loss of an epoch has not been lower than the best so far minus ``tol``
        for more than ``n_iter_no_change`` epochs in a row.

    n_iter_no_change : int, default=10
        Number of epochs without an improvement of at least ``tol`` that
        training tolerates before it stops.

    head : {"linear", "normfc"}, default="linear"
        The head producing the logits. ``"linear"`` is the linear model
        vᵀx + b. ``"normfc"`` is the Norm-FC head of Han et al. (twostage
        supplement eq. 2): the cosines between the projected features
        g = Wx + b and fixed random unit prototypes, divided by
        ``temperature``; the projection W (square) is trained, the prototypes
        are drawn once from ``random_state`` and never change. ``gamma``
        applies to W; as the logits are bounded by 1/τ, it shrinks W but
        does not set a margin as for the linear head.

    n_heads : int, default=1
        Number of heads trained at once on the same mini-batches, each from
        its own k-means++ seeds (and Norm-FC prototypes); the head with the
        lowest training loss in the last epoch is kept, a selection that
        needs no labels (as in IIC, SCAN and TwoStageUC). Unlike ``n_init``,
        whose trainings run one after the other, each with its own epochs
        and early stopping, the heads share every epoch; early stopping
        follows the lowest head loss. Both can be combined.

    temperature : float, default=0.1
        Temperature τ of the Norm-FC head, logits = cos / τ; the paper uses
        0.1. Ignored by the linear head.

    semi_supervised : bool, default=False
        If True, ``fit`` and ``partial_fit`` use ``y`` as weak supervision:
        y_i in ``0..n_clusters - 1`` labels sample i with cluster (class)
        y_i, y_i = -1 leaves it unlabeled, and the mean cross-entropy
        −ln σ_{i,y_i} of the labeled samples of each mini-batch is added to
        the training loss (Zhang and Boykov §5.3; Zhang et al. supplement
        E.4). Cluster k then means class k. ``y=None`` means no labels. If
        False, ``y`` is ignored, as by every scikit-learn clusterer.

    n_init : int, default=1
        Number of trainings from different initializations. The one with the
        lowest training loss in its last epoch is kept.

    warm_start : bool, default=False
        If True, ``fit`` continues from the parameters of the previous fit (a
        single training; ``n_init`` is ignored).

    random_state : int, RandomState instance or None, default=None
        Determines the initialization (k-means++ seeds) and the order of the
        samples in the mini-batches. Pass an int for reproducible results
        across multiple function calls (on the CPU).
        See :term:`Glossary <random_state>`.

    verbose : int, default=0
        If positive, show a progress bar over the epochs with the training
        loss.

    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the model is trained and evaluated. ``"auto"`` uses a CUDA GPU
        if one is available. The fitted parameters are stored as numpy arrays
        in any case.

    <deep mode parameters>

    Attributes
    ----------
    coef_ : ndarray of shape (n_clusters, n_features)
        Weights v of the linear model, in the dtype of the training data.
        Only with ``head="linear"``; with several heads, those of the kept
        head (as for every head attribute).

    intercept_ : ndarray of shape (n_clusters,)
        Bias b of the linear model. Only with ``head="linear"``.

    projection_coef_ : ndarray of shape (n_features, n_features)
        Projection W of the Norm-FC head. Only with ``head="normfc"``.

    projection_intercept_ : ndarray of shape (n_features,)
        Bias b of the projection of the Norm-FC head. Only with
        ``head="normfc"``.

    prototypes_ : ndarray of shape (n_clusters, n_features)
        Fixed unit prototypes of the Norm-FC head. Only with
        ``head="normfc"``.

    head_losses_ : ndarray of shape (n_heads,)
        Training loss of each head in the last epoch.

    best_head_ : int
        Index of the kept head, the argmin of ``head_losses_``; ``predict``
        uses it only.

    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample (argmax σ) at the end of training.

    n_iter_ : int
        Number of epochs run.

    n_steps_ : int
        Number of optimizer steps (mini-batches) made.

    loss_curve_ : list of float
        Mean training loss of each epoch (the fairness term on mini-batches).
        With several heads, the lowest of the heads' losses; with
        ``semi_supervised``, including the cross-entropy of the labeled
        samples.

    converged_ : bool
        Whether training stopped on the ``tol`` rule before ``max_iter``.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    <deep mode attributes>

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

    The model starts as a soft nearest-prototype classifier on k-means++
    seeds, σ_k(x) ∝ exp(−‖x − c_k‖² / 2T), so that every cluster starts with
    some points: a randomly initialized linear model on low-dimensional data
    can start with clusters that hold no point.

    Defaults. The papers' protocol on fixed features (SGD with lr 0.1, batches
    of 250, 10 epochs) makes 80 optimizer steps on a data set of 2,000
    samples, far too few, and a fixed SGD step suits features of one scale
    only. The defaults keep the batches but use Adam (lr 0.01), whose steps do
    not depend on the scale of the features, for up to 200 epochs, stopped
    once the training loss stops improving (``tol``, ``n_iter_no_change``): a
    small data set gets the hundreds of steps it needs (standardized digits:
    30 to 85 epochs of 8 steps), a large one stops after a few thousand steps
    (10,000 image features: 20 to 40 epochs of 40 steps). On standardized
    digits (10 clusters, random_state 0 to 4) these defaults reach a mean
    clustering accuracy of 0.80, :class:`~sklearn.cluster.KMeans` with
    ``n_init=10`` 0.61. As the margin term acts on the scale of X, standardize
    the features (e.g. with :class:`~sklearn.preprocessing.StandardScaler`)
    for ``gamma`` to mean the same across data sets.

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
        gamma=3e-4,
        fairness_weight=1.0,
        prior=None,
        max_iter=200,
        batch_size=250,
        lr=0.01,
        optimizer="adam",
        weight_decay=0.0,
        tol=1e-4,
        n_iter_no_change=10,
        head="linear",
        n_heads=1,
        temperature=0.1,
        semi_supervised=False,
        n_init=1,
        warm_start=False,
        random_state=None,
        verbose=0,
        device="auto",
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

    def _batch_loss(self, log_probs, prior, sample_weight):
        # mean H(σ) + λ KL(σ̄‖u): eq. (11) in KL form, σ̄ over the mini-batch.
        return losses.max_margin_entropy(
            log_probs, prior, sample_weight, fairness_weight=self.fairness_weight
        )
