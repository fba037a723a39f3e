"""The last-resort solver of both pseudo-label problems: primal-dual Newton.

Both problems of :mod:`skentropy.pseudo_labels` are convex over the product of
simplices; their fast solvers work on their duals (``_reverse_dual``,
``_collision_dual``), which have kinks where a row's optimum spreads
over several classes that σ or fairness tie (the reverse problem: classes with
σ_ik = 0 tied at the top multiplier; the collision problem: one-hot rows with
K ≫ N and a large λ, where its interior point method on candidate classes
stalls). There a primal method that does not care about kinks finishes the
solve: :func:`newton_fallback`, Newton's method with the structured Hessian
and a primal-dual log barrier for y ≥ 0. It stops on the library's KKT rule
(:func:`skentropy.pseudo_labels._problem.relative_kkt_residual`).

The reference solvers of ``skentropy._reference_solvers``, which the tests and
the benchmark use to judge the library, include an independent version of the
same method; the library never calls them.
"""

import math

import torch

from skentropy.pseudo_labels._problem import (
    objective,
    relative_kkt_residual,
    scaled_gradient,
)

__all__ = ["newton_fallback"]

# Share of the uniform distribution mixed into the starting point (every entry
# must start positive).
_START_MIX = 1e-2
# A starting point ``init`` gets less of it, as little as its KKT residual but
# at least this share.
_WARM_MIX_MIN = 1e-10
# Armijo sufficient-decrease constant, its allowance for rounding (relative to
# the merit's value) and the fraction-to-the-boundary factor.
_ARMIJO = 1e-4
_ROUNDING = 1e-14
_TO_BOUNDARY = 0.99
# Starting barrier parameter and the bound on z̃ y / τ (IPOPT's κ_Σ).
_BARRIER_START = 0.1
_DUAL_SPREAD = 1e10
# Backtracking halvings before a step is given up.
_MAX_BACKTRACK = 60


def newton_fallback(
    probs, weights, prior, fairness_weight, loss, tol=1e-6, max_iter=200, *, init=None
):
    """Pseudo-labels by Newton's method with the structured Hessian (fallback).

    Minimizes E(y) (reverse cross-entropy, entropy-clustering-kmeans-svm
    eq. 13-14) or E₂(y) (collision cross-entropy, collision-cross-entropy
    eq. 11-12) over the product of simplices by Newton's method with Armijo
    backtracking (Kelley 1995, ch. 8). The Hessian is per-row blocks
    (w_i diag(σ_i / y_i²) for the reverse cross-entropy, the rank one
    w_i σ_i σ_iᵀ / (σ_i·y_i)² for the collision one) plus the fairness part,
    of rank K, that couples the rows through ȳ; each Newton system with the
    row-sum constraints is solved by eliminating the row blocks (Sherman–
    Morrison) and a K×K Schur complement, O(NK² + K³) per step.

    The constraints y ≥ 0 are handled by a primal-dual log barrier (Nocedal &
    Wright 2006, §19; barrier parameter updated by IPOPT's monotone rule,
    Wächter & Biegler 2006): the complementarity y_ik z_ik = τ w_i, τ → 0,
    adds the positive diagonal Z/Y to the row blocks, which lets the iterates
    reach boundary optima and makes the rank-one collision blocks invertible;
    it vanishes at the optimum where y_ik > 0. Steps keep y > 0 and z > 0
    (fraction to the boundary max(0.99, 1 − τ)) and satisfy the Armijo
    condition on the barrier merit E(y) − τ Σ_i w_i Σ_k ln y_ik.

    In float64 relative KKT residuals down to about 1e-7 are reached
    reliably; below that the eliminated system loses digits near boundary
    optima and the iteration may stall until ``max_iter``.

    Parameters
    ----------
    probs : torch.Tensor of shape (n_samples, n_classes), float64
        σ, rows on the simplex.
    weights : torch.Tensor of shape (n_samples,), float64
        Row weights w, non-negative, summing to one.
    prior : torch.Tensor of shape (n_classes,), float64
        u on the simplex.
    fairness_weight : float
        λ ≥ 0.
    loss : {"reverse", "collision"}
    tol : float, default=1e-6
        Stop when the relative KKT residual is at most ``tol``.
    max_iter : int, default=200
        Maximum number of Newton steps.
    init : torch.Tensor of shape (n_samples, n_classes), default=None
        Starting point: ``None`` starts from σ mixed with 1% of uniform and the
        barrier parameter τ = 0.1; a given point (a warm start) is mixed with
        a share of uniform, and τ starts, at its relative KKT residual r
        (the share between 1e-10 and 1%, τ between the final τ and 0.1).

    Returns
    -------
    labels : torch.Tensor of shape (n_samples, n_classes)
        Rows of zero weight keep the starting point.
    n_iter : int
        Newton steps taken.
    residual : float
        The relative KKT residual of ``labels``.

    References
    ----------
    C. T. Kelley, *Iterative Methods for Linear and Nonlinear Equations*,
    SIAM, 1995. J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd
    ed., Springer, 2006. A. Wächter and L. T. Biegler, "On the implementation
    of an interior-point filter line-search algorithm for large-scale
    nonlinear programming", Math. Program. 106, 2006.
    """
    n_classes = probs.shape[1]
    if n_classes == 1:
        return torch.ones_like(probs), 0, 0.0
    rows = weights > 0
    w = weights[rows] / weights[rows].sum()
    sigma = probs[rows]
    scaled_prior = fairness_weight * prior
    # τ of the final barrier subproblem: there |y_ik (G_ik − μ_i)| ≤ K τ
    tau_min = tol / (10.0 * n_classes)
    mix, tau = _START_MIX, _BARRIER_START
    if init is not None:
        # a warm start close to the optimum stays close: as little uniform
        # mixed in, and a barrier as small, as its residual (with 1% and
        # τ = 0.1 the iteration stalled near 1e-6 on problems with many
        # entries of 1e-7: K ≫ N and a tiny λ)
        gradient = scaled_gradient(loss, sigma, init[rows], w, scaled_prior)
        start_residual = relative_kkt_residual(init[rows], gradient)
        mix = min(_START_MIX, max(_WARM_MIX_MIN, start_residual))
        tau = min(_BARRIER_START, max(tau_min, start_residual))
    start = probs if init is None else init
    y_all = (1.0 - mix) * start + mix / n_classes
    y = y_all[rows]

    def merit(y, tau):
        barrier = -tau * float(w @ torch.log(y).sum(dim=1))
        value = float(objective(loss, sigma, y, w, scaled_prior)) + barrier
        return math.inf if math.isnan(value) else value

    dual = tau / y  # z̃_ik = z_ik / w_i, in the scale of G
    residual = math.inf
    for n_iter in range(max_iter + 1):
        row_gradient = scaled_gradient(loss, sigma, y, w, scaled_prior)
        residual = relative_kkt_residual(y, row_gradient)
        if residual <= tol or n_iter >= max_iter:
            break
        while tau > tau_min and _barrier_error(y, dual, row_gradient, tau) <= 10 * tau:
            tau = max(tau_min, min(0.2 * tau, tau**1.5))
        curvature = torch.where(prior > 0, scaled_prior / (w @ y) ** 2, 0.0)
        diagonal = w[:, None] * dual / y
        if loss == "reverse":
            diagonal = diagonal + w[:, None] * sigma / y**2
            rank_one = None
        else:
            rank_one = w.sqrt()[:, None] * sigma / (sigma * y).sum(dim=1, keepdim=True)
        gradient = w[:, None] * (row_gradient - tau / y)
        step = _newton_direction(_RowBlocks(diagonal, rank_one), gradient, w, curvature)
        dual_step = tau / y - dual - dual / y * step
        to_boundary = max(_TO_BOUNDARY, 1.0 - tau)
        alpha = _to_boundary(y, step, to_boundary)
        alpha_dual = _to_boundary(dual, dual_step, to_boundary)
        slope = float((gradient * step).sum())
        value = merit(y, tau)
        for _ in range(_MAX_BACKTRACK):
            # with a rounding allowance: near the optimum the decrease is
            # below the resolution of the merit's value
            slack = _ARMIJO * alpha * slope + _ROUNDING * abs(value)
            if merit(y + alpha * step, tau) <= value + slack:
                break
            alpha *= 0.5
        y = y + alpha * step
        y = y / y.sum(dim=1, keepdim=True)
        # keep the primal-dual Hessian Z/Y within a factor of the primal τ/Y²
        dual = (dual + alpha_dual * dual_step).clamp(
            tau / (_DUAL_SPREAD * y), _DUAL_SPREAD * tau / y
        )
    y_all = y_all.clone()
    y_all[rows] = y
    return y_all, n_iter, residual


class _RowBlocks:
    """Inverse of the per-row Hessian blocks D_i = diag(e_i) + q_i q_iᵀ.

    D_i⁻¹ x = h ∘ x − γ p (pᵀ x) with h = 1/e_i, p = h ∘ q_i and
    γ = 1 / (1 + q_iᵀ p) (Sherman–Morrison), all rows at once. ``project``
    applies P_i = D_i⁻¹ − m_i m_iᵀ / s_i (m_i = D_i⁻¹ 1, s_i = 1ᵀ m_i): the
    solution d_i of D_i d_i + ν_i 1 = x_i, 1ᵀ d_i = 0 is d_i = P_i x_i.
    """

    def __init__(self, diagonal, rank_one=None):
        self.h = 1.0 / diagonal
        if rank_one is None:
            self.p = self.gamma = None
        else:
            self.p = self.h * rank_one
            self.gamma = 1.0 / (1.0 + (rank_one * self.p).sum(dim=1, keepdim=True))
        self.m = self.inverse(torch.ones_like(diagonal))
        self.s = self.m.sum(dim=1, keepdim=True)

    def inverse(self, x):
        out = self.h * x
        if self.p is not None:
            out = out - self.gamma * self.p * (self.p * x).sum(dim=1, keepdim=True)
        return out

    def project(self, x):
        out = self.inverse(x) - self.m * (self.m * x).sum(dim=1, keepdim=True) / self.s
        # rows sum to zero in exact arithmetic; where D_i has entries of very
        # different sizes rounding leaves a sum of order eps·max h: remove it
        # along m_i, the direction D_i⁻¹ moves the sum in
        return out - self.m * out.sum(dim=1, keepdim=True) / self.s

    def gram(self, weights):
        """M = Σ_i w_i² P_i, a K×K matrix (O(NK²))."""
        w2 = (weights**2)[:, None]
        gram = torch.diag((w2 * self.h).sum(dim=0))
        if self.p is not None:
            a = self.p * (weights[:, None] * self.gamma.sqrt())
            gram = gram - a.T @ a
        b = self.m * (weights[:, None] / self.s.sqrt())
        return gram - b.T @ b


def _newton_direction(blocks, gradient, weights, curvature):
    """Solve the equality-constrained Newton system with the structured Hessian.

    Hessian H = blockdiag(D_i) + Σ_k c_k a_k a_kᵀ, where a_k holds w_i at the
    entries (i, k): the fairness term −λ Σ u_k ln ȳ_k couples the rows only
    through the K column sums, with curvature c_k = λ u_k / ȳ_k². The system
    H d + Bᵀν = −g, B d = 0 (every row of d sums to zero) reads per row
    D_i d_i + w_i (c ∘ z) + ν_i 1 = −g_i with z = Σ_j w_j d_j, so
    d_i = P_i (−g_i − w_i c ∘ z), and z solves the K×K system
    (I + C^½ M C^½) C^½ z = C^½ Σ_i w_i P_i (−g_i), M = Σ_i w_i² P_i
    (Schur complement; symmetric positive definite). Cost O(NK² + K³).
    """
    root_c = curvature.sqrt()
    schur = root_c[:, None] * blocks.gram(weights) * root_c[None, :]
    schur.diagonal().add_(1.0)
    free = blocks.project(-gradient)
    v = torch.linalg.solve(schur, root_c * (weights @ free))
    return free - blocks.project(weights[:, None] * (root_c * v))


def _barrier_error(y, dual, row_gradient, tau):
    """Optimality error of the barrier subproblem (Wächter & Biegler 2006, eq. 5).

    Stationarity G_ik − z̃_ik − μ_i = 0 with μ_i = Σ_k y_ik (G_ik − z̃_ik),
    relative to max(1, |μ_i|), and complementarity y_ik z̃_ik = τ.
    """
    reduced = row_gradient - dual
    mu = (y * reduced).sum(dim=1, keepdim=True)
    stationarity = ((reduced - mu).abs() / mu.abs().clamp_min(1.0)).amax()
    complementarity = (y * dual - tau).abs().amax()
    return float(torch.maximum(stationarity, complementarity))


def _to_boundary(x, step, fraction):
    """Largest α ≤ 1 with x + α step ≥ (1 − fraction) x."""
    ratio = torch.where(step < 0, -x / step, math.inf)
    return min(1.0, fraction * float(ratio.min()))
