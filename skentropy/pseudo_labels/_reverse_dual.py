"""Exact solver of the reverse cross-entropy pseudo-label problem through its dual.

The reverse cross-entropy pseudo-label problem (entropy-clustering-kmeans-svm
eq. 13-14) is

    minimize over y (rows y_i on the simplex Δ^K)
    E(y) = Σ_i w_i (−Σ_k σ_ik ln y_ik) − λ Σ_k u_k ln ȳ_k,     ȳ = Σ_i w_i y_i,

with row weights w summing to one. Its EM algorithm (eq. 16-17) contracts
slowly when λ is large: the fairness term couples every row to every other
one. Here the coupling is removed by a dual variable per class.

Dualizing ȳ = z with multipliers β ∈ R^K, the minimum of −λu_k ln z_k + β_k z_k
is at z_k = λu_k/β_k, and the concave dual is

    D(β) = Σ_k λu_k ln β_k + Σ_i w_i φ_i(β) + const,
    φ_i(β) = min over y ∈ Δ of (−Σ_k σ_ik ln y_k − β·y),  ∂D/∂β_k = λu_k/β_k − ȳ_k(β).

Each row problem has a closed form up to one scalar: y_ik = σ_ik/(c_i − β_k)
where σ_ik > 0, with c_i > max_{σ_ik>0} β_k the root of the secular equation
f_i(c) = Σ_k σ_ik/(c − β_k) = 1. Entries with σ_ik = 0 stay zero unless the
root lies below m_i = max_{σ_ik=0} β_k; then c_i = m_i and the class of m_i
takes the rest, 1 − f_i(m_i) (the dual has a kink there). The value is
φ_i = Σ_k σ_ik ln(c_i − β_k) + 1 − c_i up to a constant, and
∂y_i/∂β = diag(d_i) − d_i d_iᵀ/s_i with d_ik = y_ik²/σ_ik, s_i = Σ_k d_ik.

Newton's method on θ = ln β (β_k = 0 where u_k = 0) with a line search on D
solves the dual with one K×K system per iteration; all rows are handled at
once (Python loops run over iterations only).
"""

import math

import torch

from skentropy.pseudo_labels._problem import (
    relative_kkt_residual,
    scaled_gradient,
    solve_spd,
)

__all__ = ["solve_reverse_dual"]

# Newton iterations of the per-row secular equation; the iteration is monotone
# and exact for a single pole, so this cap is reached only on rows with
# thousands of nearly tied poles.
_ROOT_MAX_ITER = 100
# The secular equation counts as solved when its Newton steps change the
# offset t by less than this share (a few units of rounding).
_ROOT_RTOL = 4 * torch.finfo(torch.float64).eps
# Armijo constant and smallest step of the dual line search.
_ARMIJO = 1e-4
_MIN_STEP = 2.0**-20


def solve_reverse_dual(
    probs, weights, prior, fairness_weight, tol=1e-6, max_iter=50, init=None
):
    """Exact pseudo-labels of the reverse cross-entropy with fairness.

    Minimizes E(y) = Σ_i w_i (−Σ_k σ_ik ln y_ik) − λ Σ_k u_k ln ȳ_k over y with
    rows on the simplex (entropy-clustering-kmeans-svm eq. 13-14, the problem
    its EM algorithm eq. 16-17 solves) by Newton's method on the dual
    variables β_k = λu_k/ȳ_k, one per class.

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
    max_iter : int, default=50
        Maximum number of Newton iterations on the dual.
    init : torch.Tensor of shape (n_samples, n_classes), default=None
        Pseudo-labels to start from: the dual starts at β = λu/ȳ. ``None``
        starts from the better of β = λ (ȳ = u) and β = λu/((σ̄ + u)/2).

    Returns
    -------
    labels : torch.Tensor of shape (n_samples, n_classes), float64
        Pseudo-labels y, rows on the simplex.
    n_iter : int
        Newton iterations made (0 for the closed-form cases).
    converged : bool
        Whether the KKT residual reached ``tol``. It may not where the dual is
        not smooth at its optimum: σ_ik = 0 entries that take mass, in rows
        whose σ_ik = 0 classes tie at the top multiplier (the row may split
        its rest among them in any proportions, and D has a kink), or peaked
        σ whose tiny entries act alike. The caller then finishes with the
        primal-dual Newton method of ``skentropy.pseudo_labels._newton_fallback``, which
        does not see the kink.

    Notes
    -----
    Closed forms: with one class y = 1; with λ = 0, y = σ. Classes with
    u_k = 0 carry no fairness: their multiplier is β_k = 0.

    References
    ----------
    Zhang, Boykov et al., "Revisiting discriminative entropy clustering and its
    relation to K-means and SVM", eq. 13-17.
    """
    if probs.shape[1] == 1:
        return torch.ones_like(probs), 0, True
    if float(fairness_weight) == 0.0:
        return probs.clone(), 0, True
    problem = _ReverseDual(probs, weights, prior, float(fairness_weight))
    fair, target = problem.fair, problem.target
    theta, rows, value = problem.start(init)
    n_iter = 0
    while True:
        y = problem.dense(rows)
        residual = problem.kkt_residual(y)
        if residual <= tol or n_iter >= max_iter:
            break
        n_iter += 1
        beta = problem.beta(theta)
        y_bar = weights @ y
        # gradient of D in θ, and Newton's Hessian in β carried over to θ
        # (exact at the optimum, where β ⊙ ȳ = λu)
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
            rows_new = problem.solve_rows(problem.beta(theta_new))
            value_new = problem.dual_value(theta_new, rows_new)
            # with a rounding allowance: near the optimum the increase is
            # below the resolution of D's value
            allowance = 1e-15 * (abs(value) + 1.0)
            if value_new >= value + _ARMIJO * scale * slope - allowance:
                break
            scale *= 0.5
        if scale < _MIN_STEP:
            break
        theta, rows, value = theta_new, rows_new, value_new
    return y, n_iter, bool(residual <= tol)


class _Rows:
    """Row solutions at β: the level c_i = a_i + t_i of each row.

    Where c_i is the β of a σ_ik = 0 class, ``zero_class`` holds its index.
    """

    def __init__(self, beta, anchor, offset, distance, zero_class, active):
        self.beta = beta
        self.anchor = anchor  # a_i = max_{σ_ik>0} β_k, shape (N, 1)
        self.offset = offset  # t_i = c_i − a_i, shape (N, 1)
        self.distance = distance  # a_i − β_k where σ_ik > 0, shape (N, K)
        self.zero_class = zero_class  # argmax over σ_ik = 0 of β_k, shape (N,)
        self.active = active  # rows whose level is that class's β, shape (N,)

    @property
    def gap(self):
        """c_i − β_k, shape (N, K) (meaningful where σ_ik > 0)."""
        return self.distance + self.offset


class _ReverseDual:
    """The data of a reverse pseudo-label problem, its row solutions and its dual."""

    def __init__(self, probs, weights, prior, fairness_weight):
        self.probs = probs
        self.weights = weights
        self.prior = prior
        self.fairness_weight = fairness_weight
        self.fair = prior > 0  # classes with a multiplier β_k > 0
        self.target = fairness_weight * prior  # λu
        self.positive = probs > 0
        self.has_zeros = bool((~self.positive).any())

    def beta(self, theta):
        beta = torch.zeros_like(self.prior)
        beta[self.fair] = torch.exp(theta)
        return beta

    def start(self, init=None):
        """(θ, rows, D) at the start: β = λu/ȳ of ``init`` if given, else the
        better by D of β = λ (ȳ = u) and β = λu/((σ̄ + u)/2)."""
        fair = self.fair
        if init is not None:
            starts = (torch.log(self.target[fair] / (self.weights @ init)[fair]),)
        else:
            y_bar = 0.5 * (self.weights @ self.probs + self.prior)
            log_lambda = math.log(self.fairness_weight)
            starts = (
                torch.full_like(self.target[fair], log_lambda),
                torch.log(self.target[fair] / y_bar[fair]),
            )
        best = None
        for theta in starts:
            rows = self.solve_rows(self.beta(theta))
            value = self.dual_value(theta, rows)
            if best is None or value > best[2]:
                best = (theta, rows, value)
        return best

    # ---- row solutions: min_y −Σ σ_k ln y_k − β·y over the simplex -----------

    def solve_rows(self, beta):
        """Solve every row's secular equation Σ_k σ_ik/(c − β_k) = 1 at once.

        Newton's method on h(c) = 1/f(c), which is concave and increasing for
        c > max_{σ_ik>0} β_k (a weighted harmonic mean of c − β_k): started
        left of the root at max_k (β_k + σ_ik), where f ≥ 1, it climbs
        monotonically and is exact when one pole dominates. The unknown is
        the offset t_i = c_i − a_i from the largest pole a_i = max_{σ_ik>0} β_k,
        so that the gaps c_i − β_k = (a_i − β_k) + t_i keep their digits when
        β is large (λ = 1e4).
        """
        sigma, positive = self.probs, self.positive
        anchor = torch.where(positive, beta, -math.inf).amax(dim=1, keepdim=True)
        distance = torch.where(positive, anchor - beta, 1.0)  # a_i − β_k ≥ 0
        offset = torch.where(positive, sigma - distance, -math.inf).amax(
            dim=1, keepdim=True
        )
        for _ in range(_ROOT_MAX_ITER):
            gap = distance + offset
            terms = torch.where(positive, sigma / gap, 0.0)
            f = terms.sum(dim=1, keepdim=True)
            slope = (terms / gap).sum(dim=1, keepdim=True)  # −f'(c)
            step = torch.where(f > 1.0, (f - 1.0) * f / slope, 0.0)
            offset = offset + step
            # converged, or the steps fell below the resolution of t
            if float((step / offset).amax()) <= _ROOT_RTOL:
                break
        zero_class = torch.zeros(sigma.shape[0], dtype=torch.long, device=sigma.device)
        active = torch.zeros(sigma.shape[0], dtype=torch.bool, device=sigma.device)
        if self.has_zeros:
            zero_level, zero_class = torch.where(positive, -math.inf, beta).max(dim=1)
            zero_offset = zero_level[:, None] - anchor
            active = zero_offset.squeeze(1) > offset.squeeze(1)
            offset = torch.where(active[:, None], zero_offset, offset)
        return _Rows(beta, anchor, offset, distance, zero_class, active)

    def _positive_labels(self, rows):
        return torch.where(self.positive, self.probs / rows.gap, 0.0)

    def dense(self, rows):
        """The (N, K) pseudo-labels of row solutions."""
        y = self._positive_labels(rows)
        if self.has_zeros:
            rest = (1.0 - y.sum(dim=1)).clamp_min(0.0)
            y = y.scatter_add(
                1,
                rows.zero_class[:, None],
                torch.where(rows.active, rest, 0.0)[:, None],
            )
        return y / y.sum(dim=1, keepdim=True)

    def dual_value(self, theta, rows):
        """D = Σ_{u_k>0} λu_k θ_k + Σ_i w_i (Σ_k σ_ik ln(c_i − β_k) + 1 − c_i).

        Up to a constant.
        """
        level = (rows.anchor + rows.offset).squeeze(1)
        per_row = torch.special.xlogy(self.probs, rows.gap).sum(dim=1) + 1.0 - level
        return float(self.target[self.fair] @ theta + self.weights @ per_row)

    def label_jacobian(self, rows):
        """J̄ = ∂ȳ/∂β = Σ_i w_i ∂y_i/∂β (symmetric PSD).

        Rows at a root: diag(d_i) − d_i d_iᵀ/s_i. Rows at a σ_ik = 0 class m:
        Σ_k d_ik (e_k − e_m)(e_k − e_m)ᵀ, the limit of the former as d_im → ∞.
        """
        y = self._positive_labels(rows)
        d = torch.where(
            self.positive, y * y / torch.where(self.positive, self.probs, 1.0), 0.0
        )
        s = d.sum(dim=1)
        weighted = self.weights[:, None] * d
        smooth = ~rows.active
        root = torch.where(smooth, (self.weights / s).sqrt(), 0.0)[:, None] * d
        jacobian = torch.diag(weighted.sum(dim=0)) - root.T @ root
        if bool(rows.active.any()):
            ws = torch.where(rows.active, self.weights * s, 0.0)
            moved = torch.where(rows.active[:, None], weighted, 0.0)
            jacobian.diagonal().index_add_(0, rows.zero_class, ws)
            cross = torch.zeros_like(jacobian)
            cross.index_add_(0, rows.zero_class, moved)  # row m gets w_i d_i
            jacobian -= cross + cross.T
        return jacobian

    # ---- the primal ------------------------------------------------------------

    def kkt_residual(self, y):
        """The relative KKT residual of ``pseudo_labels.kkt_residual``."""
        grad = scaled_gradient("reverse", self.probs, y, self.weights, self.target)
        return relative_kkt_residual(y, grad, self.weights)
