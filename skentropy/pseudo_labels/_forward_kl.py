"""Exact pseudo-labels of MI-ADM: forward cross-entropy with KL fairness.

The y-subproblem of the MI-ADM loss (Jabi et al. 2021;
entropy-clustering-kmeans-svm eq. 6), with row weights w summing to one, is

    minimize over y (rows y_i on the simplex Δ^K)
    E(y) = Σ_i w_i Σ_k y_ik c_ik + λ Σ_k ȳ_k ln(ȳ_k / u_k),   ȳ = Σ_i w_i y_i,

with costs c_ik = −ln σ_ik: mean H(y, σ) + λ KL(ȳ‖u). It is convex, linear
in each row, and strictly convex in ȳ only, so ȳ is unique but y need not be.

KKT conditions. With the scaled gradient G_ik = ∂E/∂y_ik / w_i
= c_ik + λ (ln(ȳ_k/u_k) + 1), y is optimal iff every row puts its mass on
classes of least G_ik: with β_k = λ ln(ȳ_k/u_k), row i is one-hot at
argmin_k (c_ik + β_k) unless that minimum is tied, and the (few) tied rows
split their mass so that the proportions ȳ reproduce β.

Dual. Dualizing ȳ = z (z on the simplex) with multipliers β gives the concave
dual D(β) = Σ_i w_i min_k (c_ik + β_k) − λ ln Σ_k u_k exp(β_k/λ), whose
second part is smooth, z(β) = softmax(ln u + β/λ), and whose first part is
piecewise linear. It is smoothed by replacing each min by a soft minimum of
temperature ε, −ε ln Σ_k exp(−(c_ik + β_k)/ε), the dual of E plus ε times the
negative row entropies: then y_i(β) = softmax(−(c_i + β)/ε),
∇D_ε = ȳ(β) − z(β) and
−∇²D_ε = (1/ε) Σ_i w_i (diag y_i − y_i y_iᵀ) + (1/λ) (diag z − z zᵀ).

Method. Newton's method with a backtracking line search maximizes D_ε for a
decreasing sequence of ε (ε-scaling, from 1 down by factors of 10 to a tenth
of the tolerance), each stage warm-started at the last β. It stops when the
relative KKT residual of y for E itself (the rule of
:func:`skentropy.pseudo_labels.kkt_residual`) is at most ``tol``: entries off
a row's minimum carry y_ik ≈ exp(−δ/ε), whose complementarity δ exp(−δ/ε) is
at most ε/e and which lift μ_i above the row's least G_ik, the dual
violation of that entry, by at most the sum of theirs. All rows are handled
at once; one K×K system is solved per iteration.
"""

import math

import torch

from skentropy.pseudo_labels._problem import relative_kkt_residual, solve_spd

__all__ = ["forward_kl_kkt_residual", "forward_kl_labels", "forward_kl_objective"]

# ε-scaling: the first temperature, its factor per stage, and the last
# temperature as a share of the tolerance.
_FIRST_TEMPERATURE = 1.0
_TEMPERATURE_FACTOR = 0.1
_LAST_TEMPERATURE_SHARE = 0.1
# Armijo constant and smallest step of the line search.
_ARMIJO = 1e-4
_MIN_STEP = 2.0**-30


def forward_kl_labels(
    log_probs,
    *,
    prior=None,
    fairness_weight=1.0,
    sample_weight=None,
    tol=1e-6,
    max_iter=200,
):
    """Pseudo-labels minimizing mean H(y, σ) + λ KL(ȳ‖u) (MI-ADM, eq. 6).

    Solves the convex y-subproblem of the self-labeling loss of Jabi et al.
    (entropy-clustering-kmeans-svm eq. 6) to a relative KKT residual of at
    most ``tol``, by Newton's method on the K dual variables of its
    entropy-smoothed dual with decreasing smoothing (see the module
    docstring). The optimal labels are one-hot except for at most a few tied
    rows.

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_samples, n_classes)
        ln σ of the predictions (``-inf`` allowed where σ_ik = 0).
    prior : torch.Tensor of shape (n_classes,), default=None
        Target proportions u, positive and summing to one; ``None`` is uniform.
    fairness_weight : float, default=1.0
        λ ≥ 0, the weight of KL(ȳ‖u) (1 in eq. 6).
    sample_weight : torch.Tensor of shape (n_samples,), default=None
        Non-negative row weights, not all zero; ``None`` gives every row
        weight one.
    tol : float, default=1e-6
        Stop when the relative KKT residual is at most ``tol``.
    max_iter : int, default=200
        Maximum number of Newton iterations, over all stages.

    Returns
    -------
    labels : torch.Tensor of shape (n_samples, n_classes)
        The pseudo-labels y, in the dtype and on the device of ``log_probs``.
    n_iter : int
        Newton iterations made.
    converged : bool
        Whether the KKT residual reached ``tol``.

    Notes
    -----
    λ = 0 and one class have closed forms: y one-hot at argmax σ, and y = 1.
    Classes with σ_ik = 0 in every row of positive weight get ȳ_k = 0 and are
    left out of the solve.

    References
    ----------
    Jabi, M., Pedersoli, M., Mitiche, A. and Ben Ayed, I., "Deep clustering:
    on the link between discriminative models and K-means", TPAMI 43(6), 2021.

    Cuturi, M., "Sinkhorn distances: lightspeed computation of optimal
    transport", NeurIPS 2013 (entropic smoothing of linear programs).
    """
    dtype, device = log_probs.dtype, log_probs.device
    costs = -log_probs.detach().to(torch.float64)
    n_samples, n_classes = costs.shape
    weights, prior = _weights_and_prior(
        sample_weight, prior, n_samples, n_classes, device
    )
    fairness_weight = float(fairness_weight)
    if n_classes == 1:
        return torch.ones_like(log_probs), 0, True
    if fairness_weight == 0.0:
        labels = torch.nn.functional.one_hot(costs.argmin(dim=1), n_classes)
        return labels.to(dtype), 0, True
    # classes that no row of positive weight can take keep ȳ_k = 0
    feasible = torch.isfinite(costs[weights > 0]).any(dim=0)
    problem = _SmoothedDual(
        costs[:, feasible], weights, prior[feasible], fairness_weight
    )
    beta = torch.zeros_like(problem.prior)
    temperature = _FIRST_TEMPERATURE
    last_temperature = _LAST_TEMPERATURE_SHARE * tol
    n_iter, converged = 0, False
    while True:
        beta, n_stage = problem.maximize(beta, temperature, max_iter - n_iter)
        n_iter += n_stage
        y = torch.zeros_like(costs)
        y[:, feasible] = problem.labels(beta, temperature)
        converged = (
            forward_kl_kkt_residual(
                y,
                log_probs.detach().to(torch.float64),
                prior=prior,
                fairness_weight=fairness_weight,
                sample_weight=weights,
            )
            <= tol
        )
        if converged or n_iter >= max_iter or temperature <= last_temperature:
            break
        temperature = max(_TEMPERATURE_FACTOR * temperature, last_temperature)
    return y.to(dtype), n_iter, bool(converged)


def forward_kl_objective(
    labels, log_probs, *, prior=None, fairness_weight=1.0, sample_weight=None
):
    """E(y) = Σ_i w_i H(y_i, σ_i) + λ KL(ȳ‖u), the objective of eq. 6 (float)."""
    costs = -log_probs.to(torch.float64)
    labels = labels.to(torch.float64)
    weights, prior = _weights_and_prior(
        sample_weight, prior, *costs.shape, costs.device
    )
    cross_entropy = weights @ torch.where(labels > 0, labels * costs, 0.0).sum(dim=1)
    y_bar = weights @ labels
    kl = torch.where(y_bar > 0, y_bar * torch.log(y_bar / prior), 0.0).sum()
    return float(cross_entropy + fairness_weight * kl)


def forward_kl_kkt_residual(
    labels, log_probs, *, prior=None, fairness_weight=1.0, sample_weight=None
):
    """Relative KKT residual of y for E, with G_ik = c_ik + λ(ln(ȳ_k/u_k) + 1)."""
    costs = -log_probs.to(torch.float64)
    labels = labels.to(torch.float64)
    weights, prior = _weights_and_prior(
        sample_weight, prior, *costs.shape, costs.device
    )
    y_bar = weights @ labels
    log_ratio = torch.where(y_bar > 0, torch.log(y_bar / prior), -math.inf)
    # a class that no row can take: c_ik = +inf, and ȳ_k = 0 is optimal
    gradient = torch.where(
        torch.isfinite(costs), costs + fairness_weight * (log_ratio + 1.0), math.inf
    )
    return relative_kkt_residual(labels, gradient, weights)


def _weights_and_prior(sample_weight, prior, n_samples, n_classes, device):
    """Row weights summing to one and the prior, in float64."""
    if sample_weight is None:
        weights = torch.full(
            (n_samples,), 1.0 / n_samples, dtype=torch.float64, device=device
        )
    else:
        weights = torch.as_tensor(sample_weight, dtype=torch.float64, device=device)
        # w / max w first: weights of any finite size sum without overflow
        weights = weights / weights.amax()
        weights = weights / weights.sum()
    if prior is None:
        prior = torch.full(
            (n_classes,), 1.0 / n_classes, dtype=torch.float64, device=device
        )
    else:
        prior = torch.as_tensor(prior, dtype=torch.float64, device=device)
    return weights, prior


class _SmoothedDual:
    """D_ε(β) = Σ_i w_i softmin_ε(c_i + β) − λ ln Σ_k u_k exp(β_k/λ)."""

    def __init__(self, costs, weights, prior, fairness_weight):
        self.costs = costs
        self.weights = weights
        self.prior = prior
        self.log_prior = torch.log(prior)
        self.fairness_weight = fairness_weight
        self.counted = weights > 0

    def labels(self, beta, temperature):
        """y_i(β) = softmax(−(c_i + β)/ε)."""
        return torch.softmax(-(self.costs + beta) / temperature, dim=1)

    def proportions(self, beta):
        """z(β) = softmax(ln u + β/λ)."""
        return torch.softmax(self.log_prior + beta / self.fairness_weight, dim=0)

    def value(self, beta, temperature):
        soft_min = -temperature * torch.logsumexp(
            -(self.costs + beta) / temperature, dim=1
        )
        rows = torch.where(self.counted, self.weights * soft_min, 0.0).sum()
        fairness = self.fairness_weight * torch.logsumexp(
            self.log_prior + beta / self.fairness_weight, dim=0
        )
        return float(rows - fairness)

    def maximize(self, beta, temperature, max_iter):
        """Newton's method on D_ε from β, until ȳ and z agree to ε (relative).

        Returns the last β and the number of iterations made.
        """
        lam = self.fairness_weight
        value = self.value(beta, temperature)
        for n_iter in range(max_iter):
            y = self.labels(beta, temperature)
            z = self.proportions(beta)
            gradient = self.weights @ y - z
            # KKT of E: λ |ln ȳ_k − ln z_k| ≈ λ |ȳ_k − z_k| / z_k
            if float((lam * gradient.abs() / z).amax()) <= temperature:
                return beta, n_iter
            weighted = self.weights[:, None] * y
            hessian = (torch.diag(weighted.sum(dim=0)) - y.T @ weighted) / temperature
            hessian += (torch.diag(z) - torch.outer(z, z)) / lam
            # D_ε is constant along β + t1, and the gradient is orthogonal to 1
            hessian += hessian.diagonal().mean()
            step = solve_spd(hessian, gradient)
            slope = float(gradient @ step)
            if not slope > 0.0:
                return beta, n_iter
            scale = 1.0
            while scale >= _MIN_STEP:
                beta_new = beta + scale * step
                value_new = self.value(beta_new, temperature)
                allowance = 1e-15 * (abs(value) + 1.0)
                if value_new >= value + _ARMIJO * scale * slope - allowance:
                    break
                scale *= 0.5
            if scale < _MIN_STEP:
                return beta, n_iter + 1
            beta, value = beta_new, value_new
        return beta, max_iter
