"""The target cluster proportions u (``prior``): one rule, checked in one place.

The estimators (their ``prior`` parameter) and the loss terms of
:mod:`skentropy.losses` check a prior with :func:`check_prior`.
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
