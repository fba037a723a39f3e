"""Exact solver of the collision pseudo-label problem through its dual.

The collision pseudo-label problem (collision-cross-entropy eq. 11-12) is

    minimize over y (rows y_i on the simplex Δ^K)
    E₂(y) = Σ_i w_i (−ln σ_i·y_i) − λ Σ_k u_k ln ȳ_k,     ȳ = Σ_i w_i y_i,

with weights w summing to one. Its optimum is sparse (most rows have one or
two nonzeros), and the multiplicative EM of the paper (eq. 14-17 and
supplement C) only shrinks entries geometrically towards it. This module
solves it in two phases, both vectorized over rows (Python loops run over
iterations only).

Phase 1, the dual. Dualizing ȳ = z with multipliers β ∈ R^K, the minimum of
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
on θ = ln β (β_k = 0 where u_k = 0) with a line search on D finds the optimum
whenever D is smooth there.

Phase 2, the primal on candidate lines. D has kinks where a row's optimum
spreads over three or more lines, which is the rule when N is small next to K
(one row alone spreads over every class), and its staircase-like gradient
slows Newton's method down for large N. When phase 1 stalls, a primal-dual
interior point method (Mehrotra's predictor-corrector) solves E₂ restricted to
a few candidate lines per row (all lines for small problems, else the largest
σ_ik); every Newton system reduces to K×K through the row structure (diagonal
plus rank one per row). The candidates widen by the lines that violate the
KKT conditions at its solution until the full problem is solved.

Both phases stop on the relative KKT residual of
:func:`skentropy.pseudo_labels.kkt_residual`.
"""

import math
from typing import NamedTuple

import torch

from skentropy.pseudo_labels._newton_fallback import newton_fallback
from skentropy.pseudo_labels._problem import (
    CholeskySolver,
    fairness_gradient,
    relative_kkt_residual,
    scaled_gradient,
    solve_spd,
)

__all__ = ["solve_collision_dual"]

_EPS = torch.finfo(torch.float64).eps
# Rounding allowance, in units of eps times the magnitude of the line values,
# under which two lines of a row's envelope count as tied.
_TIE_ULPS = 64.0
# Armijo constant and smallest step of the dual line search.
_ARMIJO = 1e-4
_MIN_STEP = 2.0**-10
# Phase 1 stops after this many Newton iterations or row solves, or after two
# iterations that do not halve its residual bound (the iterate circles kinks
# of D).
_DUAL_MAX_ITER = 10
_DUAL_MAX_SOLVES = 30
# Candidate lines per row of the interior point method: all of them when
# N·K is at most _DENSE_SIZE, else the _CANDIDATES largest σ_ik and the
# _CANDIDATES largest among fair classes; each widening adds at most _WIDEN
# violated lines per row.
_DENSE_SIZE = 100_000
_CANDIDATES = 8
_WIDEN = 16
# Rows fed to the row-block assembly of the K×K system; wider layouts use
# dense products.
_BLOCK_WIDTH = 16
# The interior point starts from half σ (renormalized on the candidates) and
# half the uniform distribution; steps stop short of the boundary by this
# fraction; the centering target stays above this share of the largest
# complementarity residual per candidate (a safeguard of Mehrotra's rule on
# this nonlinear problem).
_START_MIX = 0.5
_TO_BOUNDARY = 0.995
_CENTERING_FLOOR = 0.1
# A start given on the candidates (the polish) has its zeros raised to this
# share of their row's largest entry.
_START_FLOOR = 1e-9
# The interior point stops after this many iterations that do not halve its
# residual (near the precision it can reach in float64).
_STALL = 15
# The sparse polish of the interior point's labels: Newton iterations on D
# from its multipliers, else zeroing entries below this share of their row's
# largest.
_SPARSE_MAX_ITER = 4
_SNAP_RELATIVE = 1e-3
# The polish restarts the interior point on the entries whose relative
# multiplier is at most _SUPPORT_MULTIPLIER or that are above _SUPPORT_SHARE
# of their row's largest.
_SUPPORT_MULTIPLIER = 1e-3
_SUPPORT_SHARE = 1e-5
_POLISH_ROUNDS = 3
_POLISH_MAX_ITER = 40


def solve_collision_dual(
    probs, weights, prior, fairness_weight, tol=1e-6, max_iter=100
):
    """Exact pseudo-labels of the collision cross-entropy with fairness.

    Minimizes E₂(y) = Σ_i w_i (−ln σ_i·y_i) − λ Σ_k u_k ln ȳ_k, ȳ = Σ_i w_i y_i,
    over pseudo-labels y with rows on the probability simplex: the y-subproblem
    of the collision cross-entropy loss with strong fairness (collision
    eq. 11-12, whose EM algorithm, eq. 14-17 and supplement C, solves the same
    problem). Phase 1 maximizes the concave dual

        D(β) = Σ_k λu_k ln β_k + Σ_i w_i min_{y∈Δ} (−ln σ_i·y − β·y),

    ∂D/∂β_k = λu_k/β_k − ȳ_k, by Newton's method in ln β; each row's inner
    problem is solved exactly (a vertex or an edge of the simplex, found on
    the upper envelope of the lines β_k + σ_ik s). When phase 1 stalls at the
    kinks of D (rows whose optimum spreads over three or more classes), phase 2
    solves E₂ by a primal-dual interior point method on a few candidate
    classes per row, widened by the classes that violate the KKT conditions.

    Parameters
    ----------
    probs : torch.Tensor of shape (n_samples, n_classes), float64
        Predictions σ, rows on the probability simplex (exact zeros allowed).
    weights : torch.Tensor of shape (n_samples,), float64
        Row weights w, non-negative, summing to one.
    prior : torch.Tensor of shape (n_classes,), float64
        Target proportions u on the simplex (zeros allowed).
    fairness_weight : float
        λ ≥ 0.
    tol : float, default=1e-6
        Stop when the relative KKT residual (the rule of
        :func:`skentropy.pseudo_labels.kkt_residual`) is at most ``tol``.
    max_iter : int, default=100
        Maximum number of Newton iterations, both phases together.

    Returns
    -------
    labels : torch.Tensor of shape (n_samples, n_classes), float64
        Pseudo-labels y, rows on the simplex, on the device of ``probs``.
    n_iter : int
        Newton iterations made (0 for the closed-form cases).
    converged : bool
        Whether the KKT residual reached ``tol``.

    Notes
    -----
    Closed forms: with one class y = 1; with λ = 0 every row is one-hot at its
    first argmax σ (collision Example 2; any split of a tied argmax is as
    good). Classes with u_k = 0 carry no fairness: their multiplier is β_k = 0.
    Identical rows are solved once: averaging their labels keeps ȳ and does
    not increase Σ_i w_i (−ln σ_i·y_i), so an optimum gives them one label.

    Phase 1 returns exact zeros; the interior point leaves entries of the
    order of its barrier parameter (≈ tol) where the optimum has zeros. The
    optimum need not be unique (rows may share tied classes in any
    proportions); its objective value is.

    References
    ----------
    Zhang, Boykov et al., "Collision cross-entropy for soft class labels and
    entropy-based clustering", eq. 11-17 and supplement C.
    Mehrotra, "On the implementation of a primal-dual interior point method",
    SIAM J. Optim. 2, 1992.
    """
    n_classes = probs.shape[1]
    if n_classes == 1:
        return torch.ones_like(probs), 0, True
    if float(fairness_weight) == 0.0:
        y = torch.zeros_like(probs)
        return y.scatter_(1, probs.argmax(dim=1, keepdim=True), 1.0), 0, True
    distinct, inverse = _distinct_rows(probs)
    if inverse is not None:
        merged = torch.zeros(
            distinct.shape[0], dtype=weights.dtype, device=weights.device
        )
        merged.index_add_(0, inverse, weights)
        y, n_iter, converged = solve_collision_dual(
            distinct, merged, prior, fairness_weight, tol, max_iter
        )
        return y[inverse], n_iter, converged
    problem = _DualProblem(probs, weights, prior, float(fairness_weight))
    rows, n_iter = _dual_newton(problem, tol, max_iter)
    y = problem.dense(rows)
    residual = problem.kkt_residual(y)
    if residual > tol and n_iter < max_iter:
        y_primal, more_iter, residual_primal = _primal_interior(
            problem, tol, max_iter - n_iter
        )
        n_iter += more_iter
        if residual_primal < residual:
            y, residual = problem.settle_unweighted(y_primal), residual_primal
        y, residual, n_iter = _sparsify(problem, y, residual, n_iter, max_iter)
    if residual > tol and n_iter < max_iter:
        y, residual, n_iter = _polish(problem, y, residual, tol, n_iter, max_iter)
    if residual > tol and n_iter < max_iter:
        # last resort: the interior point stalls on some problems with many
        # classes that only fairness fills (one-hot rows, K ≫ N, large λ)
        y_newton, more_iter, residual_newton = newton_fallback(
            problem.probs,
            problem.weights,
            problem.prior,
            problem.fairness_weight,
            "collision",
            tol,
            max_iter - n_iter,
            init=y,
        )
        n_iter += more_iter
        if residual_newton < residual:
            y, residual = problem.settle_unweighted(y_newton), residual_newton
            y, residual, n_iter = _sparsify(problem, y, residual, n_iter, max_iter)
        if residual > tol and n_iter < max_iter:
            y, residual, n_iter = _polish(problem, y, residual, tol, n_iter, max_iter)
    return y, n_iter, bool(residual <= tol)


def _sparsify(problem, y, residual, n_iter, max_iter):
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
    rows, more_iter = _dual_newton(
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


def _polish(problem, y, residual, tol, n_iter, max_iter):
    """Restart the interior point method from y on the support of y.

    The interior point method can stall above the tolerance (near 1e-7 in
    float64, or where the last resort leaves it): its K×K systems mix
    candidates at the barrier level (the zeros of the optimum) with entries of
    order one and lose digits, and the dual violations of positive entries,
    y_ik (G_ik − μ_i) divided by y_ik, stay above ``tol``. Restarted from y on
    its support every candidate is far from the boundary and a few Newton
    iterations reach the tolerance. The support is read from the multipliers
    of y ≥ 0: the
    entries whose relative multiplier (G_ik − μ_i) / max(1, |μ_i|) is at most
    ``_SUPPORT_MULTIPLIER`` (an interior point's entries at the zeros of the
    optimum have clearly positive ones, however small the other entries: with
    K ≫ N and a tiny λ the optimum fills most classes with entries of 1e-7),
    and the entries above ``_SUPPORT_SHARE`` of their row's largest. Entries
    left out that should be positive show up as dual violations and widen the
    candidates (see :func:`_primal_interior`). A result is kept only if its
    KKT residual is below ``residual``, that of y; while it is, and above
    ``tol``, the restart is repeated from it (up to ``_POLISH_ROUNDS`` times:
    a first restart from a far point can stall, yet bring the support and the
    multipliers close enough for the next to converge in a few iterations),
    each with at most ``_POLISH_MAX_ITER`` iterations: where the support misses
    many entries, widening it back round by round is slower than the Newton
    fallback that follows. Returns (y, residual, n_iter).
    """
    for _ in range(_POLISH_ROUNDS):
        if residual <= tol or n_iter >= max_iter:
            break
        grad, mu = problem.scaled_gradient(y)
        multiplier = (grad - mu) / mu.abs().clamp_min(1.0)
        support = (multiplier <= _SUPPORT_MULTIPLIER) | (
            y > _SUPPORT_SHARE * y.amax(dim=1, keepdim=True)
        )
        y_polished, more_iter, polished_residual = _primal_interior(
            problem,
            tol,
            min(max_iter - n_iter, _POLISH_MAX_ITER),
            mask=support,
            start=y,
        )
        n_iter += more_iter
        if not polished_residual < residual:
            break
        y, residual = problem.settle_unweighted(y_polished), polished_residual
    return y, residual, n_iter


def _distinct_rows(probs):
    """(distinct rows, inverse index) if some rows repeat, else (probs, None).

    A random projection screens for repeats in O(NK) before the exact
    comparison, which sorts.
    """
    n_samples, n_classes = probs.shape
    if n_samples == 1:
        return probs, None
    generator = torch.Generator().manual_seed(0)
    direction = torch.rand(n_classes, generator=generator, dtype=probs.dtype)
    if torch.unique(probs @ direction.to(probs.device)).shape[0] == n_samples:
        return probs, None
    distinct, inverse = torch.unique(probs, dim=0, return_inverse=True)
    if distinct.shape[0] == n_samples:
        return probs, None
    return distinct, inverse


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


class _DualProblem:
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


# ---- phase 1: Newton's method on the dual -------------------------------------------


def _dual_newton(problem, tol, max_iter, beta=None):
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


# ---- phase 2: interior point on candidate lines -------------------------------------


def _primal_interior(problem, tol, max_iter, mask=None, start=None):
    """The interior point method on candidate lines, widened until optimal.

    The candidates are ``mask`` if given, else chosen from σ; the first solve
    starts from ``start`` (positive on the candidates) if given, else from
    :meth:`_Restricted.start`. Returns (y, n_iter, residual) with the smallest
    KKT residual met.
    """
    n_samples, n_classes = problem.probs.shape
    if mask is not None:
        mask = mask.clone()
    elif n_samples * n_classes <= _DENSE_SIZE or n_classes <= _CANDIDATES:
        mask = torch.ones_like(problem.probs, dtype=torch.bool)
    else:
        # the largest σ_ik, and the largest among fair classes (u_k > 0), which
        # a large λ fills first
        mask = torch.zeros_like(problem.probs, dtype=torch.bool)
        mask.scatter_(1, torch.topk(problem.probs, _CANDIDATES, dim=1).indices, True)
        if not bool(problem.fair.all()):
            fair_probs = torch.where(problem.fair, problem.probs, -1.0)
            top = torch.topk(
                fair_probs, min(_CANDIDATES, int(problem.fair.sum())), dim=1
            ).indices
            mask.scatter_(1, top, True)
    index = (problem.weights > 0).nonzero().squeeze(1)
    best, best_residual, n_iter = None, math.inf, 0
    while n_iter < max_iter:
        restricted = _Restricted(problem, mask, index)
        y_start = restricted.start(start)
        start = None
        y_sub, used = _interior_point(restricted, y_start, 0.5 * tol, max_iter - n_iter)
        n_iter += used
        y = restricted.dense(y_sub)
        residual = problem.kkt_residual(y)
        if residual < best_residual:
            best, best_residual = y, residual
        if residual <= tol:
            break
        # widen by the lines whose KKT conditions fail, the worst first
        grad, mu = problem.scaled_gradient(y)
        violation = torch.where(~mask & (problem.weights > 0)[:, None], mu - grad, 0.0)
        violated = (violation.amax(dim=1) > 0).nonzero().squeeze(1)
        if violated.numel() == 0:
            break
        worst = torch.topk(violation[violated], min(_WIDEN, n_classes), dim=1)
        widen = torch.zeros(
            violated.shape[0], n_classes, dtype=torch.bool, device=mask.device
        )
        widen.scatter_(1, worst.indices, worst.values > 0)
        mask[violated] |= widen
    return best, n_iter, best_residual


class _Restricted:
    """The problem on candidate lines, in a padded (n, m) layout.

    ``lines[i, j]`` is the class of the j-th candidate of row i where ``valid``;
    padding points at class 0 with σ = y = 0, so that sums need no masking.
    Only rows of positive weight (``index``) take part.
    """

    def __init__(self, problem, mask, index):
        self.problem = problem
        self.index = index
        mask = mask[index]
        counts = mask.sum(dim=1)
        entries = mask.nonzero()
        row, col = entries[:, 0], entries[:, 1]
        position = (
            torch.arange(row.shape[0], device=row.device)
            - (torch.cumsum(counts, dim=0) - counts)[row]
        )
        shape = (index.shape[0], int(counts.max()))
        self.lines = torch.zeros(shape, dtype=torch.long, device=row.device)
        self.lines[row, position] = col
        self.valid = torch.zeros(shape, dtype=torch.bool, device=row.device)
        self.valid[row, position] = True
        self.sigma = torch.where(
            self.valid, problem.probs[index].gather(1, self.lines), 0.0
        )
        self.weights = problem.weights[index]
        self.n_classes = problem.probs.shape[1]

    def start(self, y=None):
        """y on the candidates (renormalized) if given, else half σ
        (renormalized on the candidates) and half uniform."""
        if y is not None:
            y = torch.where(self.valid, y[self.index].gather(1, self.lines), 0.0)
            # candidates must start positive: zeros of y (that should grow)
            # start at _START_FLOOR of their row's largest
            floor = _START_FLOOR * y.amax(dim=1, keepdim=True)
            y = torch.where(self.valid, torch.maximum(y, floor), 0.0)
            return y / y.sum(dim=1, keepdim=True)
        counts = self.valid.sum(dim=1, keepdim=True).to(self.sigma.dtype)
        share = self.sigma / self.sigma.sum(dim=1, keepdim=True)
        return torch.where(
            self.valid, (1.0 - _START_MIX) * share + _START_MIX / counts, 0.0
        )

    def class_sum(self, values):
        """Σ_i w_i values_ij gathered on the classes (zero on padding)."""
        out = torch.zeros(self.n_classes, dtype=values.dtype, device=values.device)
        return out.index_add_(
            0, self.lines.flatten(), (self.weights[:, None] * values).flatten()
        )

    def dense(self, y):
        """The (N, K) labels of candidate values (zero elsewhere)."""
        rows = torch.zeros(
            self.index.shape[0], self.n_classes, dtype=y.dtype, device=y.device
        ).scatter_add_(1, self.lines, y)
        out = torch.zeros_like(self.problem.probs)
        out[self.index] = rows
        return out

    def gradient(self, y):
        """G_ij = −σ_ij/t_i − λu_k/ȳ_k on the candidates (0 on padding)."""
        t = (self.sigma * y).sum(dim=1, keepdim=True)
        fair = self.problem.fairness_gradient(self.class_sum(y))
        return torch.where(self.valid, -self.sigma / t - fair[self.lines], 0.0)

    def residuals(self, y):
        """(relative KKT residual, largest |y_j (G_j − μ_i)|) on the candidates.

        Padding has y = G = 0 > μ_i: it adds nothing to either.
        """
        grad = self.gradient(y)
        mu = (y * grad).sum(dim=1, keepdim=True)
        slack = (y * (grad - mu)).abs()
        return relative_kkt_residual(y, grad, mu=mu), float(slack.amax())

    def factor(self, y, z):
        """Row pieces and the factorized K×K system of the Newton equations.

        Per row the Hessian of E₂ plus the barrier scaling is D + a aᵀ with
        D = diag(z/y) and a = σ/t; under Σ_j dy_j = 0 its inverse is
        M = R − q qᵀ/(1ᵀq), R = (D + a aᵀ)⁻¹ = diag(r) − (r a)(r a)ᵀ/(1 + Σ r a²),
        r = y/z, q = R 1. The rows couple through ȳ, Λ = diag(λu/ȳ²): with
        γ = Λ Σ_i w_i dy_i, (Λ⁻¹ + Σ_i w_i M_i) γ = −Σ_i w_i M_i g_i.
        """
        problem = self.problem
        t = (self.sigma * y).sum(dim=1, keepdim=True)
        a = self.sigma / t
        r = torch.where(self.valid, y / torch.where(self.valid, z, 1.0), 0.0)
        ra = r * a
        alpha = 1.0 + (ra * a).sum(dim=1, keepdim=True)
        q = r * (alpha - a * ra.sum(dim=1, keepdim=True)) / alpha
        q_sum = q.sum(dim=1, keepdim=True)
        pieces = (r, ra, alpha, q, q_sum)
        fair = problem.fair
        y_bar = self.class_sum(y)
        matrix = self._row_inverse_sum(pieces)[fair][:, fair]
        matrix += torch.diag(y_bar[fair] ** 2 / problem.target[fair])
        return pieces, CholeskySolver(matrix)

    def _row_inverse_sum(self, pieces):
        """Σ_i w_i M_i (K×K)."""
        r, ra, alpha, q, q_sum = pieces
        n_classes = self.n_classes
        if self.lines.shape[1] <= _BLOCK_WIDTH:
            # each M_i formed in its row before the sum (no cancellation
            # between rows)
            blocks = (
                torch.diag_embed(r)
                - ra[:, :, None] * ra[:, None, :] / alpha[:, :, None]
                - q[:, :, None] * q[:, None, :] / q_sum[:, :, None]
            )
            blocks = blocks * self.weights[:, None, None]
            index = self.lines[:, :, None] * n_classes + self.lines[:, None, :]
            out = torch.zeros(n_classes * n_classes, dtype=r.dtype, device=r.device)
            out.index_add_(0, index.flatten(), blocks.flatten())
            return out.view(n_classes, n_classes)
        out = torch.diag(self.class_sum(r))
        for coef, vectors in ((alpha, ra), (q_sum, q)):
            dense = torch.zeros(
                self.lines.shape[0], n_classes, dtype=r.dtype, device=r.device
            )
            dense.scatter_add_(
                1, self.lines, vectors * (self.weights[:, None] / coef).sqrt()
            )
            out -= dense.T @ dense
        return out

    def direction(self, g, pieces, cholesky):
        """dy_i = −M_i (g_i + γ) with γ from the coupling system."""
        r, ra, alpha, q, q_sum = pieces

        def apply(c):
            return (
                r * c
                - ra * (ra * c).sum(dim=1, keepdim=True) / alpha
                - q * (q * c).sum(dim=1, keepdim=True) / q_sum
            )

        fair = self.problem.fair
        gamma = torch.zeros(self.n_classes, dtype=g.dtype, device=g.device)
        gamma[fair] = cholesky.solve(-self.class_sum(apply(g))[fair])
        return -apply(g + gamma[self.lines])


def _largest_step(x, dx):
    """The largest α ≤ 1 with x + α dx ≥ 0, shortened by the boundary fraction."""
    shrinking = dx < 0
    limit = torch.where(shrinking, -x / torch.where(shrinking, dx, -1.0), math.inf)
    return min(1.0, _TO_BOUNDARY * float(limit.amin()))


def _interior_point(restricted, y, tol, max_iter):
    """Primal-dual interior point method on the candidates; returns (y, n_iter).

    Variables y > 0 (rows on the simplex) and z > 0, the multipliers of y ≥ 0.
    Eliminating z, a Newton step for G − ν − z = 0, y z = τ solves
    (H + Z/Y) dy − 1 ν = −(G − τ/y) per row with the coupling of
    :meth:`_Restricted.factor`, and dz = τ/y − z − (z/y) dy. Mehrotra's
    predictor (τ = 0) sets the centering τ = (μ_aff/μ)³ μ of the corrector, which
    also carries the predictor's second-order term; τ stays between a share of
    the largest complementarity residual (so that μ does not outrun the dual
    feasibility on this nonlinear problem) and μ. Stops when the relative KKT
    residual on the candidates is at most ``tol``, or after ``_STALL``
    iterations that do not halve it; returns the iterate of the smallest
    residual met (near its limit of precision the iteration can drift away
    from it again).
    """
    valid, weights = restricted.valid, restricted.weights
    width = restricted.lines.shape[1]
    entries = float(weights @ valid.sum(dim=1).to(y.dtype))
    safe_y = torch.where(valid, y, 1.0)

    def mean_product(y, z):
        return float(weights @ torch.where(valid, y * z, 0.0).sum(dim=1)) / entries

    grad = restricted.gradient(y)
    spread = torch.where(valid, y * (grad - (y * grad).sum(dim=1, keepdim=True)), 0.0)
    mu = max(float(weights @ spread.abs().sum(dim=1)) / entries, 1e-12)
    z = torch.where(valid, mu / safe_y, 0.0)
    best, since_best = math.inf, 0
    best_y, best_residual = y, math.inf
    for n_iter in range(max_iter):
        residual, largest = restricted.residuals(y)
        if residual < best_residual:
            best_y, best_residual = y, residual
        if residual <= tol:
            return y, n_iter
        # give up after _STALL iterations that do not halve the residual
        if residual < 0.5 * best:
            best, since_best = residual, 0
        else:
            since_best += 1
            if since_best >= _STALL:
                return best_y, n_iter
        mu = mean_product(y, z)
        grad = restricted.gradient(y)
        pieces, cholesky = restricted.factor(y, z)
        safe_y = torch.where(valid, y, 1.0)
        # predictor: affine scaling, τ = 0
        dy_aff = restricted.direction(grad, pieces, cholesky)
        dz_aff = torch.where(valid, -z - z / safe_y * dy_aff, 0.0)
        mu_aff = mean_product(
            y + _largest_step(y, dy_aff) * dy_aff, z + _largest_step(z, dz_aff) * dz_aff
        )
        target = (mu_aff / mu) ** 3 * mu
        target = min(max(target, _CENTERING_FLOOR * largest / width), mu)
        # corrector: τ = target, with the second-order term of the predictor
        shift = torch.where(valid, (target - dy_aff * dz_aff) / safe_y, 0.0)
        dy = restricted.direction(grad - shift, pieces, cholesky)
        dz = torch.where(valid, shift - z - z / safe_y * dy, 0.0)
        step_primal, step_dual = _largest_step(y, dy), _largest_step(z, dz)
        y = torch.where(valid, (y + step_primal * dy).clamp_min(0.0), 0.0)
        y = y / y.sum(dim=1, keepdim=True)
        z = (z + step_dual * dz).clamp_min(torch.finfo(z.dtype).tiny)
        z = torch.where(valid, z, 0.0)
    residual, _ = restricted.residuals(y)
    return (y if residual < best_residual else best_y), max_iter
