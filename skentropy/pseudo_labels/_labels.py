"""The public entry points of :mod:`skentropy.pseudo_labels` and their checks.

:func:`reverse_ce_labels` and :func:`collision_ce_labels` solve the pseudo-label
problems of the self-labeling estimators (see the package's docstring for the
problems and the methods); :func:`reverse_ce_objective`,
:func:`collision_ce_objective` and :func:`kkt_residual` evaluate a point.
"""

import math
import warnings

import numpy as np
import torch

from skentropy._prior import check_prior
from skentropy.pseudo_labels._collision_dual import solve_collision_dual
from skentropy.pseudo_labels._em import (
    collision_ce_m_step,
    fairness_coefficients,
    reverse_ce_em,
    reverse_ce_m_step,
    squarem,
)
from skentropy.pseudo_labels._newton_fallback import newton_fallback
from skentropy.pseudo_labels._problem import (
    objective,
    relative_kkt_residual,
    scaled_gradient,
)
from skentropy.pseudo_labels._reverse_dual import solve_reverse_dual

# Share of the uniform distribution mixed into the warm start (1 − ε)σ + ε/K:
# the EM updates are multiplicative, so an exact zero could never revive.
_WARM_START_MIX = 1e-2
# The reverse solver's schedule: SQUAREM-EM iterations before the dual
# Newton method takes over, and that method's iteration cap.
_EM_FIRST_ITER = 30
# Iterations (of three updates) of plain EM before SQUAREM takes over in
# ``method="em"`` for the reverse cross-entropy.
_PLAIN_EM_ITER = 10
_DUAL_MAX_ITER = 50
# Iteration cap of the Newton fallback of the reverse solver: from the dual's
# labels it converges in a few tens of steps or stalls (near 1e-7 in float64).
_FALLBACK_MAX_ITER = 100
# Entries below this share of their row's largest entry may snap to zero.
_SNAP_RELATIVE = 1e-3
# Shares of a row's largest entry at which a zero entry that should gain mass
# restarts, tried largest first.
_REVIVE_SHARES = (1e-3, 1e-5, 1e-7, 1e-9)
_SIMPLEX_ATOL = {torch.float32: 1e-4, torch.float64: 1e-8}


def reverse_ce_labels(
    probs,
    *,
    prior=None,
    fairness_weight=100.0,
    tol=1e-6,
    max_iter=1000,
    init=None,
    sample_weight=None,
    method="auto",
    check_input=True,
    return_n_iter=False,
):
    """Pseudo-labels minimizing mean H(σ, y) + λ H(u, ȳ) (reverse cross-entropy).

    Solves min over y (rows on the simplex) of
    E(y) = −(1/N) Σ_ik σ_ik ln y_ik − λ Σ_k u_k ln ȳ_k, the y-subproblem of the
    self-labeling loss of entropy-clustering-kmeans-svm eq. 13-14. The EM
    algorithm of its eq. 16-17 (E-step S_ik = y_ik / Σ_j y_jk, M-step
    y_ik = (σ_ik + λ N u_k S_ik) / (1 + λ N Σ_c u_c S_ic)), accelerated by
    SQUAREM, runs first; when it contracts slowly (large λ or N) Newton's method
    on the dual variables β_k = λu_k/ȳ_k takes over, each row then being
    y_ik = σ_ik/(c_i − β_k) with c_i a one-dimensional root. Where that dual
    has kinks (peaked σ, exact zeros in σ, classes that no row predicts) a
    primal-dual Newton method on y finishes the solve. The problem is convex,
    so the KKT point reached is a global minimum.

    Parameters
    ----------
    probs : torch.Tensor or ndarray of shape (n_samples, n_classes)
        Model predictions σ; every row on the probability simplex (rows are
        renormalized; a row may be one-hot or contain exact zeros).
    prior : array-like of shape (n_classes,), default=None
        Target cluster proportions u (non-negative, summing to one).
        ``None`` means uniform.
    fairness_weight : float, default=100.0
        The fairness weight λ ≥ 0 (the papers use 100).
    tol : float, default=1e-6
        Stop when the relative KKT residual of :func:`kkt_residual` is at most
        ``tol``. Computations run in float64 whatever the input dtype.
    max_iter : int, default=1000
        Maximum number of iterations: EM iterations (each makes three EM
        updates, plain or accelerated by SQUAREM), dual Newton iterations and
        primal-dual Newton iterations together.
    init : torch.Tensor or ndarray of shape (n_samples, n_classes), default=None
        Warm start of the EM; ``None`` starts from σ. It is mixed with 1% of the
        uniform distribution so that every entry starts positive.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights: the means over rows become weighted means.
    method : {"auto", "em"}, default="auto"
        ``"auto"``: EM, then the dual Newton method and the primal-dual Newton
        method if needed; it reaches ``tol`` or warns. On the test suite's
        peaked σ, one-hot rows and exact zeros (N up to 2,000, K up to 200, λ
        from 1 to 1e4) it takes at most 300 iterations; in float64 ``tol``
        down to about 1e-8 is reached, tighter ones may not be. ``"em"``: the
        papers' EM alone, plain for up to 30 updates (the KKT test reuses the
        pieces of an update), then accelerated by SQUAREM. It is fast to a
        loose ``tol`` where σ is soft; where fairness must move mass into
        entries that σ makes small, its multiplicative updates grow them by a
        few percent per update, and a tight ``tol`` at large λ may need
        thousands of iterations.
    check_input : bool, default=True
        Validate the input. Pass ``False`` only for input known to be valid
        (the estimators' training loop).
    return_n_iter : bool, default=False
        Also return the number of iterations.

    Returns
    -------
    labels : torch.Tensor or ndarray of shape (n_samples, n_classes)
        The pseudo-labels y, of the type, dtype and device of ``probs``.
    n_iter : int
        Number of iterations made; only if ``return_n_iter`` is True.

    See Also
    --------
    collision_ce_labels : The same problem with the collision cross-entropy.

    Notes
    -----
    The solver warns with a ``RuntimeWarning`` when ``max_iter`` is reached
    before the tolerance.

    References
    ----------
    Zhang, Boykov et al., "Revisiting discriminative entropy clustering and its
    relation to K-means and SVM", eq. 13-17.
    Varadhan & Roland, "Simple and globally convergent methods for accelerating
    the convergence of any EM algorithm", Scand. J. Statist. 35, 2008.

    Examples
    --------
    >>> import numpy as np
    >>> from skentropy.pseudo_labels import reverse_ce_labels
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
    >>> y = reverse_ce_labels(probs, fairness_weight=100.0)
    >>> y.shape
    (3, 2)
    >>> np.round(y.mean(axis=0), 2)  # fairness pulls ȳ towards uniform
    array([0.5, 0.5])
    """
    return _solve(
        "reverse",
        probs,
        prior=prior,
        fairness_weight=fairness_weight,
        tol=tol,
        max_iter=max_iter,
        init=init,
        sample_weight=sample_weight,
        method=method,
        check_input=check_input,
        return_n_iter=return_n_iter,
    )


def collision_ce_labels(
    probs,
    *,
    prior=None,
    fairness_weight=100.0,
    tol=1e-6,
    max_iter=1000,
    init=None,
    sample_weight=None,
    method="auto",
    check_input=True,
    return_n_iter=False,
):
    """Pseudo-labels minimizing mean −ln σ·y + λ H(u, ȳ) (collision cross-entropy).

    Solves min over y (rows on the simplex) of
    E₂(y) = −(1/N) Σ_i ln Σ_k σ_ik y_ik − λ Σ_k u_k ln ȳ_k, the y-subproblem of
    the collision cross-entropy loss (collision-cross-entropy eq. 11-12). The
    default method maximizes the concave dual over β_k = λu_k/ȳ_k by Newton's
    method, each row's optimum being a vertex or an edge of the simplex; where
    that dual has kinks (rows whose optimum spreads over three or more classes)
    a primal-dual interior point method on candidate classes, and as the last
    resort a primal-dual Newton method, reach the optimum. ``method="em"`` runs
    the paper's EM instead: E-step eq. 14 and an exact M-step per row solved
    for all rows at once, y_k = a_k / (A + 1 − σ_k / x) with a_k = λ N u_k S_k,
    A = Σ_k a_k and x the root of eq. 17 found by monotone Newton from
    Lemma 1's point (classes with a_k = 0: the closed form of supplement C),
    accelerated by SQUAREM. We scale the fairness coefficients by N so that λ
    means the same as in :func:`reverse_ce_labels` (eq. 15 of the paper omits
    it). The optimum often lies on the simplex boundary and need not be unique;
    its objective value is.

    Parameters
    ----------
    probs : torch.Tensor or ndarray of shape (n_samples, n_classes)
        Model predictions σ; every row on the probability simplex.
    prior : array-like of shape (n_classes,), default=None
        Target cluster proportions u. ``None`` means uniform.
    fairness_weight : float, default=100.0
        The fairness weight λ ≥ 0. With λ = 0 the solution is one-hot at
        argmax σ (collision Example 2).
    tol : float, default=1e-6
        Stop when the relative KKT residual of :func:`kkt_residual` is at most
        ``tol``.
    max_iter : int, default=1000
        Maximum number of iterations (Newton or interior point iterations; for
        ``method="em"`` SQUAREM iterations, each making three EM updates).
    init : torch.Tensor or ndarray of shape (n_samples, n_classes), default=None
        Warm start of ``method="em"`` (the default method starts from its
        dual and ignores it); ``None`` starts from σ, mixed with 1% of uniform.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights: the means over rows become weighted means.
    method : {"auto", "em"}, default="auto"
        ``"auto"``: the exact dual and interior point solver. ``"em"``: the
        paper's EM accelerated by SQUAREM, which creeps towards boundary optima
        (use a loose ``tol``).
    check_input : bool, default=True
        Validate the input.
    return_n_iter : bool, default=False
        Also return the number of iterations.

    Returns
    -------
    labels : torch.Tensor or ndarray of shape (n_samples, n_classes)
        The pseudo-labels y, of the type, dtype and device of ``probs``.
    n_iter : int
        Number of iterations made; only if ``return_n_iter`` is True.

    See Also
    --------
    reverse_ce_labels : The same problem with the reverse cross-entropy.

    References
    ----------
    Zhang, Boykov et al., "Collision cross-entropy for soft class labels and
    entropy-based clustering", §4 and supplement B-C.

    Examples
    --------
    >>> import numpy as np
    >>> from skentropy.pseudo_labels import collision_ce_labels
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
    >>> y = collision_ce_labels(probs, fairness_weight=0.0)
    >>> y  # λ = 0: one-hot at argmax σ
    array([[1., 0.],
           [1., 0.],
           [1., 0.]])
    """
    return _solve(
        "collision",
        probs,
        prior=prior,
        fairness_weight=fairness_weight,
        tol=tol,
        max_iter=max_iter,
        init=init,
        sample_weight=sample_weight,
        method=method,
        check_input=check_input,
        return_n_iter=return_n_iter,
    )


def reverse_ce_objective(
    probs, labels, *, prior=None, fairness_weight=100.0, sample_weight=None
):
    """E(y) = −(1/N) Σ_ik σ_ik ln y_ik − λ Σ_k u_k ln ȳ_k (entropy eq. 14).

    The objective that :func:`reverse_ce_labels` minimizes.

    Parameters
    ----------
    probs : torch.Tensor or ndarray of shape (n_samples, n_classes)
        Model predictions σ, rows on the probability simplex.
    labels : torch.Tensor or ndarray of shape (n_samples, n_classes)
        Pseudo-labels y, rows on the probability simplex.
    prior : array-like of shape (n_classes,), default=None
        Target cluster proportions u. ``None`` means uniform.
    fairness_weight : float, default=100.0
        The fairness weight λ ≥ 0.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights: the means over rows become weighted means.

    Returns
    -------
    value : float
        E(y); ``inf`` where some σ_ik > 0 meets y_ik = 0.

    Examples
    --------
    >>> import numpy as np
    >>> from skentropy.pseudo_labels import reverse_ce_objective
    >>> probs = np.array([[0.5, 0.5]])
    >>> round(reverse_ce_objective(probs, probs, fairness_weight=0.0), 4)  # ln 2
    0.6931
    """
    problem = _Problem.from_input(
        probs,
        labels,
        prior,
        fairness_weight,
        sample_weight,
        check=True,
        init_name="labels",
    )
    return float(problem.objective("reverse", problem.init))


def collision_ce_objective(
    probs, labels, *, prior=None, fairness_weight=100.0, sample_weight=None
):
    """E₂(y) = −(1/N) Σ_i ln σ_i·y_i − λ Σ_k u_k ln ȳ_k (collision eq. 12).

    The objective that :func:`collision_ce_labels` minimizes.

    Parameters
    ----------
    probs : torch.Tensor or ndarray of shape (n_samples, n_classes)
        Model predictions σ, rows on the probability simplex.
    labels : torch.Tensor or ndarray of shape (n_samples, n_classes)
        Pseudo-labels y, rows on the probability simplex.
    prior : array-like of shape (n_classes,), default=None
        Target cluster proportions u. ``None`` means uniform.
    fairness_weight : float, default=100.0
        The fairness weight λ ≥ 0.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights: the means over rows become weighted means.

    Returns
    -------
    value : float
        E₂(y); ``inf`` where some row has σ_i·y_i = 0.

    Examples
    --------
    >>> import numpy as np
    >>> from skentropy.pseudo_labels import collision_ce_objective
    >>> probs = np.array([[0.5, 0.5]])
    >>> round(collision_ce_objective(probs, probs, fairness_weight=0.0), 4)  # ln 2
    0.6931
    """
    problem = _Problem.from_input(
        probs,
        labels,
        prior,
        fairness_weight,
        sample_weight,
        check=True,
        init_name="labels",
    )
    return float(problem.objective("collision", problem.init))


def kkt_residual(
    probs,
    labels,
    *,
    loss="reverse",
    prior=None,
    fairness_weight=100.0,
    sample_weight=None,
):
    """Relative KKT residual of pseudo-labels y, the solvers' stopping rule.

    With the gradient scaled per row to O(1), G_ik = N ∂E/∂y_ik
    (−σ_ik / y_ik − λ u_k / ȳ_k for the reverse cross-entropy,
    −σ_ik / σ_i·y_i − λ u_k / ȳ_k for the collision one) and
    μ_i = Σ_k y_ik G_ik, the residual is ::

        max_ik |y_ik (G_ik − μ_i)| / max(1, |μ_i|)
        + max_ik max(0, μ_i − G_ik) / max(1, |μ_i|),

    complementarity plus dual feasibility of the simplex constraints, the
    latter on every entry: an entry at 1e-12 whose gradient says it should be
    large (G_ik well below μ_i) makes the residual large, however small its
    complementarity. It is 0 exactly at the minimum (the problems are
    convex). Rows with zero weight do not take part. With sample weights w
    (normalized to sum to one), G_ik = ∂E/∂y_ik / w_i.

    Parameters
    ----------
    probs, labels : array-like of shape (n_samples, n_classes)
        σ and y.
    loss : {"reverse", "collision"}, default="reverse"
        Which problem.
    prior, fairness_weight, sample_weight
        As in :func:`reverse_ce_labels`.

    Returns
    -------
    residual : float

    Examples
    --------
    >>> import numpy as np
    >>> from skentropy.pseudo_labels import kkt_residual, reverse_ce_labels
    >>> probs = np.array([[0.9, 0.1], [0.3, 0.7]])
    >>> y = reverse_ce_labels(probs)
    >>> kkt_residual(probs, y) <= 1e-6
    True
    """
    if loss not in ("reverse", "collision"):
        raise ValueError(f"loss must be 'reverse' or 'collision', got {loss!r}.")
    problem = _Problem.from_input(
        probs,
        labels,
        prior,
        fairness_weight,
        sample_weight,
        check=True,
        init_name="labels",
    )
    return problem.kkt_residual(loss, problem.init)


class _Problem:
    """A validated pseudo-label problem in float64 torch tensors."""

    def __init__(self, probs, init, prior, fairness_weight, weights):
        self.probs = probs
        self.init = init
        self.prior = prior
        self.fairness_weight = fairness_weight
        self.weights = weights

    @classmethod
    def from_input(
        cls,
        probs,
        init,
        prior,
        fairness_weight,
        sample_weight,
        check,
        init_name="init",
    ):
        """Validate (if ``check``) and convert the input of a public function.

        ``init_name`` is the name under which the caller received ``init``
        (``"labels"`` for the objective and KKT functions).
        """
        probs = _as_float(probs, "probs")
        probs64 = probs.to(torch.float64)
        device = probs64.device
        if check:
            _check_probs(probs, probs64)
            fairness_weight = _check_fairness_weight(fairness_weight)
        n_samples, n_classes = probs64.shape
        probs64 = probs64 / probs64.sum(dim=1, keepdim=True)
        if prior is None:
            prior64 = torch.full(
                (n_classes,), 1.0 / n_classes, dtype=torch.float64, device=device
            )
        else:
            if check:
                check_prior(prior, n_classes, positive=False)
            prior64 = _as_float(prior, "prior", device).to(torch.float64)
            prior64 = prior64 / prior64.sum()
        weights = _check_sample_weight(sample_weight, n_samples, device, check)
        if init is None:
            init64 = probs64
        else:
            init = _as_float(init, init_name, device)
            init64 = init.to(torch.float64)
            if check:
                _check_probs(init, init64, name=init_name, shape=probs64.shape)
            init64 = init64 / init64.sum(dim=1, keepdim=True)
        return cls(probs64, init64, prior64, float(fairness_weight), weights)

    def warm_start(self):
        n_classes = self.probs.shape[1]
        return (1.0 - _WARM_START_MIX) * self.init + _WARM_START_MIX / n_classes

    def em_map(self, loss):
        m_step = reverse_ce_m_step if loss == "reverse" else collision_ce_m_step

        def em_step(y):
            coef = fairness_coefficients(
                y, self.weights, self.prior, self.fairness_weight
            )
            return m_step(self.probs, coef)

        return em_step

    def objective(self, loss, y):
        return objective(
            loss, self.probs, y, self.weights, self.fairness_weight * self.prior
        )

    def scaled_gradient(self, loss, y):
        """G_ik = N ∂E/∂y_ik, μ_i = Σ_k y_ik G_ik and max(1, |μ_i|)."""
        grad = scaled_gradient(
            loss, self.probs, y, self.weights, self.fairness_weight * self.prior
        )
        mu = torch.where(y > 0, y * grad, 0.0).sum(dim=1, keepdim=True)
        return grad, mu, mu.abs().clamp_min(1.0)

    def snap(self, loss, y, tol):
        """Candidates that zero the small entries whose KKT conditions say so.

        An entry y_ik > 0 with G_ik > μ_i loses mass to its row at first order;
        once it is below ``_SNAP_RELATIVE`` of its row's largest entry it is set
        to zero (the row renormalized). The reverse cross-entropy keeps every
        entry with σ_ik > 0 positive (log barrier), so only its σ_ik = 0 entries
        may snap. Conversely a zero entry whose relative dual violation
        μ_i − G_ik exceeds ``tol`` would gain mass, which EM's multiplicative
        updates can never give it: it restarts at a share of its row's largest
        entry. The optimal share may be far below ``_SNAP_RELATIVE`` (EM then
        grows it only by a factor 1 + O(violation) per step), so candidates
        with shares ``_SNAP_RELATIVE``, 1e-2 × that, ... are yielded, largest
        first, for the caller to keep the first that does not hurt. Yields
        nothing when nothing snaps.
        """
        grad, mu, scale = self.scaled_gradient(loss, y)
        largest = y.amax(dim=1, keepdim=True)
        floor = _SNAP_RELATIVE * largest
        vanish = (y > 0) & (y < floor) & (grad - mu > _SNAP_RELATIVE * scale)
        if loss == "reverse":
            vanish &= self.probs == 0
        revive = (y == 0) & (mu - grad > min(tol, _SNAP_RELATIVE) * scale)
        if not bool((vanish | revive).any()):
            return
        shares = _REVIVE_SHARES if bool(revive.any()) else _REVIVE_SHARES[:1]
        for share in shares:
            snapped = torch.where(vanish, 0.0, torch.where(revive, share * largest, y))
            yield snapped / snapped.sum(dim=1, keepdim=True)

    def kkt_residual(self, loss, y):
        """The relative KKT residual of :func:`kkt_residual` (a float)."""
        grad = scaled_gradient(
            loss, self.probs, y, self.weights, self.fairness_weight * self.prior
        )
        return relative_kkt_residual(y, grad, self.weights)


def _solve(
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
    if check_input:
        tol, max_iter = _check_stopping(tol, max_iter)
        if method not in ("auto", "em"):
            raise ValueError(f"method must be 'auto' or 'em', got {method!r}.")
    problem = _Problem.from_input(
        probs, init, prior, fairness_weight, sample_weight, check=check_input
    )
    converged = False
    if method == "em":
        y, n_iter, converged = _em_method(problem, loss, tol, max_iter)
    elif loss == "reverse":
        y, n_iter = _solve_reverse(problem, tol, max_iter)
    else:
        y, n_iter, _ = solve_collision_dual(
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
    labels = _like(y, probs)
    return (labels, n_iter) if return_n_iter else labels


def _em_method(problem, loss, tol, max_iter):
    """``method="em"``: the papers' EM from the warm start; (y, n_iter, converged).

    For the reverse cross-entropy, plain EM updates, whose size is the KKT
    residual, run first for up to ``_PLAIN_EM_ITER`` iterations: near a loose
    tolerance they converge in as many updates as SQUAREM at a fraction of its
    cost per update. SQUAREM then takes over where they did not converge.
    """
    y, n_iter = problem.warm_start(), 0
    if loss == "reverse":
        y, n_iter, converged = reverse_ce_em(
            problem.probs,
            problem.weights,
            problem.prior,
            problem.fairness_weight,
            y,
            tol,
            min(max_iter, _PLAIN_EM_ITER),
        )
        if converged or n_iter >= max_iter:
            return y, n_iter, converged
    y, more, converged = _run_em(problem, loss, tol, y, max_iter - n_iter)
    return y, n_iter + more, converged


def _run_em(problem, loss, tol, y, max_iter):
    """The papers' EM from y, accelerated by SQUAREM; returns (y, n_iter, converged).

    The reverse cross-entropy snaps entries (:meth:`_Problem.snap`) only where
    σ has exact zeros: elsewhere its entries stay positive (y_ik ≥ σ_ik/(1 +
    Σ_c β_c y_ic) after every update), and nothing can snap.
    """
    snap = None
    if loss == "reverse" and bool((problem.probs == 0).any()):
        snap = lambda y: problem.snap(loss, y, tol)  # noqa: E731
    return squarem(
        problem.em_map(loss),
        lambda y: problem.objective(loss, y),
        lambda y: bool(problem.kkt_residual(loss, y) <= tol),
        y,
        max_iter,
        snap=snap,
    )


def _solve_reverse(problem, tol, max_iter):
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
    y, n_iter, converged = _run_em(
        problem, loss, tol, problem.warm_start(), min(max_iter, _EM_FIRST_ITER)
    )
    if converged or n_iter >= max_iter:
        return y, n_iter
    y_dual, more, converged = solve_reverse_dual(
        problem.probs,
        problem.weights,
        problem.prior,
        problem.fairness_weight,
        tol,
        min(max_iter - n_iter, _DUAL_MAX_ITER),
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
        min(max_iter - n_iter, _FALLBACK_MAX_ITER),
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
    y, more, _ = _run_em(problem, loss, tol, y, max_iter - n_iter)
    return y, n_iter + more


def _like(y, reference):
    """y in the type, dtype and device of ``reference`` (float64 if not floating).

    In a narrower dtype, entries below its smallest normal number (y_ik ∝ σ_ik,
    so a tiny σ_ik gives a tiny y_ik) keep only a few bits, or none: they are
    rounded up, never down. Rounding down would make the entry look as if it
    should grow (−σ_ik/y_ik too negative, a dual violation of the KKT rule of
    :func:`kkt_residual` of up to the rounding error itself, e.g. 3% for a
    float32 entry of 5e-44), and an entry rounded to zero would make the
    reverse cross-entropy infinite. Rounding up only shrinks σ_ik/y_ik, whose
    complementarity y_ik (G_ik − μ_i) stays at the size of the entry.
    """
    if isinstance(reference, torch.Tensor):
        dtype, device = reference.dtype, reference.device
        dtype = dtype if dtype.is_floating_point else torch.float64
    else:
        dtype = np.asarray(reference).dtype
        dtype = dtype if np.issubdtype(dtype, np.floating) else np.float64
        dtype, device = torch.from_numpy(np.empty(0, dtype)).dtype, "cpu"
    labels = y.to(dtype=dtype, device=device)
    if dtype.is_floating_point and torch.finfo(dtype).bits < 64:
        y = y.to(device)
        rounded_down = (labels < torch.finfo(dtype).tiny) & (labels.to(y.dtype) < y)
        up = torch.nextafter(labels, torch.full_like(labels, math.inf))
        labels = torch.where(rounded_down, up, labels)
    return labels if isinstance(reference, torch.Tensor) else labels.numpy()


def _as_float(array, name, device=None):
    """``array`` as a floating-point torch tensor, on ``device`` if given.

    Tensors and NumPy arrays of a floating dtype keep it; lists, tuples and
    arrays of other dtypes (integers, booleans) become float64 (``torch``
    would make a list of Python floats float32).
    """
    if isinstance(array, torch.Tensor):
        if not array.dtype.is_floating_point:
            array = array.to(torch.float64)
    else:
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.floating):
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{name} must be numeric, got an array of dtype {array.dtype}."
                ) from None
        # torch refuses negative strides (a reversed view, probs[::-1])
        array = torch.as_tensor(np.ascontiguousarray(array))
    return array if device is None else array.to(device)


def _check_probs(probs, probs64, name="probs", shape=None):
    """Check that ``probs64`` (``probs`` in float64) has rows on the simplex.

    ``probs`` is the floating tensor of :func:`_as_float`, whose dtype sets
    the tolerance of the row sums.
    """
    if probs64.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (n_samples, n_classes), got "
            f"{probs64.ndim} dimension(s)."
        )
    if shape is not None and probs64.shape != shape:
        raise ValueError(
            f"{name} must have shape {tuple(shape)}, got {tuple(probs64.shape)}."
        )
    if probs64.shape[0] < 1 or probs64.shape[1] < 1:
        raise ValueError(
            f"{name} must have at least one row and one column, got "
            f"shape {tuple(probs64.shape)}."
        )
    if not bool(torch.isfinite(probs64).all()):
        raise ValueError(f"{name} contains NaN or infinity.")
    if bool((probs64 < 0).any()):
        raise ValueError(
            f"{name} contains negative entries; rows must lie on the "
            "probability simplex."
        )
    single = probs.dtype == torch.float32
    atol = _SIMPLEX_ATOL[torch.float32 if single else torch.float64]
    gap = (probs64.sum(dim=1) - 1.0).abs().max()
    if gap > atol:
        raise ValueError(
            f"Rows of {name} must sum to one (probability simplex); "
            f"the largest deviation is {float(gap):.3g} > {atol:g}."
        )


def _check_sample_weight(sample_weight, n_samples, device, check=True):
    """Row weights w in float64 on ``device``, normalized to sum to one.

    ``None`` gives every row weight 1/N. Otherwise the weights are divided by
    their largest, then by their sum (at most N): weights of any finite
    magnitude, 1e-300 or 1e308, normalize without underflow or overflow, and
    equal weights give exactly the unweighted problem. With ``check`` they
    must have shape (n_samples,), be finite and non-negative, and not all
    zero.
    """
    if sample_weight is None:
        return torch.full(
            (n_samples,), 1.0 / n_samples, dtype=torch.float64, device=device
        )
    weights = _as_float(sample_weight, "sample_weight", device).to(torch.float64)
    if check:
        if weights.shape != (n_samples,):
            raise ValueError(
                f"sample_weight must have shape ({n_samples},), got "
                f"{tuple(weights.shape)}."
            )
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise ValueError("sample_weight must be finite and non-negative.")
        if not bool(weights.amax() > 0):
            raise ValueError("sample_weight must have a positive sum.")
    weights = weights / weights.amax()
    return weights / weights.sum()


def _check_fairness_weight(fairness_weight):
    try:
        value = float(fairness_weight)
    except (TypeError, ValueError):
        raise ValueError(
            f"fairness_weight must be a real number, got {fairness_weight!r}."
        ) from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"fairness_weight must be finite and non-negative, got {fairness_weight!r}."
        )
    return value


def _check_stopping(tol, max_iter):
    if not (isinstance(tol, int | float) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}.")
    if not (isinstance(max_iter, int | np.integer) and max_iter >= 1):
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}.")
    return float(tol), int(max_iter)
