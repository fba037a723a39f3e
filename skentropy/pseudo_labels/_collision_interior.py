"""Primal-dual interior point method for the collision pseudo-label problem.

The collision pseudo-label problem (collision-cross-entropy eq. 11-12),

    minimize over y (rows y_i on the simplex Δ^K)
    E₂(y) = Σ_i w_i (−ln σ_i·y_i) − λ Σ_k u_k ln ȳ_k,     ȳ = Σ_i w_i y_i,

has a dual with kinks where a row's optimum spreads over three or more
classes, which stalls the dual Newton method of ``_collision_dual``. This
module solves E₂ in the primal instead: a primal-dual interior point method
(Mehrotra's predictor-corrector, :func:`_interior_point`) restricted to a few
candidate classes per row (all classes for small problems, else the largest
σ_ik), vectorized over rows. Every Newton system reduces to K×K through the
row structure (diagonal plus rank one per row). :func:`primal_interior`
widens the candidates by the classes that violate the KKT conditions at its
solution until the full problem is solved; :func:`polish` restarts it on the
support of a point where it stalled above the tolerance.

The problem object passed in is the ``CollisionDual`` of ``_collision_dual``
(its data, gradient, KKT residual and the optimal labels of rows of zero
weight). Both functions stop on the relative KKT residual of
:func:`skentropy.pseudo_labels.kkt_residual`.
"""

import math

import torch

from skentropy.pseudo_labels._problem import CholeskySolver, relative_kkt_residual

__all__ = ["polish", "primal_interior"]

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
# The polish restarts the interior point on the entries whose relative
# multiplier is at most _SUPPORT_MULTIPLIER or that are above _SUPPORT_SHARE
# of their row's largest.
_SUPPORT_MULTIPLIER = 1e-3
_SUPPORT_SHARE = 1e-5
_POLISH_ROUNDS = 3
_POLISH_MAX_ITER = 40


def primal_interior(problem, tol, max_iter, mask=None, start=None):
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


def polish(problem, y, residual, tol, n_iter, max_iter):
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
    candidates (see :func:`primal_interior`). A result is kept only if its
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
        y_polished, more_iter, polished_residual = primal_interior(
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
