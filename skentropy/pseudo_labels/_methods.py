"""The ``method`` of the public pseudo-label solvers: which solver runs when.

:func:`solve` is the body of :func:`skentropy.pseudo_labels.reverse_ce_labels`
and :func:`skentropy.pseudo_labels.collision_ce_labels`: it checks the
stopping parameters, converts the input (``_inputs``), runs the chosen method,
warns when it stopped above ``tol`` and converts the labels back. The methods:

* ``method="em"`` (:func:`_em_method`): the papers' EM (``_em``) from the warm
  start, plain first for the reverse cross-entropy, then accelerated by
  SQUAREM;
* ``method="auto"`` for the reverse cross-entropy
  (:func:`solve_reverse_auto`): SQUAREM-EM, then Newton's method on the dual
  (``_reverse_dual``), then, where that dual has kinks, the primal-dual Newton
  method (``_newton_fallback``) and EM again;
* ``method="auto"`` for the collision cross-entropy
  (:func:`solve_collision_auto`): Newton's method on the dual
  (``_collision_dual``), then, where it stalls, the interior point method on
  candidate classes (``_collision_interior``) with its sparse polish and
  restarts, and the primal-dual Newton method as the last resort.

Each chain passes on the best point met, judged by the relative KKT residual
(``_problem``), and stops as soon as it is at most ``tol``. The solvers
themselves live in the modules named; this module only chains them. The
docs page "Design of the pseudo-label solvers"
(``docs/developer/pseudo_label_solvers.rst``) describes the chains.
"""

import warnings

import torch

from skentropy.pseudo_labels._collision_dual import (
    CollisionDual,
    dual_newton,
    sparsify,
)
from skentropy.pseudo_labels._collision_interior import polish, primal_interior
from skentropy.pseudo_labels._em import reverse_ce_em, run_em
from skentropy.pseudo_labels._inputs import SolverInput, check_stopping, like_input
from skentropy.pseudo_labels._newton_fallback import newton_fallback
from skentropy.pseudo_labels._reverse_dual import solve_reverse_dual

__all__ = ["solve", "solve_collision_auto", "solve_reverse_auto"]

# Share of the uniform distribution mixed into the warm start (1 − ε)σ + ε/K:
# the EM updates are multiplicative, so an exact zero could never revive.
_WARM_START_MIX = 1e-2
# Iterations (of three updates) of plain EM before SQUAREM takes over in
# ``method="em"`` for the reverse cross-entropy.
_PLAIN_EM_ITER = 10
# The reverse chain: SQUAREM-EM iterations before the dual Newton method takes
# over, and that method's iteration cap.
_EM_FIRST_ITER = 30
_REVERSE_DUAL_MAX_ITER = 50
# Iteration cap of the Newton fallback of the reverse chain: from the dual's
# labels it converges in a few tens of steps or stalls (near 1e-7 in float64).
_REVERSE_FALLBACK_MAX_ITER = 100


def solve(
    loss,
    probs,
    *,
    prior,
    fairness_weight,
    tol,
    max_iter,
    init,
    sample_weight,
    method,
    check_input,
    return_n_iter,
):
    """The public solvers' body: check, choose the method, warn, convert back.

    ``loss`` is ``"reverse"`` or ``"collision"``; the other arguments are
    those of :func:`skentropy.pseudo_labels.reverse_ce_labels`. Warns, with
    the public function's caller as the place, when the KKT residual of the
    result is above ``tol``. With ``method="em"`` and ``check_input=False``
    ``probs`` may be a stack of problems (see
    :meth:`SolverInput.from_input`), each solved as it would be alone; the
    warning then reports the largest residual and ``n_iter`` is the most
    iterations of a problem.
    """
    if check_input:
        tol, max_iter = check_stopping(tol, max_iter)
        if method not in ("auto", "em"):
            raise ValueError(f"method must be 'auto' or 'em', got {method!r}.")
    problem = SolverInput.from_input(
        probs, init, prior, fairness_weight, sample_weight, check=check_input
    )
    converged = False
    if method == "em":
        y, n_iter, converged = _em_method(problem, loss, tol, max_iter)
        n_iter, converged = int(n_iter.max()), bool(converged.all())
    elif loss == "reverse":
        y, n_iter = solve_reverse_auto(problem, tol, max_iter)
    else:
        y, n_iter, _ = solve_collision_auto(
            problem.probs,
            problem.weights,
            problem.prior,
            problem.fairness_weight,
            tol,
            max_iter,
        )
    residual = 0.0 if converged else problem.kkt_residual(loss, y)
    if residual > tol:
        warnings.warn(
            f"The {loss} cross-entropy pseudo-label solver stopped after {n_iter} "
            f"iterations (max_iter={max_iter}) with KKT residual {residual:.2e} > "
            f"tol={tol}; increase max_iter or tol.",
            RuntimeWarning,
            stacklevel=3,
        )
    labels = like_input(y, probs)
    return (labels, n_iter) if return_n_iter else labels


def _em_method(problem, loss, tol, max_iter):
    """``method="em"``: the papers' EM from the warm start; (y, n_iter, converged).

    For the reverse cross-entropy, plain EM updates, whose size is the KKT
    residual, run first for up to ``_PLAIN_EM_ITER`` iterations: near a loose
    tolerance they converge in as many updates as SQUAREM at a fraction of its
    cost per update. SQUAREM then takes over where they did not converge.
    ``n_iter`` and ``converged`` are tensors of the stack's shape (0-dim for
    one problem).
    """
    y, n_iter, converged = _warm_start(problem), 0, None
    if loss == "reverse":
        plain = min(max_iter, _PLAIN_EM_ITER)
        y, n_iter, converged = reverse_ce_em(
            problem.probs,
            problem.weights,
            problem.prior,
            problem.fairness_weight,
            y,
            tol,
            plain,
        )
        if bool(converged.all()) or plain >= max_iter:
            return y, n_iter, converged
        max_iter -= plain
    y, more, done = run_em(problem, loss, tol, y, max_iter, done=converged)
    if converged is None:
        return y, torch.as_tensor(more), torch.as_tensor(done)
    return y, torch.where(converged, n_iter, n_iter + more), torch.as_tensor(done)


# ---- method="auto": the two chains, side by side -------------------------------------


def solve_reverse_auto(problem, tol, max_iter):
    """SQUAREM-EM, Newton's method on the dual, the Newton fallback, then EM.

    SQUAREM-EM is fastest when few rows share many classes (N = 1 converges in
    one iteration) and brings the dual near its optimum; the dual Newton
    method finishes the large-λ and large-N problems where EM contracts
    slowly. Where the dual is not smooth at the optimum (σ_ik = 0 entries that
    take mass in rows whose multipliers tie, e.g. classes that no row
    predicts) the dual Newton method circles its kink and EM creeps, as its
    multiplicative updates split a row's mass among tied classes only slowly:
    the primal-dual Newton method of ``skentropy.pseudo_labels._newton_fallback``, which
    does not see the kink, finishes from the better of the two, and EM
    polishes what it leaves. Returns (y, iterations of all stages).
    """
    loss = "reverse"
    y, n_iter, converged = run_em(
        problem, loss, tol, _warm_start(problem), min(max_iter, _EM_FIRST_ITER)
    )
    if converged or n_iter >= max_iter:
        return y, n_iter
    y_dual, more, converged = solve_reverse_dual(
        problem.probs,
        problem.weights,
        problem.prior,
        problem.fairness_weight,
        tol,
        min(max_iter - n_iter, _REVERSE_DUAL_MAX_ITER),
        init=y,
    )
    n_iter += more
    residual, dual_residual = problem.kkt_residual(loss, y), 0.0
    if not converged:
        dual_residual = problem.kkt_residual(loss, y_dual)
    if dual_residual < residual:
        y, residual = y_dual, dual_residual
    if converged or n_iter >= max_iter:
        return y, n_iter
    y_newton, more, newton_residual = newton_fallback(
        problem.probs,
        problem.weights,
        problem.prior,
        problem.fairness_weight,
        loss,
        tol,
        min(max_iter - n_iter, _REVERSE_FALLBACK_MAX_ITER),
        init=y,
    )
    n_iter += more
    if newton_residual < residual:
        # rows of zero weight keep their labels (the fallback leaves them at
        # its mixed starting point)
        unweighted = (problem.weights == 0)[:, None]
        y, residual = torch.where(unweighted, y, y_newton), newton_residual
    if residual <= tol or n_iter >= max_iter:
        return y, n_iter
    n_classes = y.shape[1]
    y = (1.0 - _WARM_START_MIX) * y + _WARM_START_MIX / n_classes
    y, more, _ = run_em(problem, loss, tol, y, max_iter - n_iter)
    return y, n_iter + more


def solve_collision_auto(
    probs, weights, prior, fairness_weight, tol=1e-6, max_iter=100
):
    """Exact pseudo-labels of the collision cross-entropy with fairness.

    Minimizes E₂(y) = Σ_i w_i (−ln σ_i·y_i) − λ Σ_k u_k ln ȳ_k, ȳ = Σ_i w_i y_i,
    over pseudo-labels y with rows on the probability simplex: the y-subproblem
    of the collision cross-entropy loss with strong fairness (collision
    eq. 11-12, whose EM algorithm, eq. 14-17 and supplement C, solves the same
    problem). First Newton's method in ln β maximizes the concave dual
    (``_collision_dual``)

        D(β) = Σ_k λu_k ln β_k + Σ_i w_i min_{y∈Δ} (−ln σ_i·y − β·y),

    ∂D/∂β_k = λu_k/β_k − ȳ_k; each row's inner problem is solved exactly (a
    vertex or an edge of the simplex, found on the upper envelope of the
    lines β_k + σ_ik s). When it stalls at the kinks of D (rows whose optimum
    spreads over three or more classes), a primal-dual interior point method
    on a few candidate classes per row (``_collision_interior``), widened by
    the classes that violate the KKT conditions, solves E₂; its small entries
    are removed by dual Newton steps (``sparsify``), and where it stalls it
    restarts on the support of its result (``polish``). The primal-dual
    Newton method (``_newton_fallback``) is the last resort.

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
        Maximum number of Newton iterations, all stages together.

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

    The dual method returns exact zeros; the interior point leaves entries of the
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
        y, n_iter, converged = solve_collision_auto(
            distinct, merged, prior, fairness_weight, tol, max_iter
        )
        return y[inverse], n_iter, converged
    problem = CollisionDual(probs, weights, prior, float(fairness_weight))
    rows, n_iter = dual_newton(problem, tol, max_iter)
    y = problem.dense(rows)
    residual = problem.kkt_residual(y)
    if residual > tol and n_iter < max_iter:
        y_primal, more_iter, residual_primal = primal_interior(
            problem, tol, max_iter - n_iter
        )
        n_iter += more_iter
        if residual_primal < residual:
            y, residual = problem.settle_unweighted(y_primal), residual_primal
        y, residual, n_iter = sparsify(problem, y, residual, n_iter, max_iter)
    if residual > tol and n_iter < max_iter:
        y, residual, n_iter = polish(problem, y, residual, tol, n_iter, max_iter)
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
            y, residual, n_iter = sparsify(problem, y, residual, n_iter, max_iter)
        if residual > tol and n_iter < max_iter:
            y, residual, n_iter = polish(problem, y, residual, tol, n_iter, max_iter)
    return y, n_iter, bool(residual <= tol)


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


def _warm_start(problem):
    """The EM's start (1 − ε) init + ε/K, with ε = ``_WARM_START_MIX``."""
    n_classes = problem.probs.shape[-1]
    return (1.0 - _WARM_START_MIX) * problem.init + _WARM_START_MIX / n_classes
