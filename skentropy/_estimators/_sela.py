"""SeLa: self-labeling with hard balanced pseudo-labels, a baseline.

The comparison method of eq. (5) of entropy-clustering-kmeans-svm (Asano et
al.), on the shared base: its mini-batch loss, a function of ln σ below,
is the cross-entropy to one-hot labels with ȳ = u, solved by the
Sinkhorn-Knopp solver of ``skentropy.pseudo_labels._sinkhorn`` per batch or,
with ``schedule="full"``, once per epoch (``_epoch_targets``). The base adds
the margin term γ‖v‖² (zero by default, as in the original method).
"""

import functools
from numbers import Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from skentropy import losses
from skentropy._estimators._base import _BaseEntropyClustering
from skentropy._estimators._docstrings import fill_doc
from skentropy._estimators._params import PSEUDO_LABEL_CONSTRAINTS
from skentropy.pseudo_labels._sinkhorn import sinkhorn_labels


def sela_labels(log_probs, prior, sample_weight, *, power, tol, max_iter):
    """One-hot y with ȳ = u (rounded), by Sinkhorn-Knopp with σ detached (eq. 5)."""
    return sinkhorn_labels(
        log_probs.detach(),
        prior=prior,
        sample_weight=sample_weight,
        power=power,
        tol=tol,
        max_iter=max_iter,
    )


def sela_loss(
    log_probs, prior, sample_weight, epoch_targets=None, *, power, tol, max_iter
):
    """mean H(y, σ) for hard balanced labels y (eq. 5 of entropy-clustering).

    y are the batch's labels of the epoch (``schedule="full"``) when given,
    else solved on the batch by :func:`sela_labels`.
    """
    labels = epoch_targets
    if labels is None:
        labels = sela_labels(
            log_probs, prior, sample_weight, power=power, tol=tol, max_iter=max_iter
        )
    targets = torch.nn.functional.one_hot(labels, log_probs.shape[1])
    return losses.cross_entropy(targets.to(log_probs.dtype), log_probs, sample_weight)


@fill_doc
class SeLaClustering(_BaseEntropyClustering):
    """Self-labeling clustering with hard balanced pseudo-labels (SeLa).

    A linear softmax model σ(vᵀx + b) is trained without labels on
    mini-batches. For every mini-batch, one-hot pseudo-labels y that use the
    clusters in the proportions ``prior`` (ȳ = u) and agree with σ are found
    by optimal transport (a log-domain Sinkhorn-Knopp algorithm); then one
    optimizer step decreases the cross-entropy mean H(y, σ) with y fixed.
    This is the method of Asano et al.

    Parameters
    ----------
    n_clusters : int, default=8
        {n_clusters}

    gamma : float, default=0.0
        {gamma}
        SeLa has no margin term.

    fairness_weight : float, default=1.0
        Weight λ of the fairness term in :meth:`score` only: SeLa's training
        enforces the proportions as the hard constraint ȳ = u.

    prior : array-like of shape (n_clusters,), "auto" or None, default=None
        {prior}
        They are the proportions of the pseudo-labels (``None``:
        equipartition).

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

    sinkhorn_power : float, default=25.0
        The exponent λ of the transport plan diag(α) σ^λ diag(β), the inverse
        weight of its entropy; SeLa uses 25. Larger values bring the plan
        closer to the exact transport and need more iterations.

    em_tol : float, default=1e-2
        Tolerance of the Sinkhorn-Knopp iteration: the L1 error of the row
        sums of the plan at which it stops. Rounding to hard labels changes
        the proportions by more than that anyway.

    em_max_iter : int, default=1000
        Maximum number of Sinkhorn-Knopp iterations per solve.

    schedule : {"batch", "full"}, default="batch"
        When the pseudo-labels are solved. ``"batch"``: on every mini-batch,
        from its own σ (the papers' "batch version"). ``"full"``: on the
        whole training set (or ``partial_fit`` chunk) at the start of every
        epoch, as in Asano et al. (who relabel a fixed number of times over
        training), the epoch then fitting σ to these fixed labels. With
        ``"full"``, ``n_heads`` must be 1.

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
        Mean training loss, mean H(y, σ) + γ‖v‖², of each epoch.
        {loss_curve_}

    converged_ : bool
        {converged_}

    {input_attributes}

    {deep_attributes}

    See Also
    --------
    MIADMClustering : Soft pseudo-labels with KL fairness instead of the hard
        constraint.
    EntropyClustering : Self-labeling with the reverse cross-entropy.
    MIGDClustering : Mutual information by gradient descent.

    Notes
    -----
    The loss is eq. (5) of entropy-clustering-kmeans-svm: mean H(y, σ) over
    one-hot y subject to ȳ = u. The integer program in y is relaxed to the
    entropic optimal transport of Cuturi with cost −ln σ and entropy weight
    1/λ, solved by Sinkhorn-Knopp on log-scalings (stable for λ = 25, tiny σ
    and thousands of clusters), and each row is rounded to the cluster of its
    largest transport mass, as Asano et al. do, up to a greedy rounding that
    balances them exactly: cluster k gets round(n u_k) of the n rows of a
    mini-batch (largest remainders), or, with integer ``sample_weight``, the
    weight round(W u_k) that the rows repeated by their weights would give it
    (within one row's weight where a row would have to be split). They are
    solved on every mini-batch, the papers' "batch version"; Asano et al.
    solve on the whole data set a fixed number of times during training
    instead (``schedule="full"``, once per epoch).
    On standardized digits (10 clusters, random_state 0 to 2) the defaults
    reach a mean clustering accuracy of 0.75, 0.78 with ``gamma=1.0``;
    :class:`~sklearn.cluster.KMeans` with ``n_init=10`` reaches 0.59.

    References
    ----------
    Asano, Y. M., Rupprecht, C. and Vedaldi, A., "Self-labelling via
    simultaneous clustering and representation learning", ICLR 2020.

    Cuturi, M., "Sinkhorn distances: lightspeed computation of optimal
    transport", NeurIPS 2013.

    Zhang, Z., Boykov, Y. et al., "Discriminative Entropy Clustering and its
    Relation to K-means and SVM", eq. (5).

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from skentropy import SeLaClustering
    >>> centers = [[0, 4], [4, -2], [-4, -2]]
    >>> X, y = make_blobs(n_samples=300, centers=centers, random_state=0)
    >>> clustering = SeLaClustering(n_clusters=3, random_state=0).fit(X)
    >>> clustering.predict_proba(X[:2]).shape
    (2, 3)
    >>> adjusted_rand_score(y, clustering.labels_) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **_BaseEntropyClustering._parameter_constraints,
        **PSEUDO_LABEL_CONSTRAINTS,
        "sinkhorn_power": [Interval(Real, 0, None, closed="neither")],
        "schedule": [StrOptions({"batch", "full"})],
    }

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
        weight_decay=0.0,
        tol=1e-4,
        n_iter_no_change="auto",
        sinkhorn_power=25.0,
        em_tol=1e-2,
        em_max_iter=1000,
        schedule="batch",
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
        self.sinkhorn_power = sinkhorn_power
        self.em_tol = em_tol
        self.em_max_iter = em_max_iter
        self.schedule = schedule

    def _check_params_vs_input(self, X):
        super()._check_params_vs_input(X)
        if self.schedule == "full" and self.module is not None:
            raise ValueError(
                "schedule='full' solves the labels of the whole data set from "
                "fixed features and does not train a module; use "
                "schedule='batch' with module."
            )
        if self.schedule == "full" and self.n_heads > 1:
            raise ValueError(
                f"schedule='full' solves one set of labels per epoch and needs "
                f"n_heads=1; got n_heads={self.n_heads}."
            )

    def _solver_params(self):
        return {
            "power": self.sinkhorn_power,
            "tol": self.em_tol,
            "max_iter": self.em_max_iter,
        }

    def _epoch_targets(self, log_probs, prior, sample_weight):
        # schedule="full": hard balanced labels of the whole X for the epoch
        if self.schedule != "full":
            return None
        return sela_labels(log_probs(), prior, sample_weight, **self._solver_params())

    def _mini_batch_loss(self):
        return functools.partial(sela_loss, **self._solver_params())
