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
``(labels, n_iter)`` and stop when the relative KKT residual (the rule of
:func:`skentropy.pseudo_labels.kkt_residual`, written up in the docs page
"Design of the pseudo-label solvers", ``docs/developer/pseudo_label_solvers.rst``)
is at most ``tol``; rows of zero weight are not solved for (they keep the
starting point).

Independence. This module is a judge of the library, so it imports nothing
from it and shares no code with it. Its objective, gradient and KKT residual
are written here from the problems and the KKT rule of that docs page,
separately from the library's (``skentropy.pseudo_labels._problem``), and the
tests check that the two residuals agree. The library's last-resort Newton
method (``skentropy.pseudo_labels._newton_fallback``) runs the same kind of
iteration as :func:`structured_newton`, but each Newton system is solved
differently here: a null-space method in scaled coordinates with the
fairness coupling in balanced form (``_NewtonSystem``), where the library
eliminates the row blocks by Sherman–Morrison and a Schur complement;
``tests/pseudo_labels/test_newton_fallback.py`` checks both against a dense solve of the
same equations. No library module imports this one.
"""

import math
import time

import torch

__all__ = ["kkt_residual", "projected_gradient", "structured_newton"]

# Both solvers start from σ mixed with this share of the uniform distribution.
_START_MIX = 1e-2
# Structured Newton, with IPOPT's names (Wächter & Biegler 2006):
_BARRIER_START = 0.1  # the starting barrier parameter τ
_KAPPA_EPSILON = 10.0  # κ_ε, κ_μ and θ_μ of the monotone update of τ
_KAPPA_MU = 0.2
_THETA_MU = 1.5
_DUAL_SPREAD = 1e10  # κ_Σ, the bound on z̃ y / τ
_TO_BOUNDARY = 0.99  # the smallest fraction to the boundary
# and its Armijo line search:
_ARMIJO = 1e-4  # the sufficient decrease
_ROUNDING = 1e-14  # an allowance for rounding, relative to the merit's value
_MAX_BACKTRACK = 60  # halvings before a step is given up
# Projected gradient: L is multiplied by this after every accepted step.
_LIPSCHITZ_DECREASE = 0.7
_MAX_LIPSCHITZ = 1e300


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
    """The relative KKT residual (a float; rows of zero weight skipped).

    The rule of the docs page "Design of the pseudo-label solvers"
    (``docs/developer/pseudo_label_solvers.rst``), written here independently
    of the library's.

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


class _NewtonSystem:
    """The Newton equations of the barrier problem at one iterate.

    Unknowns: the step d (N×K) and the row multipliers ν (N). With
    H_i = diag(e_i) + v_i v_iᵀ the row blocks of the Hessian (v_i = 0 for the
    reverse cross-entropy) and c the curvature of the fairness term in ȳ
    (λu_k/ȳ_k², zero where u_k = 0), the equations are

        H_i d_i + w_i (c ∘ z) + ν_i 1 = r_i,   1ᵀ d_i = 0,   z = Σ_j w_j d_j.

    One row alone is solved by :meth:`row_solve`, a null-space method in the
    coordinates scaled by S_i = diag(e_i)^(−1/2), where every operation is an
    orthogonal projection or the inverse of I + x xᵀ; Q_i denotes its map
    r_i ↦ d_i. The rows are coupled through the fairness multipliers
    t = c ∘ z on the classes F with c_k > 0, solved in the balanced form
    t = c^½ x, (I + c^½ M c^½) x = c^½ Σ_i w_i Q_i r_i, M = Σ_i w_i² Q_i (an
    error in x reaches the equations through c^½, not c). Cost O(NK² + K³)
    a step.
    """

    def __init__(self, diagonal, rank_one, weights, curvature):
        self.weights, self.curvature = weights, curvature
        # S_i, the unit normal b̂_i of the constraint 1ᵀ S_i d̃_i = 0 in the
        # scaled coordinates d = S d̃, and ṽ_i = S_i v_i projected onto the
        # constraint's null space: twice, as once leaves a rounding error
        # along b̂ of order eps·|S v| that 1ᵀ S d̃ would multiply by |S1|
        # (Parlett's "twice is enough")
        self.scale = diagonal.rsqrt()
        self.normal = self.scale / torch.linalg.vector_norm(
            self.scale, dim=1, keepdim=True
        )
        self.tangent = self._project(self._project(self.scale * rank_one))
        self.tangent_norm2 = (self.tangent**2).sum(dim=1)
        # the LU factors of I + c^½ M c^½ on F
        self.fair = curvature > 0
        self.root = curvature[self.fair].sqrt()
        self.coupling = None
        if bool(self.fair.any()):
            matrix = self.coupling_matrix()[self.fair][:, self.fair]
            matrix = self.root[:, None] * matrix * self.root
            matrix.diagonal().add_(1.0)
            self.coupling = torch.linalg.lu_factor(matrix)

    def _project(self, x):
        """x − b̂ (b̂ᵀx) per row: onto the null space of the constraint."""
        return x - self.normal * torch.einsum("nk,nk->n", self.normal, x)[:, None]

    def row_solve(self, rhs):
        """d_i of H_i d_i + ν_i 1 = r_i, 1ᵀ d_i = 0 for every row (d_i = Q_i r_i).

        In the scaled coordinates the block is I + ṽṽᵀ and the constraint
        b̂ᵀ d̃ = 0; on the null space Π = I − b̂b̂ᵀ of the constraint,
        Π (I + ṽṽᵀ) Π = Π + ṽ⊥ṽ⊥ᵀ with ṽ⊥ = Π ṽ, whose inverse there is
        Π − ṽ⊥ṽ⊥ᵀ / (1 + |ṽ⊥|²): d̃ = that applied to Π S r.
        """
        # a constant along the row only changes ν_i: remove the one that the
        # projection would remove, before the scaling amplifies its rounding
        weight = self.scale**2
        rhs = rhs - (weight * rhs).sum(dim=1, keepdim=True) / weight.sum(
            dim=1, keepdim=True
        )
        free = self._project(self.scale * rhs)
        along = torch.einsum("nk,nk->n", self.tangent, free)
        free = free - self.tangent * (along / (1.0 + self.tangent_norm2))[:, None]
        return self.scale * self._project(free)  # again: the rounding along b̂

    def coupling_matrix(self):
        """M = Σ_i w_i² Q_i (K×K), Q_i = S_i (Π_i − ṽ⊥ṽ⊥ᵀ / (1 + |ṽ⊥|²)) S_i."""
        squared = self.weights**2
        normal = self.scale * self.normal * self.weights[:, None]
        tangent = self.scale * self.tangent
        tangent = tangent * (squared / (1.0 + self.tangent_norm2)).sqrt()[:, None]
        return (
            torch.diag(squared @ self.scale**2)
            - normal.T @ normal
            - tangent.T @ tangent
        )

    def solve(self, rhs):
        """The step d of the coupled equations with right-hand sides r = ``rhs``.

        d_i = Q_i r_i − w_i Q_i t with the fairness multipliers t of the
        balanced K×K system.
        """
        uncoupled = self.row_solve(rhs)
        if self.coupling is None:
            return uncoupled
        target = self.root * (self.weights @ uncoupled)[self.fair]
        balanced = torch.linalg.lu_solve(*self.coupling, target[:, None])[:, 0]
        multipliers = torch.zeros_like(self.curvature)
        multipliers[self.fair] = self.root * balanced
        # Q_i (w_i t) = w_i Q_i t, each term solved on its own: t is large
        # (c is) and nearly constant along a row, which Q_i removes exactly
        # but r_i − w_i t would round at its size
        coupled = self.row_solve(multipliers.expand_as(rhs))
        return uncoupled - self.weights[:, None] * coupled


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
    row-sum constraints is solved row by row by a null-space method in scaled
    coordinates, coupled through a K×K system in the fairness multipliers
    (see ``_NewtonSystem``).

    The constraints y ≥ 0 are handled by a primal-dual log barrier
    (interior point, Nocedal & Wright 2006, §19; barrier parameter updated as
    IPOPT's monotone rule, Wächter & Biegler 2006): the complementarity
    y_ik z_ik = τ w_i, τ → 0, adds the positive diagonal Z/Y to the row
    blocks. Besides letting the iterates reach boundary optima (the exact
    zeros of the collision optimum, or where σ_ik = 0), this diagonal is the
    Levenberg–Marquardt term that the collision loss needs: its row blocks
    w_i σ_i σ_iᵀ / (σ_i·y_i)² have rank one, and with the diagonal each block
    is positive definite. Unlike a fixed Levenberg–Marquardt
    shift it vanishes at the optimum (z̃_ik → 0 where y_ik > 0), so it does
    not slow the final steps down. Steps keep y > 0 and z > 0 (fraction to the
    boundary max(0.99, 1 − τ)) and satisfy the Armijo condition on the
    barrier merit E(y) − τ Σ_i w_i Σ_k ln y_ik.

    Accuracy: near a boundary optimum the row blocks mix entries of sizes
    1 and 1/τ; the scaled null-space solve keeps the Newton equations
    accurate there, and in float64 residuals down to about 1e-9 are reached
    on the test problems (peaked σ, one-hot rows, exact zeros, K ≫ N, λ up
    to 1e4). A tighter ``tol`` drives τ below the resolution of the merit
    and may stall until ``max_iter``.

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

    def merit(point, tau):
        """The barrier merit E(y) − τ Σ_i w_i Σ_k ln y_ik."""
        log_barrier = tau * float(w @ torch.log(point).sum(dim=1))
        return _objective(loss, sigma, point, *problem) - log_barrier

    # τ of the final barrier subproblem: there |y_ik (G_ik − μ_i)| ≤ K τ
    barrier = _Barrier(y, smallest=tol / (10.0 * n_classes))
    deadline = _deadline(max_seconds)
    n_iter = 0
    while not _converged(loss, sigma, y, *problem, tol):
        if _stop(n_iter, max_iter, deadline):
            break
        n_iter += 1
        row_gradient = _row_gradient(loss, sigma, y, *problem)
        barrier.lower(y, row_gradient)
        system = _newton_system(loss, sigma, y, barrier, *problem)
        # the gradient of the merit E(y) − τ Σ_i w_i Σ_k ln y_ik
        merit_gradient = w[:, None] * (row_gradient - barrier.tau / y)
        step = system.solve(-merit_gradient)
        alpha = _backtrack(
            lambda point, tau=barrier.tau: merit(point, tau),
            y,
            step,
            _largest_step(y, step, barrier.fraction()),
            float((merit_gradient * step).sum()),
        )
        y = barrier.advance(y, step, alpha)
    y_all = y_all.clone()
    y_all[rows] = y
    return y_all, n_iter


def _newton_system(loss, sigma, y, barrier, weights, prior, fairness_weight):
    """The :class:`_NewtonSystem` of the barrier merit at y.

    Row blocks: the primal-dual barrier term w_i z̃_ik / y_ik on the diagonal,
    plus w_i σ_ik / y_ik² (reverse) or the rank one √w_i σ_i / σ_i·y_i
    (collision); fairness curvature λ u_k / ȳ_k².
    """
    diagonal = weights[:, None] * barrier.dual / y
    if loss == "reverse":
        diagonal += weights[:, None] * sigma / y**2
        rank_one = torch.zeros_like(y)
    else:
        rank_one = sigma * (weights.sqrt()[:, None] / (sigma * y).sum(1, keepdim=True))
    y_bar = weights @ y
    curvature = torch.where(prior > 0, fairness_weight * prior / y_bar**2, 0.0)
    return _NewtonSystem(diagonal, rank_one, weights, curvature)


class _Barrier:
    """The barrier parameter τ and the scaled multipliers z̃ = z / w of y ≥ 0.

    τ decreases by IPOPT's monotone rule (Wächter & Biegler 2006, §2.1):
    while the optimality error of the barrier subproblem is at most κ_ε τ,
    τ ← max(τ_min, min(κ_μ τ, τ^θ_μ)). z̃ starts at τ / y.
    """

    def __init__(self, y, smallest):
        self.tau = _BARRIER_START
        self.smallest = smallest
        self.dual = self.tau / y

    def lower(self, y, row_gradient):
        """Decrease τ while the barrier subproblem at τ is solved."""
        while self.tau > self.smallest:
            if _subproblem_error(y, self.dual, row_gradient, self.tau) > (
                _KAPPA_EPSILON * self.tau
            ):
                return
            smaller = min(_KAPPA_MU * self.tau, self.tau**_THETA_MU)
            self.tau = max(self.smallest, smaller)

    def fraction(self):
        """The fraction to the boundary, max(0.99, 1 − τ)."""
        return max(_TO_BOUNDARY, 1.0 - self.tau)

    def advance(self, y, step, alpha):
        """y + α d, renormalized, and the matching step of z̃; returns the new y.

        The primal-dual step of z̃ is τ/y − z̃ − (z̃/y) d, cut to the boundary
        on its own; z̃ then stays within a factor ``_DUAL_SPREAD`` of τ / y
        (the primal-dual Hessian Z/Y within a factor of the primal τ/Y²).
        """
        dual_step = self.tau / y - self.dual * (1.0 + step / y)
        dual = self.dual + _largest_step(self.dual, dual_step, self.fraction()) * (
            dual_step
        )
        y = y + alpha * step
        y = y / y.sum(dim=1, keepdim=True)
        self.dual = torch.minimum(
            torch.maximum(dual, self.tau / (_DUAL_SPREAD * y)),
            _DUAL_SPREAD * self.tau / y,
        )
        return y


def _subproblem_error(y, dual, row_gradient, tau):
    """Optimality error of the barrier subproblem (Wächter & Biegler 2006, eq. 5).

    The larger of the stationarity G_ik − z̃_ik − ν_i = 0, with
    ν_i = Σ_k y_ik (G_ik − z̃_ik) and relative to max(1, |ν_i|), and of the
    complementarity y_ik z̃_ik = τ.
    """
    lagrangian = row_gradient - dual
    nu = torch.einsum("nk,nk->n", y, lagrangian)[:, None]
    stationarity = torch.abs(lagrangian - nu) / torch.clamp(nu.abs(), min=1.0)
    complementarity = torch.abs(y * dual - tau)
    return max(float(stationarity.max()), float(complementarity.max()))


def _largest_step(x, step, fraction):
    """The largest α ≤ 1 with x + α step ≥ (1 − fraction) x (x > 0).

    x_k + α step_k ≥ (1 − fraction) x_k wherever α ≤ fraction / ρ_k with
    ρ_k = max(0, −step_k) / x_k, the rate at which x_k is used up.
    """
    rate = float((torch.clamp(-step, min=0.0) / x).max())
    return 1.0 if rate <= fraction else fraction / rate


def _backtrack(merit, y, step, alpha, slope):
    """Halve α until the Armijo condition holds on ``merit`` (at most 60 times).

    A rounding allowance ``_ROUNDING`` relative to the merit's value lets the
    last steps pass, where the decrease is below the resolution of the value.
    """
    value = merit(y)
    allowance = _ROUNDING * abs(value)
    for _ in range(_MAX_BACKTRACK):
        if merit(y + alpha * step) <= value + _ARMIJO * alpha * slope + allowance:
            break
        alpha *= 0.5
    return alpha


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
