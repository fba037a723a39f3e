"""Pieces shared by the pseudo-label solvers: objective, gradient, KKT rule, SPD solves.

The two pseudo-label problems of :mod:`skentropy.pseudo_labels` (the docs page
"Design of the pseudo-label solvers", ``docs/developer/pseudo_label_solvers.rst``),
with row weights w summing to one, ȳ = Σ_i w_i y_i, target proportions u and
fairness weight λ:

reverse cross-entropy (entropy-clustering-kmeans-svm eq. 14)
    E(y)  = −Σ_i w_i Σ_k σ_ik ln y_ik − λ Σ_k u_k ln ȳ_k

collision cross-entropy (collision-cross-entropy eq. 12)
    E₂(y) = −Σ_i w_i ln σ_i·y_i − λ Σ_k u_k ln ȳ_k

Their objective (:func:`objective`), gradient (:func:`scaled_gradient`) and
optimality certificate (:func:`relative_kkt_residual`) are written here once;
every library solver stops on them. (The reference solvers of
``skentropy._reference_solvers``, which judge the library, keep their own
independent copies.) All functions work on float64 torch tensors and assume
validated input.
"""

import math

import torch

__all__ = [
    "CholeskySolver",
    "kkt_terms",
    "fairness_gradient",
    "objective",
    "relative_kkt_residual",
    "scaled_gradient",
    "solve_spd",
    "weighted_mean",
]


def weighted_mean(y, weights):
    """ȳ = Σ_i w_i y_i (weights summing to one), broadcastable against y.

    Of shape (n_classes,) for y of shape (n_samples, n_classes), and
    (n_problems, 1, n_classes) for a stack of problems that share the rows'
    weights, y of shape (n_problems, n_samples, n_classes).
    """
    mean = weights @ y
    return mean if y.ndim == 2 else mean.unsqueeze(-2)


def fairness_gradient(y_bar, scaled_prior):
    """β_k = λu_k / ȳ_k, minus the derivative of −λ Σ_k u_k ln ȳ_k in ȳ_k.

    ``scaled_prior`` is λu. β_k is 0 where λu_k = 0 (whatever ȳ_k) and +inf
    where ȳ_k = 0 < λu_k (the objective is infinite there).
    """
    safe = torch.where(y_bar > 0, y_bar, 1.0)
    return torch.where(
        scaled_prior > 0, torch.where(y_bar > 0, scaled_prior / safe, math.inf), 0.0
    )


def scaled_gradient(loss, probs, y, weights, scaled_prior):
    """G_ik = ∂E/∂y_ik / w_i, the gradient in the scale of one row.

    With uniform weights G = N ∂E/∂y: O(1) for the cross-entropy part and
    O(λ) for the fairness part,

    * reverse cross-entropy (entropy-clustering eq. 14):
      G_ik = −σ_ik / y_ik − λu_k / ȳ_k,
    * collision cross-entropy (collision eq. 12):
      G_ik = −σ_ik / σ_i·y_i − λu_k / ȳ_k,

    with −σ_ik/(·) read as 0 where σ_ik = 0 and as −inf where σ_ik > 0 meets a
    zero denominator (the objective is infinite there).

    Parameters
    ----------
    loss : {"reverse", "collision"}
    probs, y : torch.Tensor of shape (n_samples, n_classes)
        σ and the pseudo-labels.
    weights : torch.Tensor of shape (n_samples,)
        Row weights w summing to one.
    scaled_prior : torch.Tensor of shape (n_classes,)
        λu.

    Returns
    -------
    grad : torch.Tensor of shape (n_samples, n_classes)
    """
    fair = fairness_gradient(weighted_mean(y, weights), scaled_prior)
    denominator = y if loss == "reverse" else (probs * y).sum(dim=-1, keepdim=True)
    cross_entropy = torch.where(probs > 0, probs / denominator, 0.0)
    return -cross_entropy - fair


def objective(loss, probs, y, weights, scaled_prior):
    """E(y) or E₂(y) of the module docstring (``scaled_prior`` = λu).

    A 0-dim tensor for y of shape (n_samples, n_classes); for a stack of
    problems, y of shape (n_problems, n_samples, n_classes) with ``probs`` of
    the same shape and ``scaled_prior`` of shape (n_classes,) or
    (n_problems, 1, n_classes), one value per problem. +inf outside the
    domain (y_ik = 0 < σ_ik for the reverse cross-entropy, σ_i·y_i = 0 for
    the collision one, ȳ_k = 0 < λu_k), never NaN for y ≥ 0; rows of zero
    weight do not count.
    """
    if loss == "reverse":
        per_row = -torch.special.xlogy(probs, y).sum(dim=-1)
    else:
        per_row = -torch.log((probs * y).sum(dim=-1))
    cross_entropy = torch.where(weights > 0, weights * per_row, 0.0).sum(dim=-1)
    fairness = torch.special.xlogy(scaled_prior, weighted_mean(y, weights))
    return cross_entropy - fairness.sum(dim=-1).reshape(cross_entropy.shape)


def relative_kkt_residual(y, grad, weights=None, mu=None):
    """The sound relative KKT residual for rows on the simplex.

    The KKT rule of the docs page "Design of the pseudo-label solvers"
    (``docs/developer/pseudo_label_solvers.rst``).

    With the per-row scaled gradient G_ik (``grad``, see
    :func:`scaled_gradient`) and μ_i = Σ_k y_ik G_ik, the residual is ::

        max_ik |y_ik (G_ik − μ_i)| / max(1, |μ_i|)
        + max_ik max(0, μ_i − G_ik) / max(1, |μ_i|),

    complementarity plus dual feasibility of the constraints y ≥ 0, Σ_k y_ik = 1
    (the multiplier of y_ik ≥ 0 is G_ik − μ_i). The dual feasibility is checked
    on **every** entry, not only on exact zeros: an entry that should be large
    but sits at 1e-12 (G_ik well below μ_i) has a complementarity of 1e-12 yet
    violates dual feasibility by O(1), so the point is rejected. On a positive
    entry that is still growing towards a small optimum the dual term is
    the complementarity term divided by y_ik. The residual is 0 exactly at a
    minimum (both problems are convex).

    Parameters
    ----------
    y, grad : torch.Tensor of shape (n_samples, n_classes)
        The pseudo-labels and G at them.
    weights : torch.Tensor of shape (n_samples,), default=None
        Row weights: rows of zero weight do not count. ``None`` counts every
        row.
    mu : torch.Tensor of shape (n_samples, 1), default=None
        μ_i if the caller has it already; ``None`` computes it.

    Returns
    -------
    residual : float
        ``inf`` where G is not finite on an entry that counts (a point of
        infinite objective).
    """
    return float(relative_kkt_terms(y, grad, weights, mu))


def relative_kkt_terms(y, grad, weights=None, mu=None):
    """:func:`relative_kkt_residual` of each problem of a stack, as a tensor.

    ``y`` and ``grad`` of shape (..., n_samples, n_classes), the problems
    sharing the row ``weights``; returns a tensor of shape (...) (0-dim for
    one problem) without a host synchronization.
    """
    if mu is None:
        mu = torch.where(y > 0, y * grad, 0.0).sum(dim=-1, keepdim=True)
    # the multipliers of y ≥ 0, relative to the scale of the row; G_ik = +inf
    # (an entry that must stay zero) gives a multiplier +inf and no slack
    reduced = (grad - mu) / mu.abs().clamp_min(1.0)
    slack = torch.where(y > 0, y * reduced, 0.0)
    counted = None if weights is None else weights > 0
    return kkt_terms(slack, reduced, counted)


def kkt_terms(slack, reduced, counted=None):
    """The residual of :func:`relative_kkt_residual` from its two terms.

    ``reduced`` holds the relative multipliers r_ik = (G_ik − μ_i) / max(1, |μ_i|)
    and ``slack`` the complementarity y_ik r_ik (0 where y_ik = 0), of shape
    (..., n_samples, n_classes) for a stack of problems; the residual of each
    problem is max_ik |y_ik r_ik| + max_ik max(0, −r_ik) over the rows where
    ``counted`` (shape (n_samples,), ``None``: every row) is true. Solvers that
    have r from their own update (the reverse EM) call this directly. Returns
    a tensor of shape (...) (0-dim for one problem), without a host
    synchronization; ``inf`` where a term is not finite (NaN or ±inf: the
    point has an infinite objective).
    """
    if counted is not None:
        slack = torch.where(counted[:, None], slack, 0.0)
        reduced = torch.where(counted[:, None], reduced, 0.0)
    complementarity = torch.linalg.vector_norm(slack, math.inf, dim=(-2, -1))
    violation = torch.relu(-reduced.amin(dim=(-2, -1)))
    return torch.nan_to_num(complementarity + violation, nan=math.inf)


class CholeskySolver:
    """Cholesky factorization of a symmetric positive (semi)definite matrix.

    The matrix is scaled by its diagonal before factorizing; one that is
    semidefinite up to rounding gets its spectrum lifted by 1e-12. ``solve``
    reuses the factor.
    """

    def __init__(self, matrix):
        diagonal = matrix.diagonal().clamp_min(torch.finfo(matrix.dtype).tiny).sqrt()
        scaled = matrix / diagonal[:, None] / diagonal
        factor, info = torch.linalg.cholesky_ex(scaled)
        if int(info) != 0:
            eye = torch.eye(scaled.shape[0], dtype=scaled.dtype, device=scaled.device)
            factor, _ = torch.linalg.cholesky_ex(scaled + 1e-12 * eye)
        self.diagonal, self.factor = diagonal, factor

    def solve(self, rhs):
        scaled = torch.cholesky_solve((rhs / self.diagonal)[:, None], self.factor)
        return scaled.squeeze(1) / self.diagonal


def solve_spd(matrix, rhs):
    """Solve matrix @ x = rhs for a symmetric positive (semi)definite matrix."""
    return CholeskySolver(matrix).solve(rhs)
