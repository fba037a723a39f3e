"""Loss terms of discriminative entropy clustering, one torch function per term.

The estimators compose their training losses from these terms, e.g. the
maximum-margin entropy clustering loss (entropy-clustering-kmeans-svm eq. 11,
written with a KL fairness term), :func:`max_margin_entropy`, reads ::

    decisiveness(log_probs) + fairness_weight * fairness(log_probs, prior)
    + gamma * margin(head.weight)

Conventions shared by every function:

- Model predictions σ enter as **log-probabilities** ``log_probs`` of shape
  ``(n_samples, n_clusters)``, e.g. ``torch.log_softmax(logits, dim=1)``;
  pseudo-labels ``targets`` (y) as probabilities of the same shape; the target
  cluster proportions ``prior`` (u) as probabilities of shape ``(n_clusters,)``,
  ``None`` meaning uniform.
- Every function returns a 0-d tensor. Per-row terms are averaged over rows,
  weighted by ``sample_weight`` when given (``None`` means uniform weights);
  the mean prediction σ̄ and mean pseudo-label ȳ use the same weights. Rows
  with zero weight contribute nothing, even where their term is infinite, so a
  zero weight is the same as dropping the row and an integer weight the same
  as repeating it.
- Only shapes are checked, and the prior by the rule of the estimators'
  ``prior`` (nonnegative entries, which the estimators require positive,
  summing to one). Rows on the probability simplex and nonnegative weights
  are **assumed**, not checked: these functions sit on the training hot path.
- Computations stay in log space (``log_softmax`` input, log-sum-exp), with
  0·ln 0 = 0. Exact zeros (one-hot rows, ``-inf`` log-probabilities, empty
  clusters) give neither NaN values nor NaN gradients. A term that is
  infinite by definition (for example Shannon's cross-entropy with σ_k = 0
  where y_k > 0) is ``+inf``; where that infinity is a constant of the
  inputs, its gradient is zero.
- An explicit floor, ``torch.finfo(dtype).tiny``, is used only where the
  logarithm of an *estimated* distribution is taken (pseudo-labels y in
  :func:`reverse_cross_entropy`, the mean pseudo-label ȳ in
  :func:`strong_fairness`), so that those terms stay finite.

Equations refer to the papers "Discriminative Entropy Clustering and its
Relation to K-means and SVM" (entropy-clustering-kmeans-svm) and "Collision
Cross-entropy and EM Algorithm for Self-labeled Classification" (Zhang et al.,
collision-cross-entropy).
"""

import math

import torch

from skentropy._prior import check_prior

__all__ = [
    "collision_cross_entropy",
    "cross_entropy",
    "decisiveness",
    "fairness",
    "margin",
    "max_margin_entropy",
    "mutual_information",
    "reverse_cross_entropy",
    "strong_fairness",
]


# --------------------------------------------------------------------------
# Validation (shapes only; values are assumed valid, see the module docstring)
# --------------------------------------------------------------------------


def _check_probability_matrix(matrix, name):
    if not isinstance(matrix, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(matrix).__name__}.")
    if matrix.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D tensor of shape (n_samples, n_clusters), "
            f"got shape {tuple(matrix.shape)}."
        )
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ValueError(
            f"{name} must have at least one row and one column, "
            f"got shape {tuple(matrix.shape)}."
        )


def _check_same_shape(targets, log_probs, name="targets"):
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(targets).__name__}.")
    if targets.shape != log_probs.shape:
        raise ValueError(
            f"{name} must have the same shape as log_probs, got "
            f"{tuple(targets.shape)} and {tuple(log_probs.shape)}."
        )


def _check_vector(vector, length, name, length_name, like):
    """Convert ``vector`` to a tensor on ``like``'s device and dtype; check shape."""
    vector = torch.as_tensor(vector, dtype=like.dtype, device=like.device)
    if vector.shape != (length,):
        raise ValueError(
            f"{name} must have shape ({length_name},) = ({length},), "
            f"got shape {tuple(vector.shape)}."
        )
    return vector


def _sample_weight_like(sample_weight, like):
    """``sample_weight`` checked as a vector of one weight per row of ``like``.

    ``None`` stays None (every row weighs one).
    """
    if sample_weight is None:
        return None
    return _check_vector(
        sample_weight, like.shape[0], "sample_weight", "n_samples", like
    )


# --------------------------------------------------------------------------
# NaN-free building blocks
# --------------------------------------------------------------------------


def _log_or_zero(x):
    """ln x where x > 0 and 0 where x == 0; finite gradient everywhere."""
    return torch.log(torch.where(x > 0, x, 1.0))


def _log_weighted_sum_exp(x, weight, dim):
    """ln Σ weight·exp(x) along ``dim`` for ``weight >= 0``.

    A log-sum-exp shifted by the largest ``x`` on the support of ``weight``,
    i.e. ``logsumexp(x + ln weight)`` without taking ``ln weight``: gradients
    with respect to both ``x`` and ``weight`` are exact, including where
    ``weight`` is 0 or ``x`` is ``-inf``. An empty sum gives ``-inf`` with a
    zero gradient (``torch.logsumexp`` would give NaN gradients there).
    """
    on_support = torch.where(weight > 0, x, -math.inf)
    shift = on_support.amax(dim=dim, keepdim=True).detach()
    shift = torch.where(torch.isfinite(shift), shift, 0.0)
    # Off the support exp(x - shift) may overflow; it is multiplied by 0 there.
    overflow = math.floor(math.log(torch.finfo(x.dtype).max))
    scaled = torch.exp((x - shift).clamp(max=overflow))
    total = (weight * scaled).sum(dim=dim, keepdim=True)
    nonzero = total > 0
    log_total = _log_or_zero(total) + shift
    return torch.where(nonzero, log_total, -math.inf).squeeze(dim)


def _entropy(log_p, dim=-1):
    """Shannon entropy −Σ p ln p from log-probabilities, with 0·ln 0 = 0."""
    p = torch.exp(log_p)
    return -(p * torch.where(p > 0, log_p, 0.0)).sum(dim=dim)


def _weighted_mean(values, sample_weight):
    """Mean of per-row ``values`` over the last axis; zero-weight rows are left
    out, even if inf. ``values`` of shape (..., n_samples) gives shape (...)."""
    if sample_weight is None:
        return values.mean(dim=-1)
    weighted = torch.where(sample_weight > 0, sample_weight * values, 0.0)
    return weighted.sum(dim=-1) / sample_weight.sum()


def _reverse_cross_entropy_rows(log_probs, targets):
    """H(σ_i, y_i) of each row, over the last axis.

    See :func:`reverse_cross_entropy`; any leading axes (a stack of heads).
    """
    # ln y of an estimated distribution: floor at the smallest normal float.
    log_targets = torch.log(targets.clamp(min=torch.finfo(targets.dtype).tiny))
    return -(torch.exp(log_probs) * log_targets).sum(dim=-1)


def _collision_cross_entropy_rows(log_probs, targets):
    """−ln σ_i·y_i of each row, over the last axis.

    See :func:`collision_cross_entropy`; any leading axes (a stack of heads).
    """
    return -_log_weighted_sum_exp(log_probs, targets, dim=-1)


def _log_mean_prediction(log_probs, sample_weight):
    """ln σ̄ of the (weighted) mean prediction σ̄ = Σ_i w_i σ_i / Σ_i w_i.

    Over the rows, the second last axis: ``log_probs`` of shape (..., n, K)
    gives shape (..., K).
    """
    if sample_weight is None:
        weight = torch.ones_like(log_probs[..., :1])
        total = math.log(log_probs.shape[-2])
    else:
        weight = sample_weight[:, None]
        total = torch.log(sample_weight.sum())
    return _log_weighted_sum_exp(log_probs, weight, dim=-2) - total


def _fairness_of_mean(log_mean, prior):
    """KL(σ̄‖u) from ln σ̄ over the last axis (see :func:`fairness`).

    ``prior`` of shape (K,), of ``log_mean``'s shape, or None (uniform).
    """
    mean = torch.exp(log_mean)
    if prior is None:
        log_ratio = log_mean + math.log(log_mean.shape[-1])
        return (mean * torch.where(mean > 0, log_ratio, 0.0)).sum(dim=-1)
    log_ratio = log_mean - _log_or_zero(prior)
    terms = mean * torch.where(mean > 0, log_ratio, 0.0)
    # u_k = 0: the term is 0 if σ̄_k = 0 and +inf otherwise, a constant.
    outside_prior = torch.where(mean > 0, math.inf, 0.0)
    return torch.where(prior > 0, terms, outside_prior).sum(dim=-1)


def _max_margin_terms(log_probs, prior, sample_weight, *, fairness_weight):
    """mean H(σ) + λ KL(σ̄‖u) over the rows, the second last axis.

    :func:`max_margin_entropy` without its checks and margin term, for
    ``log_probs`` of shape (n, K) (shape ()) or a stack of heads (S, n, K)
    (shape (S,)), with ``prior`` of shape (K,), (S, K) or None.
    """
    mean_entropy = _weighted_mean(_entropy(log_probs), sample_weight)
    log_mean = _log_mean_prediction(log_probs, sample_weight)
    return mean_entropy + fairness_weight * _fairness_of_mean(log_mean, prior)


# --------------------------------------------------------------------------
# Loss terms
# --------------------------------------------------------------------------


def decisiveness(log_probs, sample_weight=None):
    """Mean entropy of the predictions, the decisiveness term.

    Computes mean_i H(σ_i) = −mean_i Σ_k σ_ik ln σ_ik. It is small when every
    prediction is confident (close to one-hot).

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_samples, n_clusters)
        Log-probabilities ln σ of the model predictions, e.g. the output of
        ``torch.log_softmax(logits, dim=1)``. ``-inf`` entries are allowed.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights of the mean. ``None`` gives every row weight one.

    Returns
    -------
    loss : torch.Tensor of shape ()
        The weighted mean entropy, in nats, between 0 and ln(n_clusters).

    Notes
    -----
    First term of the mutual-information loss, eq. (1) of
    entropy-clustering-kmeans-svm, also used in eqs. (4) and (11) there.
    Evaluated as −Σ_k exp(ln σ_k) ln σ_k with 0·ln 0 = 0, so one-hot rows give
    0 with finite gradients.

    Examples
    --------
    >>> import torch
    >>> from skentropy.losses import decisiveness
    >>> probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    >>> decisiveness(torch.log(probs))  # (ln 2 + 0) / 2
    tensor(0.3466)
    """
    _check_probability_matrix(log_probs, "log_probs")
    sample_weight = _sample_weight_like(sample_weight, log_probs)
    return _weighted_mean(_entropy(log_probs, dim=1), sample_weight)


def cross_entropy(targets, log_probs, sample_weight=None):
    """Mean Shannon cross-entropy H(y, σ) of the predictions against targets.

    Computes mean_i H(y_i, σ_i) = −mean_i Σ_k y_ik ln σ_ik, the standard
    ("forward") cross-entropy that trains σ to copy the targets y.

    Parameters
    ----------
    targets : torch.Tensor of shape (n_samples, n_clusters)
        Target distributions y (pseudo-labels), rows on the probability
        simplex; may contain exact zeros (one-hot rows).

    log_probs : torch.Tensor of shape (n_samples, n_clusters)
        Log-probabilities ln σ of the model predictions. ``-inf`` entries are
        allowed.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights of the mean. ``None`` gives every row weight one.

    Returns
    -------
    loss : torch.Tensor of shape ()
        The weighted mean cross-entropy in nats. It is ``+inf`` when some
        σ_ik = 0 where y_ik > 0 (a row of positive weight); the gradient with
        respect to ``log_probs`` stays finite (−y_ik w_i / Σ w).

    See Also
    --------
    reverse_cross_entropy : H(σ, y), the arguments swapped.
    collision_cross_entropy : −ln σ·y.

    Notes
    -----
    The decisiveness term of the self-labeling losses eqs. (5), (6) and (12)
    of entropy-clustering-kmeans-svm (SeLa, MI-ADM); eq. (8) of
    collision-cross-entropy. Terms with y_ik = 0 contribute 0 whatever σ_ik.

    Examples
    --------
    >>> import torch
    >>> from skentropy.losses import cross_entropy
    >>> targets = torch.tensor([[1.0, 0.0]])
    >>> log_probs = torch.log(torch.tensor([[0.25, 0.75]]))
    >>> cross_entropy(targets, log_probs)  # ln 4
    tensor(1.3863)
    """
    _check_probability_matrix(log_probs, "log_probs")
    _check_same_shape(targets, log_probs)
    sample_weight = _sample_weight_like(sample_weight, log_probs)
    # 0·ln σ = 0 even where σ = 0 (ln σ = -inf).
    rows = -(targets * torch.where(targets > 0, log_probs, 0.0)).sum(dim=1)
    return _weighted_mean(rows, sample_weight)


def reverse_cross_entropy(log_probs, targets, sample_weight=None):
    """Mean reverse cross-entropy H(σ, y) of the predictions against targets.

    Computes mean_i H(σ_i, y_i) = −mean_i Σ_k σ_ik ln y_ik. Unlike
    :func:`cross_entropy` it is bounded in σ and weakens the training on
    uncertain pseudo-labels, which makes it robust to errors in y.

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_samples, n_clusters)
        Log-probabilities ln σ of the model predictions. ``-inf`` entries are
        allowed.

    targets : torch.Tensor of shape (n_samples, n_clusters)
        Estimated distributions y (pseudo-labels), rows on the probability
        simplex; may contain exact zeros.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights of the mean. ``None`` gives every row weight one.

    Returns
    -------
    loss : torch.Tensor of shape ()
        The weighted mean reverse cross-entropy in nats. Always finite.

    See Also
    --------
    cross_entropy : H(y, σ), the standard order of the arguments.
    strong_fairness : the fairness term that goes with it in eq. (13).

    Notes
    -----
    The decisiveness term of the self-labeling loss eq. (13) of
    entropy-clustering-kmeans-svm. The pseudo-labels y are an *estimated*
    distribution, so ln y is taken as ``log(clamp(y, min=tiny))`` with
    ``tiny = torch.finfo(targets.dtype).tiny`` (ln tiny ≈ −87.3 in float32,
    ≈ −708.4 in float64): the loss and its gradients stay finite where
    y_ik = 0, which charges a large but finite penalty for σ_ik > 0 there.
    The gradient with respect to ``targets`` is zero at those entries.

    Examples
    --------
    >>> import torch
    >>> from skentropy.losses import reverse_cross_entropy
    >>> log_probs = torch.log(torch.tensor([[0.5, 0.5]]))
    >>> targets = torch.tensor([[0.25, 0.75]])
    >>> reverse_cross_entropy(log_probs, targets)  # -(ln 0.25 + ln 0.75) / 2
    tensor(0.8370)
    """
    _check_probability_matrix(log_probs, "log_probs")
    _check_same_shape(targets, log_probs)
    sample_weight = _sample_weight_like(sample_weight, log_probs)
    return _weighted_mean(
        _reverse_cross_entropy_rows(log_probs, targets), sample_weight
    )


def collision_cross_entropy(log_probs, targets, sample_weight=None):
    """Mean collision cross-entropy −ln σ·y of the predictions and targets.

    Computes mean_i H₂(y_i, σ_i) = −mean_i ln Σ_k σ_ik y_ik, the negative log
    probability that a class drawn from σ_i equals a label drawn from y_i.
    It is symmetric in σ and y, equals :func:`cross_entropy` for one-hot y,
    and is ln(n_clusters) whatever σ when y is uniform.

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_samples, n_clusters)
        Log-probabilities ln σ of the model predictions. ``-inf`` entries are
        allowed.

    targets : torch.Tensor of shape (n_samples, n_clusters)
        Target distributions y (pseudo-labels), rows on the probability
        simplex; may contain exact zeros.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights of the mean. ``None`` gives every row weight one.

    Returns
    -------
    loss : torch.Tensor of shape ()
        The weighted mean collision cross-entropy in nats. It is ``+inf``
        when σ_i·y_i = 0 exactly for a row of positive weight; such rows get
        zero gradients, the others their exact gradients.

    See Also
    --------
    cross_entropy : Shannon's cross-entropy H(y, σ).

    Notes
    -----
    Eq. (9) of collision-cross-entropy, the decisiveness term of its
    self-labeling losses eqs. (10)–(12). Evaluated in log space as
    −logsumexp_k(ln σ_ik + ln y_ik), with the log-sum-exp shifted by the
    largest ln σ_ik on the support of y_i and y_ik multiplying (rather than
    ln y_ik adding), so that no logarithm of y is taken: the gradient with
    respect to ``targets`` is exact, −σ_ik / (σ_i·y_i) per row, also where
    y_ik = 0 (the boundary points where pseudo-label solvers work).

    Examples
    --------
    >>> import torch
    >>> from skentropy.losses import collision_cross_entropy
    >>> log_probs = torch.log(torch.tensor([[0.2, 0.8], [0.5, 0.5]]))
    >>> targets = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    >>> collision_cross_entropy(log_probs, targets)  # (ln 2 + ln 2) / 2
    tensor(0.6931)
    """
    _check_probability_matrix(log_probs, "log_probs")
    _check_same_shape(targets, log_probs)
    sample_weight = _sample_weight_like(sample_weight, log_probs)
    rows = _collision_cross_entropy_rows(log_probs, targets)
    return _weighted_mean(rows, sample_weight)


def fairness(log_probs, prior=None, sample_weight=None):
    """Reverse KL divergence KL(σ̄‖u) of the mean prediction from the prior.

    Computes Σ_k σ̄_k (ln σ̄_k − ln u_k) for the mean prediction
    σ̄ = Σ_i w_i σ_i / Σ_i w_i. It is small when the clusters are used in the
    proportions u, but tolerates empty clusters (σ̄_k = 0 costs only a finite
    amount); see :func:`strong_fairness` for the zero-avoiding version.

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_samples, n_clusters)
        Log-probabilities ln σ of the model predictions. ``-inf`` entries are
        allowed.

    prior : array-like of shape (n_clusters,), default=None
        Target cluster proportions u. ``None`` means uniform, u_k = 1/K.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights of the mean prediction σ̄. ``None`` gives every row
        weight one.

    Returns
    -------
    loss : torch.Tensor of shape ()
        KL(σ̄‖u) in nats, nonnegative. Terms with σ̄_k = 0 contribute 0; a
        term with u_k = 0 < σ̄_k makes it ``+inf`` (with a zero gradient from
        that term).

    See Also
    --------
    strong_fairness : the forward divergence KL(u‖ȳ).
    mutual_information : H(σ̄) − mean H(σ), which contains −H(σ̄).

    Notes
    -----
    The fairness term of eq. (4) of entropy-clustering-kmeans-svm, also in
    its eqs. (11) (in KL form) and (12) (there on ȳ). For uniform u,
    KL(σ̄‖u) = ln K − H(σ̄), so it differs from the −H(σ̄) of eq. (1) by a
    constant. ln σ̄ is computed in log space,
    ln σ̄_k = logsumexp_i(ln σ_ik + ln w_i) − ln Σ_i w_i, so clusters whose
    predictions all underflow are handled without NaN.

    Examples
    --------
    >>> import torch
    >>> from skentropy.losses import fairness
    >>> log_probs = torch.log(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    >>> fairness(log_probs)  # every point in one of two clusters: ln 2
    tensor(0.6931)
    >>> fairness(log_probs, prior=torch.tensor([0.5, 0.5]), sample_weight=[1.0, 3.0])
    tensor(0.6931)
    """
    _check_probability_matrix(log_probs, "log_probs")
    prior = check_prior(prior, log_probs.shape[1], like=log_probs, positive=False)
    sample_weight = _sample_weight_like(sample_weight, log_probs)
    log_mean = _log_mean_prediction(log_probs, sample_weight)
    return _fairness_of_mean(log_mean, prior)


def strong_fairness(targets_or_probs, prior=None, sample_weight=None):
    """Forward KL divergence KL(u‖ȳ) of the prior from the mean distribution.

    Computes Σ_k u_k (ln u_k − ln ȳ_k) for the mean ȳ = Σ_i w_i y_i / Σ_i w_i
    of the given distributions (pseudo-labels y, or predictions σ). Unlike
    :func:`fairness` it is zero-avoiding: it penalizes nearly empty clusters
    very strongly ("strong fairness").

    Parameters
    ----------
    targets_or_probs : torch.Tensor of shape (n_samples, n_clusters)
        Probabilities (not log-probabilities) whose mean ȳ is compared with
        the prior: pseudo-labels y in the self-labeling losses, or model
        predictions σ. Rows on the probability simplex.

    prior : array-like of shape (n_clusters,), default=None
        Target cluster proportions u. ``None`` means uniform, u_k = 1/K.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights of the mean ȳ. ``None`` gives every row weight one.

    Returns
    -------
    loss : torch.Tensor of shape ()
        KL(u‖ȳ) in nats, nonnegative and always finite. Terms with u_k = 0
        contribute 0.

    See Also
    --------
    fairness : the reverse divergence KL(σ̄‖u).

    Notes
    -----
    The strong fairness term of eq. (13) of entropy-clustering-kmeans-svm
    (KL(u‖ȳ) = H(u, ȳ) − H(u), the λ H(u, ȳ) of its EM derivation) and of
    eqs. (11)–(12) of collision-cross-entropy. ȳ is an *estimated*
    distribution, so ln ȳ is taken as ``log(clamp(ȳ, min=tiny))`` with
    ``tiny = torch.finfo(dtype).tiny``: an empty cluster costs
    u_k (ln u_k − ln tiny), large but finite, with a zero gradient from that
    term. ȳ is the plain weighted mean, not renormalized, so gradients with
    respect to y match the paper's (−u_k / Σ_j y_jk per unit weight).

    Examples
    --------
    >>> import torch
    >>> from skentropy.losses import strong_fairness
    >>> targets = torch.tensor([[0.9, 0.1], [0.7, 0.3]])
    >>> strong_fairness(targets)  # ȳ = (0.8, 0.2): -(ln 1.6 + ln 0.4) / 2
    tensor(0.2231)
    """
    probs = targets_or_probs
    _check_probability_matrix(probs, "targets_or_probs")
    prior = check_prior(prior, probs.shape[1], like=probs, positive=False)
    sample_weight = _sample_weight_like(sample_weight, probs)
    if sample_weight is None:
        mean = probs.mean(dim=0)
    else:
        mean = (sample_weight[:, None] * probs).sum(dim=0) / sample_weight.sum()
    # ln ȳ of an estimated distribution: floor at the smallest normal float.
    log_mean = torch.log(mean.clamp(min=torch.finfo(mean.dtype).tiny))
    if prior is None:
        n_clusters = probs.shape[1]
        return -math.log(n_clusters) - log_mean.sum() / n_clusters
    # u_k = 0 gives 0 · (0 − ln ȳ_k) = 0.
    return (prior * (_log_or_zero(prior) - log_mean)).sum()


def mutual_information(log_probs, sample_weight=None):
    """Mutual information between the input and the predicted cluster.

    Computes Bridle's estimate MI = H(σ̄) − mean_i H(σ_i): the entropy of
    the mean prediction (fairness) minus the mean entropy of the predictions
    (decisiveness). It is the quantity MI-GD **maximizes**; as a loss to
    minimize use its negation, ``-mutual_information(log_probs)``, which is
    L_mi of eq. (1).

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_samples, n_clusters)
        Log-probabilities ln σ of the model predictions. ``-inf`` entries are
        allowed.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights of the mean prediction σ̄ and of the mean entropy.
        ``None`` gives every row weight one.

    Returns
    -------
    mi : torch.Tensor of shape ()
        The mutual information in nats, between 0 and ln(n_clusters).

    See Also
    --------
    decisiveness : mean H(σ).
    fairness : KL(σ̄‖u) = ln K − H(σ̄) for uniform u.

    Notes
    -----
    Eq. (1) of entropy-clustering-kmeans-svm (Bridle et al., 1991; Krause et
    al., 2010): L_mi = −MI ≈ mean H(σ) − H(σ̄). With uniform u and unit
    fairness weight, −MI = decisiveness + fairness − ln K, eq. (4).

    Examples
    --------
    >>> import torch
    >>> from skentropy.losses import mutual_information
    >>> log_probs = torch.log(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> mutual_information(log_probs)  # decisive and balanced: ln 2
    tensor(0.6931)
    """
    _check_probability_matrix(log_probs, "log_probs")
    sample_weight = _sample_weight_like(sample_weight, log_probs)
    log_mean = _log_mean_prediction(log_probs, sample_weight)
    mean_entropy = _weighted_mean(_entropy(log_probs, dim=1), sample_weight)
    return _entropy(log_mean, dim=0) - mean_entropy


def max_margin_entropy(
    log_probs,
    prior=None,
    sample_weight=None,
    *,
    fairness_weight=1.0,
    weight=None,
    gamma=0.0,
):
    """The maximum-margin entropy clustering loss mean H(σ) + λ KL(σ̄‖u) + γ‖v‖².

    Decisiveness, fairness and margin: :func:`decisiveness` plus
    ``fairness_weight`` times :func:`fairness`, plus ``gamma`` times
    :func:`margin` of the classifier weights v when they are given. It is the
    training loss of :class:`~skentropy.MaxMarginEntropyClustering` and of
    :class:`~skentropy.MIGDClustering` (whose estimators add γ‖v‖² themselves,
    see their ``gamma``) and the loss that every estimator's ``score`` negates.

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_samples, n_clusters)
        Log-probabilities ln σ of the model predictions. ``-inf`` entries are
        allowed.

    prior : array-like of shape (n_clusters,), default=None
        Target cluster proportions u. ``None`` means uniform, u_k = 1/K.

    sample_weight : array-like of shape (n_samples,), default=None
        Row weights of the mean entropy and of the mean prediction σ̄.
        ``None`` gives every row weight one.

    fairness_weight : float, default=1.0
        The weight λ of the fairness term.

    weight : torch.Tensor, default=None
        The weights v of the classifier, without its bias, for the margin
        term; ``None`` leaves the term out.

    gamma : float, default=0.0
        The weight γ of the margin term.

    Returns
    -------
    loss : torch.Tensor of shape ()
        The loss in nats.

    See Also
    --------
    mutual_information : H(σ̄) − mean H(σ); for uniform u and λ = 1 the loss
        without margin is ln K minus it.

    Notes
    -----
    Eq. (11) of entropy-clustering-kmeans-svm in the KL form of its
    supplement eq. (a); with λ = 1 and no margin term, the loss of MI-GD,
    eq. (4) there.

    Examples
    --------
    >>> import torch
    >>> from skentropy.losses import max_margin_entropy
    >>> log_probs = torch.log(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> max_margin_entropy(log_probs)  # decisive and balanced
    tensor(0.)
    >>> weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> max_margin_entropy(log_probs, weight=weight, gamma=0.5)  # 0.5 · ‖v‖²
    tensor(1.)
    """
    loss = decisiveness(log_probs, sample_weight) + fairness_weight * fairness(
        log_probs, prior, sample_weight
    )
    if weight is not None:
        loss = loss + gamma * margin(weight)
    return loss


def margin(weight):
    """Squared Frobenius norm ‖v‖² of the classifier weights.

    Parameters
    ----------
    weight : torch.Tensor
        The weights v of the linear classifier (head), e.g.
        ``head.weight`` of shape (n_clusters, n_features). The caller passes
        the weights only, **not the bias**: the margin is defined on v
        without the bias.

    Returns
    -------
    loss : torch.Tensor of shape ()
        Σ v², exactly ‖v‖² (no factor ½).

    Notes
    -----
    The margin-maximization regularizer of eqs. (10), (11) and (13) of
    entropy-clustering-kmeans-svm, where 1/‖v‖ is the margin width. The
    weight γ multiplies it outside this function (γ‖v‖²). It differs from an
    optimizer's ``weight_decay``, which acts on every parameter.

    Examples
    --------
    >>> import torch
    >>> from skentropy.losses import margin
    >>> head = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = head.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    >>> margin(head.weight)  # the bias is left out
    tensor(30., grad_fn=<SumBackward0>)
    """
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}.")
    return weight.square().sum()
