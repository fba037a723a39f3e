"""Newton's method on the dual of the collision pseudo-label problem.

The collision pseudo-label problem (collision-cross-entropy eq. 11-12) is

    minimize over y (rows y_i on the simplex Δ^K)
    E₂(y) = Σ_i w_i (−ln σ_i·y_i) − λ Σ_k u_k ln ȳ_k,     ȳ = Σ_i w_i y_i,

with weights w summing to one. Its optimum is sparse (most rows have one or
two nonzeros), and the multiplicative EM of the paper (eq. 14-17 and
supplement C) only shrinks entries geometrically towards it. This module
solves it through its dual, vectorized over rows (Python loops run over
iterations only).

Dualizing ȳ = z with multipliers β ∈ R^K, the minimum of
−λu_k ln z_k + β_k z_k is at z_k = λu_k/β_k, and the concave dual is

    D(β) = Σ_k λu_k ln β_k + Σ_i w_i φ_i(β) + const,
    φ_i(β) = min over y ∈ Δ of (−ln σ_i·y − β·y),      ∂D/∂β_k = λu_k/β_k − ȳ_k(β).

With ln t = min_s (s t − ln s) − 1 and t = σ_i·y, φ_i = 1 − min_s ψ_i(s) with
ψ_i(s) = max_k (β_k + σ_ik s) − ln s, a convex function of one variable: its
minimizer s* = 1/t is where the upper envelope of the lines β_k + σ_ik s has a
subgradient containing 1/s. The row optimum is a vertex e_a (s* = 1/σ_ia), or
the edge between lines a, b (σ_ia < σ_ib) crossing at s* = (β_a − β_b)/(σ_ib −
σ_ia), with y_a = (σ_ib − t)/(σ_ib − σ_ia), y_b = 1 − y_a and Jacobian
∂y_i/∂β = c_i (e_a − e_b)(e_a − e_b)ᵀ, c_i = t²/(σ_ib − σ_ia)². Newton's method
on θ = ln β (β_k = 0 where u_k = 0) with a line search on D
(:func:`dual_newton`) finds the optimum whenever D is smooth there.

D has kinks where a row's optimum spreads over three or more lines, which is
the rule when N is small next to K (one row alone spreads over every class),
and its staircase-like gradient slows Newton's method down for large N. There
the primal interior point method of ``_collision_interior`` takes over, and
:func:`sparsify` removes the small entries it leaves by Newton steps on D
from its multipliers. :class:`CollisionDual` holds the problem's data, the
exact row solutions at β and the dual, and is the problem object that the
interior point method and the ``method="auto"`` chain (``_methods``) work on.

Every stage stops on the relative KKT residual of
:func:`skentropy.pseudo_labels.kkt_residual`.
"""

import math
from typing import NamedTuple

import torch

from skentropy.pseudo_labels._problem import (
    fairness_gradient,
    relative_kkt_residual,
    scaled_gradient,
    solve_spd,
)

__all__ = ["CollisionDual", "dual_newton", "sparsify"]

_EPS = torch.finfo(torch.float64).eps
# Rounding allowance, in units of eps times the magnitude of the line values,
# under which two lines of a row's envelope count as tied.
_TIE_ULPS = 64.0
# Armijo constant and smallest step of the dual line search.
_ARMIJO = 1e-4
_MIN_STEP = 2.0**-10
# The dual Newton method stops after this many Newton iterations or row
# solves, or after two iterations that do not halve its residual bound (the
# iterate circles kinks of D).
_DUAL_MAX_ITER = 10
_DUAL_MAX_SOLVES = 30
# The sparse polish of the interior point's labels: Newton iterations on D
# from its multipliers, else zeroing entries below this share of their row's
# largest.
_SPARSE_MAX_ITER = 4
_SNAP_RELATIVE = 1e-3


# ---- the problem and its row solutions ----------------------------------------------


class _RowSolution(NamedTuple):
    """Per-row maximizer of ln σ_i·y + β·y over the simplex.

    ``low`` and ``high`` are the lines a, b of an edge (σ_a < σ_b), equal at a
    vertex; ``share`` is y_a (one at a vertex, y_b = 1 − y_a), ``slope`` the
    optimal s* = 1/σ_i·y and ``level`` the envelope value ν = max_k β_k + σ_ik s*.
    """

    low: torch.Tensor
    high: torch.Tensor
    share: torch.Tensor
    slope: torch.Tensor
    level: torch.Tensor


class CollisionDual:
    """The data of a collision pseudo-label problem, its rows and its dual."""

    def __init__(self, probs, weights, prior, fairness_weight):
        self.probs = probs
        self.weights = weights
        self.prior = prior
        self.fairness_weight = fairness_weight
        self.fair = prior > 0  # classes with a multiplier β_k > 0
        self.target = fairness_weight * prior  # λu
        self.sigma_max, self.top = probs.max(dim=1)
        # rows whose largest σ is shared by several classes: their last
        # envelope piece is the line with the largest β among those
        self.top_tied = (probs == self.sigma_max[:, None]).sum(dim=1) > 1
        self.any_top_tied = bool(self.top_tied.any())

    # ---- row solutions: max_y ln σ_i·y + β·y ---------------------------------

    def solve_rows(self, beta, guess=None):
        """Exact row solutions at β, reusing ``guess`` where it stays optimal."""
        if guess is None:
            index = torch.arange(self.probs.shape[0], device=beta.device)
            return self._envelope_search(beta, index)
        candidate = self._pair_solution(beta, guess.low, guess.high)
        stale = ~self._is_optimal(beta, candidate)
        if not bool(stale.any()):
            return candidate
        index = stale.nonzero().squeeze(1)
        fresh = self._envelope_search(beta, index)
        return _RowSolution(
            *(
                field.index_put((index,), new)
                for field, new in zip(candidate, fresh, strict=True)
            )
        )

    def _top_line(self, beta, index):
        """The line of largest σ_ik (largest β_k among ties) of rows ``index``."""
        top = self.top[index]
        if not self.any_top_tied:
            return top
        tied = self.top_tied[index]
        sigma = self.probs[index]
        key = torch.where(sigma == self.sigma_max[index, None], beta, -math.inf)
        return torch.where(tied, key.argmax(dim=1), top)

    def _pair_solution(self, beta, low, high, index=None):
        """Minimizer of ψ when only lines a = ``low`` and b = ``high`` matter.

        With s_ab = (β_a − β_b)/(σ_b − σ_a) where the lines cross, ψ is
        β_a + σ_a s − ln s before s_ab and β_b + σ_b s − ln s after it: the
        minimizer is the vertex a if 1/σ_a ≤ s_ab, the vertex b if 1/σ_b ≥ s_ab
        and the crossing (an edge of the simplex) otherwise.
        """
        sigma = self.probs if index is None else self.probs[index]
        sigma_a = sigma.gather(1, low[:, None]).squeeze(1)
        sigma_b = sigma.gather(1, high[:, None]).squeeze(1)
        beta_a, beta_b = beta[low], beta[high]
        spread = sigma_b - sigma_a
        two_lines = spread > 0
        spread = torch.where(two_lines, spread, 1.0)
        cross = (beta_a - beta_b) / spread
        vertex_a = ~two_lines | (sigma_a * cross >= 1.0)
        vertex_b = ~vertex_a & (sigma_b * cross <= 1.0)
        edge = ~vertex_a & ~vertex_b
        slope = torch.where(
            vertex_a, 1.0 / sigma_a, torch.where(vertex_b, 1.0 / sigma_b, cross)
        )
        level = torch.where(
            vertex_a,
            beta_a + 1.0,
            torch.where(vertex_b, beta_b + 1.0, beta_a + sigma_a * cross),
        )
        # y_a = (σ_b − t)/(σ_b − σ_a) on an edge, t = 1/s*
        safe_cross = torch.where(edge, cross, 1.0)
        share = torch.where(edge, (sigma_b - 1.0 / safe_cross) / spread, 1.0)
        low = torch.where(vertex_b, high, low)
        high = torch.where(vertex_a, low, high)
        return _RowSolution(low, high, share.clamp(0.0, 1.0), slope, level)

    def _is_optimal(self, beta, solution):
        """Whether each row's solution lines are on the envelope at its s*.

        The slope condition 0 ∈ ∂ψ(s*) holds by construction, so this is the
        whole optimality certificate.
        """
        values = torch.addcmul(beta, self.probs, solution.slope[:, None])
        envelope = values.amax(dim=1)
        return envelope <= solution.level + _allowance(envelope)

    def _envelope_search(self, beta, index):
        """Cutting-plane search of the optimal envelope piece of rows ``index``.

        At s₀ = 1/σ_max, left of s*, the line b of largest σ (the last piece of
        the envelope) is optimal if it is on the envelope; otherwise the line a
        on the envelope there (where ψ decreases) and b bracket s*. At their
        crossing s_ab the envelope is either attained by a and b (the pair
        solution is then exact) or by a line c with σ_a < σ_c < σ_b, which
        replaces a if ψ still decreases there (σ_c s_ab < 1) and b otherwise.
        Each step finds a new envelope piece: at most K steps, a few in
        practice.
        """
        sigma = self.probs[index]
        rows = torch.arange(index.shape[0], device=beta.device)
        high = self._top_line(beta, index)
        values = torch.addcmul(beta, sigma, (1.0 / self.sigma_max[index])[:, None])
        envelope, low = values.max(dim=1)
        on_top = values[rows, high] >= envelope - _allowance(envelope)
        low = torch.where(on_top, high, low)
        open_rows = (low != high).nonzero().squeeze(1)
        for _ in range(sigma.shape[1] + 2):
            if open_rows.numel() == 0:
                break
            sub_sigma = sigma[open_rows]
            sub_rows = torch.arange(open_rows.shape[0], device=beta.device)
            a, b = low[open_rows], high[open_rows]
            sigma_a, sigma_b = sub_sigma[sub_rows, a], sub_sigma[sub_rows, b]
            cross = (beta[a] - beta[b]) / (sigma_b - sigma_a)
            values = torch.addcmul(beta, sub_sigma, cross[:, None])
            envelope, c = values.max(dim=1)
            pair = torch.maximum(values[sub_rows, a], values[sub_rows, b])
            sigma_c = sub_sigma[sub_rows, c]
            new_piece = (
                (envelope > pair + _allowance(envelope))
                & (sigma_c > sigma_a)
                & (sigma_c < sigma_b)
            )
            left = new_piece & (sigma_c * cross < 1.0)
            low[open_rows] = torch.where(left, c, a)
            high[open_rows] = torch.where(new_piece & ~left, c, b)
            open_rows = open_rows[new_piece]
        return self._pair_solution(beta, low, high, index)

    # ---- the dual ------------------------------------------------------------

    def mean_labels(self, rows):
        """ȳ = Σ_i w_i y_i of row solutions."""
        y_bar = torch.zeros_like(self.prior)
        y_bar.index_add_(0, rows.low, self.weights * rows.share)
        y_bar.index_add_(0, rows.high, self.weights * (1.0 - rows.share))
        return y_bar

    def dual_value(self, theta, rows):
        """D = Σ_{u_k>0} λu_k θ_k + Σ_i w_i (1 − ν_i + ln s*_i), up to a constant."""
        return float(
            self.target[self.fair] @ theta
            + self.weights @ (1.0 - rows.level + torch.log(rows.slope))
        )

    def label_jacobian(self, rows):
        """J̄ = ∂ȳ/∂β = Σ_i w_i c_i (e_a − e_b)(e_a − e_b)ᵀ over edge rows (PSD)."""
        n_classes = self.probs.shape[1]
        sigma_a = self.probs.gather(1, rows.low[:, None]).squeeze(1)
        sigma_b = self.probs.gather(1, rows.high[:, None]).squeeze(1)
        edge = rows.low != rows.high
        spread = torch.where(edge, sigma_b - sigma_a, 1.0)
        # w_i c_i with c_i = t²/(σ_b − σ_a)², t = 1/s*
        curvature = torch.where(edge, self.weights / (rows.slope * spread) ** 2, 0.0)
        jacobian = torch.zeros(
            n_classes * n_classes, dtype=self.probs.dtype, device=self.probs.device
        )
        a, b = rows.low, rows.high
        for first, second, sign in (
            (a, a, 1.0),
            (b, b, 1.0),
            (a, b, -1.0),
            (b, a, -1.0),
        ):
            jacobian.index_add_(0, first * n_classes + second, sign * curvature)
        return jacobian.view(n_classes, n_classes)

    # ---- the primal ----------------------------------------------------------

    def dense(self, rows):
        """The (N, K) pseudo-labels of row solutions."""
        y = torch.zeros_like(self.probs)
        y.scatter_(1, rows.low[:, None], rows.share[:, None])
        return y.scatter_add_(1, rows.high[:, None], (1.0 - rows.share)[:, None])

    def fairness_gradient(self, y_bar):
        """λu_k/ȳ_k (0 where u_k = 0, +inf on an empty fair class)."""
        return fairness_gradient(y_bar, self.target)

    def scaled_gradient(self, y):
        """G_ik = ∂E₂/∂y_ik / w_i = −σ_ik/σ_i·y_i − λu_k/ȳ_k, μ_i = Σ_k y_ik G_ik."""
        grad = scaled_gradient("collision", self.probs, y, self.weights, self.target)
        mu = torch.where(y > 0, y * grad, 0.0).sum(dim=1, keepdim=True)
        return grad, mu

    def kkt_residual(self, y):
        """The relative KKT residual of ``pseudo_labels.kkt_residual``."""
        grad, mu = self.scaled_gradient(y)
        return relative_kkt_residual(y, grad, self.weights, mu=mu)

    def settle_unweighted(self, y):
        """Give rows of zero weight their optimal labels at β = λu/ȳ."""
        unweighted = self.weights == 0
        if not bool(unweighted.any()):
            return y
        beta = self.fairness_gradient(self.weights @ y)
        rows = self.solve_rows(torch.where(torch.isfinite(beta), beta, 0.0))
        return torch.where(unweighted[:, None], self.dense(rows), y)


def _allowance(values):
    """Rounding allowance under which envelope values count as tied."""
    return _TIE_ULPS * _EPS * (values.abs() + 1.0)


# ---- Newton's method on the dual -----------------------------------------------------


def dual_newton(problem, tol, max_iter, beta=None):
    """Maximize D over θ = ln β; returns (row solutions, n_iter).

    The step solves (diag(λu) + B J̄ B) Δθ = λu − β ⊙ ȳ, B = diag(β): the
    gradient of D in θ with Newton's Hessian in β carried over to θ (exact at
    the optimum, where β ⊙ ȳ = λu). In the diagonal model D = λu θ − ȳ e^θ this
    multiplicative step converges from anywhere (from above it lands below the
    optimum, from below it climbs monotonically); a backtracking line search
    on D guards the rest. Stops when the KKT residual of the row solutions is
    at most ``tol``, or when the bound of :func:`_dual_gap_bound` stalls.
    """
    fair, target = problem.fair, problem.target
    if beta is not None:
        starts = (torch.log(beta[fair]),)  # a given start
    else:
        # two starts: β = λ (ȳ = u, the limit of large λ) and the multipliers
        # of ȳ = (σ̄ + u)/2; keep the one with the larger dual value
        y_bar = 0.5 * (problem.weights @ problem.probs + problem.prior)
        starts = (
            torch.full_like(target[fair], math.log(problem.fairness_weight)),
            torch.log(target[fair] / y_bar[fair]),
        )
    start = None
    for theta in starts:
        beta = torch.zeros_like(problem.prior)
        beta[fair] = torch.exp(theta)
        rows = problem.solve_rows(beta)
        value = problem.dual_value(theta, rows)
        if start is None or value > start[3]:
            start = (theta, beta, rows, value)
    theta, beta, rows, value = start
    best_bound, stalls, n_iter, solves = math.inf, 0, 0, len(starts)
    while True:
        y_bar = problem.mean_labels(rows)
        bound = _dual_gap_bound(problem, beta, y_bar, rows)
        if bound <= 16.0 * tol and problem.kkt_residual(problem.dense(rows)) <= tol:
            break
        if bound < 0.5 * best_bound:
            best_bound, stalls = bound, 0
        else:
            stalls += 1
        if (
            n_iter >= min(max_iter, _DUAL_MAX_ITER)
            or stalls >= 2
            or solves >= _DUAL_MAX_SOLVES
        ):
            break
        n_iter += 1
        gradient = (target - beta * y_bar)[fair]
        jacobian = problem.label_jacobian(rows)[fair][:, fair]
        hessian = torch.diag(target[fair]) + beta[fair, None] * jacobian * beta[fair]
        step = solve_spd(hessian, gradient)
        slope = float(gradient @ step)
        if not slope > 0.0:
            break
        scale = 1.0
        while scale >= _MIN_STEP:
            theta_new = theta + scale * step
            beta_new = torch.zeros_like(beta)
            beta_new[fair] = torch.exp(theta_new)
            rows_new = problem.solve_rows(beta_new, rows)
            solves += 1
            value_new = problem.dual_value(theta_new, rows_new)
            if value_new >= value + _ARMIJO * scale * slope:
                break
            scale *= 0.5
        if scale < _MIN_STEP:
            break
        theta, beta, rows, value = theta_new, beta_new, rows_new, value_new
    return rows, n_iter


def _dual_gap_bound(problem, beta, y_bar, rows):
    """An upper bound of the KKT residual of row solutions, in O(N + K).

    With δ_k = β_k − λu_k/ȳ_k, a row solved at β has G_ik − μ_i equal to
    δ_k − Σ_j y_ij δ_j on its support and at least that off it, so its residual
    is at most 4 max|δ| / max(1, ν_i − max|δ|).
    """
    delta = float((beta - problem.fairness_gradient(y_bar)).abs().amax())
    if not math.isfinite(delta):
        return math.inf
    return 4.0 * delta / max(1.0, float(rows.level.amin()) - delta)


# ---- the sparse polish of a primal point ---------------------------------------------


def sparsify(problem, y, residual, n_iter, max_iter):
    """Remove the small entries an interior point leaves where the optimum has zeros.

    First a few Newton steps on D from the interior point's multipliers
    β = λu/ȳ: where D is smooth at the optimum they end at the exact, sparse
    optimum (often far below the interior point's residual). Otherwise entries
    below _SNAP_RELATIVE of their row's largest whose gradient points outwards
    (G_ik > μ_i) are set to zero. Either result is kept only if its KKT
    residual is below ``residual``, that of y. Returns (y, residual, n_iter).
    """
    beta = problem.fairness_gradient(problem.weights @ y)
    if not bool(torch.isfinite(beta).all()):
        return y, residual, n_iter
    rows, more_iter = dual_newton(
        problem, residual, min(_SPARSE_MAX_ITER, max_iter - n_iter), beta
    )
    n_iter += more_iter
    sparse = problem.dense(rows)
    sparse_residual = problem.kkt_residual(sparse)
    if sparse_residual < residual:
        return problem.settle_unweighted(sparse), sparse_residual, n_iter
    grad, mu = problem.scaled_gradient(y)
    small = (y > 0) & (y < _SNAP_RELATIVE * y.amax(dim=1, keepdim=True)) & (grad > mu)
    if bool(small.any()):
        snapped = torch.where(small, 0.0, y)
        snapped = snapped / snapped.sum(dim=1, keepdim=True)
        snapped_residual = problem.kkt_residual(snapped)
        if snapped_residual < residual:
            return snapped, snapped_residual, n_iter
    return y, residual, n_iter
