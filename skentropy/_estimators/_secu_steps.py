"""SeCu's training steps on fixed features, one function per step.

The model p_ij = softmax_j(x_iᵀw_j / τ) of unit-norm rows and centres
(eq. 3 of the SeCu supplement), the hard assignment under size bounds and
the projected ascent on their duals (supplement §2), and the closed-form
centre update of Theorem 1 (supplement §1.3, eq. 4), composed into one
epoch by :func:`secu_epoch`. The estimator is in ``_secu``.
"""

import numpy as np
import torch

from skentropy._estimators._batching import shuffled_batches, to_tensor


def cluster_log_probs(features, centres, temperature):
    """ln p_ij = ln softmax_j(x_iᵀw_j / τ) of unit-norm features and centres.

    Eq. (3) of the SeCu supplement (the paper writes λ for τ).
    """
    return torch.log_softmax(features @ centres.T / temperature, dim=1)


def constrained_assignment(log_probs, lower_dual, upper_dual):
    """Hard labels y_i = argmin_j −ln p_ij − ρ_j + ρ'_j (supplement §2)."""
    return (log_probs + lower_dual - upper_dual).argmax(dim=1)


def dual_step(lower_dual, upper_dual, fractions, lower_bound, upper_bound, step):
    """One projected ascent step on the duals ρ, ρ' of the size bounds.

    Supplement §2: ρ_j ← max(0, ρ_j − η (f_j − γ/K)) and
    ρ'_j ← max(0, ρ'_j + η (f_j − γ'/K)), where f_j is the (weighted)
    fraction of the mini-batch assigned to cluster j, γ/K the lower and γ'/K
    the upper bound on it. A too-small cluster gets a larger ρ_j, a too-large
    one a larger ρ'_j, which lower and raise its assignment cost.

    Returns
    -------
    lower_dual, upper_dual : torch.Tensor of shape (n_clusters,)
    """
    lower_dual = (lower_dual - step * (fractions - lower_bound)).clamp(min=0)
    upper_dual = (upper_dual + step * (fractions - upper_bound)).clamp(min=0)
    return lower_dual, upper_dual


def centre_sums(features, labels, log_probs, sample_weight, n_clusters):
    """s_j = Σ_{i: y_i = j} w_i (1 − p_ij) x_i, the numerators of Theorem 1."""
    weight = -torch.expm1(log_probs.gather(1, labels[:, None])) * sample_weight[:, None]
    sums = torch.zeros(
        (n_clusters, features.shape[1]), dtype=features.dtype, device=features.device
    )
    return sums.index_add_(0, labels, weight * features)


def closed_form_centres(sums, centres):
    """w_j = Π_{‖w‖=1}(s_j / Σ_{i: y_i = j} (1 − p_ij)), eq. (4) of Theorem 1.

    The positive denominator drops out of the projection onto the unit
    sphere, so w_j = s_j / ‖s_j‖. A cluster without any point (s_j = 0)
    keeps its centre.
    """
    norms = torch.linalg.vector_norm(sums, dim=1, keepdim=True)
    empty = norms <= torch.finfo(sums.dtype).tiny
    return torch.where(empty, centres, sums / norms.clamp(min=1e-30))


def secu_epoch(
    X,
    given,
    sample_weight,
    state,
    generator,
    *,
    batch_size,
    temperature,
    lower_bound,
    upper_bound,
    dual_lr,
):
    """One epoch: online constrained assignment of X, then Theorem 1.

    The centres are held fixed during the epoch. Each shuffled mini-batch gets
    the labels of supplement §2 for the current duals (labeled rows keep
    their ``given`` cluster, if any), then the duals take one step on its
    cluster fractions (:func:`dual_step`, bounds ``lower_bound`` and
    ``upper_bound`` on the fractions). After the epoch the centres take the
    closed form of Theorem 1 for the epoch's labels.

    Returns
    -------
    state : tuple of torch.Tensor
        New centres, lower duals ρ and upper duals ρ'.

    loss : float
        Mean −ln p_{i y_i} over the epoch's (weighted) rows.
    """
    centres, lower_dual, upper_dual = state
    sums = torch.zeros_like(centres)
    total_loss = torch.zeros((), dtype=centres.dtype, device=centres.device)
    for rows in shuffled_batches(X.shape[0], batch_size, generator):
        weight = to_tensor(sample_weight[rows], like=centres)
        if not weight.sum() > 0:
            continue  # zero weights drop rows, and here a whole batch
        features = _normalize(to_tensor(X[rows], like=centres))
        log_probs = cluster_log_probs(features, centres, temperature)
        labels = constrained_assignment(log_probs, lower_dual, upper_dual)
        if given is not None:
            batch_given = torch.as_tensor(given[rows], device=labels.device)
            labels = torch.where(batch_given >= 0, batch_given, labels)
        fractions = torch.zeros_like(lower_dual).index_add_(0, labels, weight)
        lower_dual, upper_dual = dual_step(
            lower_dual,
            upper_dual,
            fractions / weight.sum(),
            lower_bound,
            upper_bound,
            dual_lr,
        )
        sums += centre_sums(features, labels, log_probs, weight, centres.shape[0])
        total_loss -= (log_probs.gather(1, labels[:, None])[:, 0] * weight).sum()
    loss = total_loss.item() / sample_weight.sum()
    if not np.isfinite(loss):
        raise ValueError(
            f"The training loss became {loss}; rows of X may be too small "
            "or too large to normalize in its dtype: standardize X (e.g. "
            "StandardScaler)."
        )
    return (closed_form_centres(sums, centres), lower_dual, upper_dual), loss


def _normalize(features):
    """Rows projected onto the unit sphere (a zero row stays zero).

    Only an exactly zero norm is left alone: torch's default floor of 1e-12
    on the norm would shrink the rows of finely scaled data (norms below
    1e-12) instead of normalizing them.
    """
    tiny = torch.finfo(features.dtype).tiny
    return torch.nn.functional.normalize(features, dim=1, eps=tiny)
