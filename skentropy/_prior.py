"""The target cluster proportions u (``prior``): given, or estimated.

The estimators (their ``prior`` parameter) and the loss terms of
:mod:`skentropy.losses` check a given prior with :func:`check_prior`, one
rule in one place. ``prior="auto"`` estimates the proportions while
training (:class:`PriorEstimate`, :func:`auto_target`).
"""

import numpy as np
import torch

# A prior must sum to one within this, or within its dtype's rounding of K
# entries if that is larger (float32 priors of many clusters).
_SUM_ATOL = 1e-6


def check_prior(prior, n_clusters, *, like=None, positive=True):
    """Target cluster proportions u as a tensor; ``None`` (uniform) stays None.

    The rule: one finite entry per cluster, each positive (or, with
    ``positive=False``, nonnegative), summing to one within
    max(1e-6, K · ε) for the machine epsilon ε of the prior's dtype.

    Parameters
    ----------
    prior : array-like or torch.Tensor of shape (n_clusters,) or None
        The proportions.

    n_clusters : int
        The number of clusters K.

    like : torch.Tensor, default=None
        The result takes its dtype and device; ``None``: float64 on the CPU.

    positive : bool, default=True
        Whether every entry must be positive. The estimators need it: the
        mean prediction σ̄ of a softmax model has no zero entry, so u_k = 0
        would make their fairness terms infinite. The loss terms accept
        zeros (a cluster that must stay empty).

    Returns
    -------
    prior : torch.Tensor of shape (n_clusters,) or None
    """
    if prior is None:
        return None
    if isinstance(prior, torch.Tensor):
        given = prior
    else:  # floats keep their precision, anything else becomes float64
        given = np.asarray(prior)
        if given.dtype.kind != "f":
            given = given.astype(np.float64)
        if not given.flags.c_contiguous:  # e.g. a reversed view, prior[::-1]
            given = given.copy()
        given = torch.as_tensor(given)
    if not given.dtype.is_floating_point:
        given = given.to(torch.float64)
    if given.shape != (n_clusters,):
        raise ValueError(
            "prior must have one entry per cluster, shape (n_clusters,) = "
            f"({n_clusters},); got shape {tuple(given.shape)}."
        )
    values = given.to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"prior must have finite entries; got {values.numpy()}.")
    if positive and not bool((values > 0).all()):
        raise ValueError(f"prior must have positive entries; got {values.numpy()}.")
    if not bool((values >= 0).all()):
        raise ValueError(f"prior must have nonnegative entries; got {values.numpy()}.")
    atol = max(_SUM_ATOL, n_clusters * torch.finfo(given.dtype).eps)
    total = float(values.sum())
    if not abs(total - 1.0) <= atol:
        raise ValueError(f"prior must sum to 1; got a sum of {total:.6g}.")
    if like is None:
        return values
    return given.to(dtype=like.dtype, device=like.device)


# prior="auto": the target proportions are the estimate m of the clusters'
# shares raised to AUTO_EXPONENT (α) and renormalized, then lifted so that no
# entry is below AUTO_FLOOR / K (see auto_target). Chosen on 8 cells of
# benchmarks/long_tail.py (6 long-tailed, 2 balanced), α in {0.5, 0.7, 1} and
# ε in {0.1, 0.2, 0.3, 0.5}: α = 1 (m itself) emptied clusters at every
# floor, α = 0.5 lost most of the gain on long-tailed data, and floors below
# 0.5 left clusters empty on CIFAR-10 features (docs: fairness.rst).
AUTO_EXPONENT = 0.7
AUTO_FLOOR = 0.5


def fixed_prior(prior, n_clusters):
    """The prior a new model starts from: ``check_prior``, uniform for "auto"."""
    if isinstance(prior, str):  # "auto": the estimate starts uniform
        return None
    return check_prior(prior, n_clusters)


def project_to_floor(proportions, floor):
    """The proportions nearest to m = ``proportions`` with no entry below ``floor``.

    u_k = max(floor, t·m_k), with t > 0 such that Σ_k u_k = 1 (K · floor ≤ 1).
    It minimizes KL(u‖m) and KL(m‖u) alike over the capped simplex
    U = {u : u_k ≥ floor, Σ_k u_k = 1}: in both cases the stationarity
    condition of the Lagrangian makes u_k proportional to m_k wherever the
    bound is not active.

    Parameters
    ----------
    proportions : torch.Tensor of shape (n_clusters,)
        Nonnegative, not all zero; normalized here.

    floor : float
        The least entry, at most 1 / n_clusters.

    Returns
    -------
    u : torch.Tensor of shape (n_clusters,)
    """
    m = proportions / proportions.sum()
    at_floor = torch.zeros_like(m, dtype=torch.bool)
    for _ in range(m.shape[0]):  # each pass fixes at least one more entry
        mass = 1.0 - floor * int(at_floor.sum())
        scale = mass / torch.where(at_floor, 0.0, m).sum()
        u = torch.where(at_floor, floor, m * scale)
        below = ~at_floor & (u < floor)
        if not bool(below.any()):
            break
        at_floor |= below
    return u


def auto_target(proportions):
    """The target proportions u of ``prior="auto"`` for estimated shares m.

    u minimizes KL(u‖m) + β KL(u‖1/K) over the capped simplex
    U = {u : u_k ≥ ε/K, Σ_k u_k = 1}, with β = 1/α − 1 (α = AUTO_EXPONENT =
    0.7) and ε = AUTO_FLOOR = 0.5: the cluster shares m, pulled towards equal
    ones, with a least share. Since KL(u‖m) + β KL(u‖1/K) equals
    (1 + β) KL(u‖m^α / Σ_j m_j^α) plus a constant, u is
    :func:`project_to_floor` of m^α.

    It follows the data without drifting to one cluster: u_k / m_k is
    t·m_k^(α−1) or ε/(K m_k), both decreasing in m_k, so a cluster is always
    asked for more than its share when it is smaller than the others and
    for less when it is larger, and never for less than ε/K.
    """
    return project_to_floor(
        proportions**AUTO_EXPONENT, AUTO_FLOOR / proportions.shape[0]
    )


class PriorEstimate:
    """The running estimate of each head's cluster shares (``prior="auto"``).

    Every mini-batch moves the estimate m of a head towards the batch's mean
    prediction σ̄: m ← (1 − ρ) m + ρ σ̄, with ρ the batch's share of the
    training set, so that m follows the mean prediction of about the last
    epoch; it starts uniform (or from a fitted model's estimate) and moves
    only once the margin term is whole (on fixed features after its warm-up,
    see :func:`~skentropy._estimators._training.margin_scale`; deep mode has
    none), when the predictions are no longer soft. The target proportions of the next
    batch are :func:`auto_target` of m.

    Parameters
    ----------
    n_heads, n_clusters : int

    rate : float
        ρ, in (0, 1].

    means : array-like of shape (n_heads, n_clusters), default=None
        The estimate to start from; ``None``: uniform.
    """

    def __init__(self, n_heads, n_clusters, rate, means=None):
        if means is None:
            means = np.full((n_heads, n_clusters), 1.0 / n_clusters)
        self.means = torch.as_tensor(np.array(means, dtype=np.float64))
        self.rate = rate

    def to(self, dtype, device):
        """Move the estimate to ``dtype`` and ``device``, in place; self."""
        self.means = self.means.to(dtype=dtype, device=device)
        return self

    def target(self, head):
        """The target proportions u of a head's next batch."""
        return auto_target(self.means[head])

    def estimate(self, head):
        """A head's estimated cluster shares m (positive, summing to one)."""
        return self.means[head] / self.means[head].sum()

    @torch.no_grad()
    def update(self, head, mean_prediction):
        """Move a head's estimate towards a batch's mean prediction σ̄."""
        means = self.means[head]
        self.means[head] = means + self.rate * (mean_prediction.to(means) - means)
