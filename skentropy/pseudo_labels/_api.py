"""The public API of :mod:`skentropy.pseudo_labels`, and nothing else.

:func:`reverse_ce_labels` and :func:`collision_ce_labels` solve the pseudo-label
problems of the self-labeling estimators (see the package's docstring for the
problems and the methods); :func:`reverse_ce_objective`,
:func:`collision_ce_objective` and :func:`kkt_residual` evaluate a point. Their
input is checked and converted by ``_inputs``; the solvers run through
``_methods``, which chooses and chains them.
"""

from skentropy.pseudo_labels._inputs import SolverInput
from skentropy.pseudo_labels._methods import solve

__all__ = [
    "collision_ce_labels",
    "collision_ce_objective",
    "kkt_residual",
    "reverse_ce_labels",
    "reverse_ce_objective",
]


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
    return solve(
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
    return solve(
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
    problem = SolverInput.from_labels(
        probs, labels, prior, fairness_weight, sample_weight
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
    problem = SolverInput.from_labels(
        probs, labels, prior, fairness_weight, sample_weight
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
    problem = SolverInput.from_labels(
        probs, labels, prior, fairness_weight, sample_weight
    )
    return problem.kkt_residual(loss, problem.init)
