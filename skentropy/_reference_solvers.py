"""Generic baseline solvers for the pseudo-label problems (benchmark and tests).

Both problems of :mod:`skentropy.pseudo_labels` are convex over the product of
simplices (rows y_i ∈ Δ^K), with row weights w_i ≥ 0 summing to one,
ȳ = Σ_i w_i y_i, target proportions u and fairness weight λ:

reverse cross-entropy (entropy-clustering-kmeans-svm eq. 14)
    E(y)  = −Σ_i w_i Σ_k σ_ik ln y_ik − λ Σ_k u_k ln ȳ_k

collision cross-entropy (collision-cross-entropy eq. 12)
    E₂(y) = −Σ_i w_i ln σ_i·y_i − λ Σ_k u_k ln ȳ_k

The entropy-clustering paper (§3, Table 1) times its EM algorithm against
Newton's method (Kelley 1995) for K = 2, 20, 200, and remarks that the
reverse cross-entropy is a log barrier that makes first-order methods
struggle. This module holds our versions of both kinds of baseline, written
independently of the library solvers so that the benchmark
``benchmarks/pseudo_label_solvers.py`` and the tests can judge the library
against them:

* :func:`structured_newton` — Newton's method exploiting the structure of the
  Hessian (per-row blocks plus a rank-K fairness part), so that every step
  costs one K×K solve and O(NK²) work, never the NK×NK system;
* :func:`projected_gradient` — accelerated projected gradient (FISTA) with
  backtracking and adaptive restart.

They are not part of the public API and make no attempt at being fast on
tiny problems. Input is assumed valid: float64 torch tensors, ``probs``
(N, K) with rows on the simplex, ``weights`` (N,) non-negative with a positive
sum, ``prior`` (K,) on the simplex, ``fairness_weight`` ≥ 0. Both return
``(labels, n_iter)`` and stop when the relative KKT residual of DESIGN.md (the
rule of :func:`skentropy.pseudo_labels.kkt_residual`) is at most ``tol``;
rows of zero weight are not solved for (they keep the starting point).

Independence. This module is a judge of the library, so it imports nothing
from it: its objective, gradient and KKT residual are written here from
DESIGN.md, separately from the library's (``skentropy.pseudo_labels._problem``), and
the tests check that the two residuals agree. No library module imports this
one; the library's own last-resort Newton method lives in
``skentropy.pseudo_labels._newton_fallback``.
"""

import math
import time

import torch

__all__ = ["kkt_residual", "projected_gradient", "structured_newton"]

# Share of the uniform distribution mixed into the starting point.
_START_MIX = 1e-2
# Armijo sufficient-decrease constant, its allowance for rounding (relative to
# the merit's value) and the fraction-to-the-boundary factor.
_ARMIJO = 1e-4
_ROUNDING = 1e-14
_TO_BOUNDARY = 0.99
# Starting barrier parameter and the bound on z̃ y / τ (IPOPT's κ_Σ).
_BARRIER_START = 0.1
_DUAL_SPREAD = 1e10
# Projected gradient: L is multiplied by this after every accepted step.
_LIPSCHITZ_DECREASE = 0.7
_MAX_LIPSCHITZ = 1e300
# Backtracking halvings before a step is given up.
_MAX_BACKTRACK = 60


# --------------------------------------------------------------------------
# The two objectives, their gradients and the stopping rule
# --------------------------------------------------------------------------


def _fairness_term(y, weights, prior, fairness_weight):
    """−λ Σ_k u_k ln ȳ_k (0 for λ = 0, even where some ȳ_k = 0)."""
    if fairness_weight == 0:
        return 0.0
    return -fairness_weight * torch.special.xlogy(prior, weights @ y).sum()


def _objective(loss, probs, y, weights, prior, fairness_weight):
    """E(y) or E₂(y); +inf outside the domain (never NaN for y ≥ 0)."""
    if loss == "reverse":
        per_row = -torch.special.xlogy(probs, y).sum(dim=1)
    else:
        per_row = -torch.log((probs * y).sum(dim=1))
    per_row = torch.where(weights > 0, per_row, 0.0)
    fairness = _fairness_term(y, weights, prior, fairness_weight)
    value = float(weights @ per_row + fairness)
    return math.inf if math.isnan(value) else value


def _row_gradient(loss, probs, y, weights, prior, fairness_weight):
    """G_ik = ∂E/∂y_ik / w_i, the gradient in the scale of one row (O(1 + λ))."""
    y_bar = weights @ y
    fair = torch.where(prior > 0, fairness_weight * prior / y_bar, 0.0)
    if fairness_weight == 0:
        fair = torch.zeros_like(y_bar)
    if loss == "reverse":
        ce = torch.where(probs > 0, probs / y, 0.0)
    else:
        ce = probs / (probs * y).sum(dim=1, keepdim=True)
    return -ce - fair


def kkt_residual(loss, probs, y, weights, prior, fairness_weight):
    """The relative KKT residual of DESIGN.md (a float; rows of zero weight skipped).

    With G the gradient in the row scale and μ_i = Σ_k y_ik G_ik:
    max_ik |y_ik (G_ik − μ_i)| / max(1, |μ_i|) plus the dual violation
    max_ik max(0, μ_i − G_ik) / max(1, |μ_i|) over all entries. +inf where
    the objective is infinite.
    """
    weights = weights / weights.sum()
    rows = weights > 0
    probs, y, weights = probs[rows], y[rows], weights[rows]
    grad = _row_gradient(loss, probs, y, weights, prior, fairness_weight)
    if not bool(torch.isfinite(torch.where(y > 0, grad, 0.0)).all()):
        return math.inf
    mu = (torch.where(y > 0, grad, 0.0) * y).sum(dim=1, keepdim=True)
    scale = mu.abs().clamp_min(1.0)
    complementarity = (torch.where(y > 0, y * (grad - mu), 0.0).abs() / scale).max()
    dual = ((mu - grad).clamp_min(0.0) / scale).max()
    residual = float(complementarity + dual)
    return residual if math.isfinite(residual) else math.inf


def _converged(loss, probs, y, weights, prior, fairness_weight, tol):
    return kkt_residual(loss, probs, y, weights, prior, fairness_weight) <= tol


def _deadline(max_seconds):
    return math.inf if max_seconds is None else time.perf_counter() + max_seconds


def _stop(n_iter, max_iter, deadline):
    return n_iter >= max_iter or time.perf_counter() > deadline


def _start(probs, init):
    start = probs if init is None else init
    return (1.0 - _START_MIX) * start + _START_MIX / probs.shape[1]


def _check_loss(loss):
    if loss not in ("reverse", "collision"):
        raise ValueError(f"loss must be 'reverse' or 'collision', got {loss!r}.")


# --------------------------------------------------------------------------
# Structured Newton
# --------------------------------------------------------------------------


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


def structured_newton(
    probs,
    weights,
    prior,
    fairness_weight,
    loss="reverse",
    tol=1e-6,
    max_iter=200,
    *,
    init=None,
    max_seconds=None,
):
    """Newton's method with the structured Hessian (baseline, not public API).

    Newton's method with Armijo backtracking (Kelley 1995, ch. 8; Kelley 1999,
    ch. 3) for min E(y) over the product of simplices, the baseline of the
    entropy-clustering paper's Table 1. The Hessian of E is per-row blocks
    (w_i diag(σ_i / y_i²) for the reverse cross-entropy, the rank one
    w_i σ_i σ_iᵀ / (σ_i·y_i)² for the collision one) plus the fairness part,
    of rank K, that couples rows within a column; each Newton system with the
    row-sum constraints is solved by eliminating the row blocks (Sherman–
    Morrison) and a K×K Schur complement (see ``_newton_direction``).

    The constraints y ≥ 0 are handled by a primal-dual log barrier
    (interior point, Nocedal & Wright 2006, §19; barrier parameter updated as
    IPOPT's monotone rule, Wächter & Biegler 2006): the complementarity
    y_ik z_ik = τ w_i, τ → 0, adds the positive diagonal Z/Y to the row
    blocks. Besides letting the iterates reach boundary optima (the exact
    zeros of the collision optimum, or where σ_ik = 0), this diagonal is the
    Levenberg–Marquardt term that the collision loss needs: its row blocks
    w_i σ_i σ_iᵀ / (σ_i·y_i)² have rank one, and with the diagonal each block
    is inverted by Sherman–Morrison. Unlike a fixed Levenberg–Marquardt
    shift it vanishes at the optimum (z̃_ik → 0 where y_ik > 0), so it does
    not slow the final steps down. Steps keep y > 0 and z > 0 (fraction to the
    boundary max(0.99, 1 − τ)) and satisfy the Armijo condition on the
    barrier merit E(y) − τ Σ_i w_i Σ_k ln y_ik.

    Accuracy: near a boundary optimum the row blocks mix entries of sizes
    1 and 1/τ, and the eliminated system loses digits to cancellation; in
    float64 residuals down to about 1e-7 are reached reliably, below that the
    iteration may stall (the collision loss with rows spread over three or
    more classes) and runs to ``max_iter``.

    Parameters
    ----------
    probs : torch.Tensor of shape (n_samples, n_classes), float64
        σ, rows on the simplex.
    weights : torch.Tensor of shape (n_samples,), float64
        Row weights w (normalized to sum to one here).
    prior : torch.Tensor of shape (n_classes,), float64
        u on the simplex.
    fairness_weight : float
        λ ≥ 0.
    loss : {"reverse", "collision"}, default="reverse"
    tol : float, default=1e-6
        Stop when :func:`skentropy.pseudo_labels.kkt_residual` ≤ ``tol``.
    max_iter : int, default=200
        Maximum number of Newton steps.
    init : torch.Tensor of shape (n_samples, n_classes), default=None
        Starting point (``None``: σ), mixed with 1% of uniform.
    max_seconds : float, default=None
        Also stop after this much wall-clock time (the benchmark's cap).

    Returns
    -------
    labels : torch.Tensor of shape (n_samples, n_classes)
    n_iter : int
        Newton steps taken. Check :func:`~skentropy.pseudo_labels.kkt_residual`
        to tell convergence from a cap.

    References
    ----------
    C. T. Kelley, *Iterative Methods for Linear and Nonlinear Equations*,
    SIAM, 1995 (Newton's method, Armijo rule). C. T. Kelley, *Iterative
    Methods for Optimization*, SIAM, 1999. J. Nocedal and S. J. Wright,
    *Numerical Optimization*, 2nd ed., Springer, 2006. A. Wächter and
    L. T. Biegler, "On the implementation of an interior-point filter
    line-search algorithm for large-scale nonlinear programming", Math.
    Program. 106, 2006.
    """
    _check_loss(loss)
    weights = weights / weights.sum()
    y_all = _start(probs, init)
    n_classes = probs.shape[1]
    if n_classes == 1:
        return torch.ones_like(probs), 0
    rows = weights > 0
    sigma, w, y = probs[rows], weights[rows], y_all[rows]
    problem = (w, prior, fairness_weight)

    def merit(y, tau):
        barrier = -tau * float(w @ torch.log(y).sum(dim=1))
        return _objective(loss, sigma, y, *problem) + barrier

    # τ of the final barrier subproblem: there |y_ik (G_ik − μ_i)| ≤ K τ
    tau_min = tol / (10.0 * n_classes)
    tau = _BARRIER_START
    dual = tau / y  # z̃_ik = z_ik / w_i, in the scale of G
    deadline = _deadline(max_seconds)
    for n_iter in range(max_iter + 1):
        if _converged(loss, sigma, y, *problem, tol) or _stop(
            n_iter, max_iter, deadline
        ):
            break
        row_gradient = _row_gradient(loss, sigma, y, *problem)
        while tau > tau_min and _barrier_error(y, dual, row_gradient, tau) <= 10 * tau:
            tau = max(tau_min, min(0.2 * tau, tau**1.5))
        curvature = torch.where(prior > 0, fairness_weight * prior / (w @ y) ** 2, 0.0)
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
    return y_all, n_iter


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


# --------------------------------------------------------------------------
# Projected gradient
# --------------------------------------------------------------------------


def project_rows_to_simplex(x):
    """Euclidean projection of every row onto the probability simplex.

    Sort-based algorithm (Held, Wolfe & Crowder 1974; Duchi et al. 2008),
    vectorized over rows: O(NK log K).
    """
    n_classes = x.shape[1]
    sorted_x = torch.sort(x, dim=1, descending=True).values
    excess = sorted_x.cumsum(dim=1) - 1.0
    index = torch.arange(1, n_classes + 1, dtype=x.dtype, device=x.device)
    support = (sorted_x - excess / index > 0).sum(dim=1, keepdim=True)
    threshold = excess.gather(1, support - 1) / support.to(x.dtype)
    return (x - threshold).clamp_min(0.0)


def projected_gradient(
    probs,
    weights,
    prior,
    fairness_weight,
    loss="reverse",
    tol=1e-6,
    max_iter=100_000,
    *,
    init=None,
    max_seconds=None,
):
    """Accelerated projected gradient (baseline, not public API).

    FISTA (Beck & Teboulle 2009) on the product of simplices, the first-order
    baseline (the entropy-clustering paper, §3, expects first-order methods
    to struggle with the log barrier of the reverse cross-entropy; the
    collision loss has none): from the extrapolated
    point v, y⁺ = Π(v − G(v) / L) with G the gradient in the row scale
    (∂E/∂y_ik / w_i, i.e. the metric Σ_i w_i ‖·‖² in which Π is still the
    row-wise Euclidean projection onto the simplex). L is found by
    backtracking (doubled until the quadratic upper bound holds at y⁺; points
    where E is infinite — the reverse cross-entropy is a log barrier where
    σ_ik > 0 — are rejected the same way) and multiplied by 0.7 after every
    accepted step so that it can decrease again. Momentum restarts when the objective
    increases or the extrapolated point leaves the domain (O'Donoghue & Candès
    2015).

    Parameters and returns as :func:`structured_newton`; ``max_iter`` counts
    accepted gradient steps.

    References
    ----------
    A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding
    algorithm for linear inverse problems", SIAM J. Imaging Sci. 2, 2009.
    B. O'Donoghue and E. Candès, "Adaptive restart for accelerated gradient
    schemes", Found. Comput. Math. 15, 2015.
    """
    _check_loss(loss)
    weights = weights / weights.sum()
    y_all = _start(probs, init)
    if probs.shape[1] == 1:
        return torch.ones_like(probs), 0
    rows = weights > 0
    sigma, w, y = probs[rows], weights[rows], y_all[rows]
    problem = (w, prior, fairness_weight)

    def objective(y):
        return _objective(loss, sigma, y, *problem)

    lipschitz = 1.0 + fairness_weight
    value = objective(y)
    previous, momentum = y, 1.0
    deadline = _deadline(max_seconds)
    for n_iter in range(max_iter + 1):
        if _converged(loss, sigma, y, *problem, tol) or _stop(
            n_iter, max_iter, deadline
        ):
            break
        next_momentum = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * momentum**2))
        point = y + (momentum - 1.0) / next_momentum * (y - previous)
        point_value = objective(point) if bool((point >= 0).all()) else math.inf
        if not math.isfinite(point_value):
            point, point_value, next_momentum = y, value, 1.0
        gradient = _row_gradient(loss, sigma, point, *problem)
        while True:
            trial = project_rows_to_simplex(point - gradient / lipschitz)
            diff = trial - point
            bound = (
                point_value
                + float(w @ (gradient * diff).sum(dim=1))
                + 0.5 * lipschitz * float(w @ (diff**2).sum(dim=1))
            )
            trial_value = objective(trial)
            if trial_value <= bound + 1e-15 * abs(bound) or lipschitz > _MAX_LIPSCHITZ:
                break
            lipschitz *= 2.0
        if trial_value > value:
            # adaptive restart: drop the momentum, retry from the iterate
            momentum, previous = 1.0, y
            if point is not y:
                continue
        previous, y, value, momentum = y, trial, trial_value, next_momentum
        lipschitz *= _LIPSCHITZ_DECREASE
    y_all = y_all.clone()
    y_all[rows] = y
    return y_all, n_iter
