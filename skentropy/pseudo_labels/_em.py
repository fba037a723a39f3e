"""The papers' EM for the pseudo-label problems, accelerated by SQUAREM.

Both pseudo-label problems share the E-step (entropy-clustering eq. 16,
collision eq. 14) and differ in the M-step: a closed form for the reverse
cross-entropy (entropy-clustering eq. 17) and a per-row one-dimensional root
for the collision cross-entropy (collision eq. 16-17 and supplement C).
:func:`run_em` is the EM method that the ``method`` chains of ``_methods``
call: the M-steps, :func:`squarem` and, for the reverse cross-entropy where σ
has exact zeros, the snapping of entries that EM cannot zero or revive.

All functions here work on float64 torch tensors, vectorized over rows, and
assume validated input: ``probs`` (N, K) rows on the simplex, ``weights``
(N,) non-negative summing to one, ``prior`` (K,) on the simplex. They also
solve a stack of problems at once, the estimators' heads on one mini-batch:
``probs`` and y of shape (S, N, K), sharing the row weights, with ``prior``
of shape (K,) or (S, 1, K). Every problem of a stack takes the steps it
would take alone and stops on its own test (its y is frozen from then on);
the stack only moves in lockstep, so that each step is one set of tensor
operations for all problems.
"""

import math

import torch

from skentropy.pseudo_labels._problem import (
    kkt_terms,
    scaled_gradient,
    weighted_mean,
)

# Newton iterations of the collision M-step root; the iteration is monotone and
# quadratic near the root, so this cap is only reached on pathological input.
_ROOT_MAX_ITER = 100
# EM updates per convergence test of the plain reverse cross-entropy EM, as many
# as a SQUAREM iteration makes.
_UPDATES_PER_TEST = 3
# Entries below this share of their row's largest entry may snap to zero.
_SNAP_RELATIVE = 1e-3
# Shares of a row's largest entry at which a zero entry that should gain mass
# restarts, tried largest first.
_REVIVE_SHARES = (1e-3, 1e-5, 1e-7, 1e-9)


def fairness_coefficients(y, weights, prior, fairness_weight):
    """a_ik = λ u_k y_ik / ȳ_k, i.e. λ N u_k S_ik of the E-step (eq. 16).

    With S_ik = w_i y_ik / Σ_j w_j y_jk (the weighted E-step) and N replaced by
    W / w_i, the product λ (W / w_i) u_k S_ik reduces to λ u_k y_ik / ȳ_k, so the
    M-steps below never divide by a row weight.
    """
    y_bar = weighted_mean(y, weights)
    scale = torch.where(y_bar > 0, fairness_weight * prior / y_bar, 0.0)
    return y * scale


def reverse_ce_m_step(probs, coef):
    """Closed-form M-step of entropy-clustering eq. 17.

    y_ik = (σ_ik + a_ik) / (1 + Σ_c a_ic) with a_ik = λ N u_k S_ik.
    """
    return (probs + coef) / (1.0 + coef.sum(dim=-1, keepdim=True))


def reverse_ce_update(probs, weights, scaled_prior, y):
    """One EM update of the reverse cross-entropy, eq. 16-17 fused.

    With a_ik = λ N u_k S_ik = β_k y_ik and β_k = λu_k/ȳ_k (see
    :func:`fairness_coefficients`), eq. 17 reads
    y_ik ← (σ_ik + β_k y_ik) / (1 + Σ_c β_c y_ic), and as the rows of σ sum to
    one, the denominator is the sum of the numerators of the row: few tensor
    operations (``scaled_prior`` is λu). ȳ_k = 0 happens only with u_k = 0,
    where β_k = 0.
    """
    y_bar = weighted_mean(y, weights).clamp_min(torch.finfo(y.dtype).tiny)
    numerator = torch.addcmul(probs, y, scaled_prior / y_bar)
    return numerator / numerator.sum(dim=-1, keepdim=True)


def reverse_ce_em(probs, weights, prior, fairness_weight, y, tol, max_iter):
    """Plain EM of entropy-clustering eq. 16-17 from y, stopped on the KKT residual.

    Each iteration makes three EM updates, as one of :func:`squarem`, without
    its extrapolation, objective and domain tests: from a warm start near the
    loose tolerances of the estimators, plain EM needs as many updates and far
    fewer operations. Before the third update the relative KKT residual of y
    (the rule of :func:`skentropy.pseudo_labels._problem.relative_kkt_residual` and
    :func:`skentropy.pseudo_labels.kkt_residual`) is read, in one host
    synchronization, from the update itself. With β_k = λu_k/ȳ_k the scaled
    gradient is G_ik = −σ_ik/y_ik − β_k, and μ_i = Σ_k y_ik G_ik
    = −(1 + Σ_c β_c y_ic) ≤ −1 is minus the denominator of eq. 17, so the
    relative multipliers of the rule are

        r_ik = (G_ik − μ_i) / |μ_i| = 1 − F(y)_ik / y_ik,

    F the EM map: the complementarity y_ik r_ik is y_ik − F(y)_ik and the dual
    violation max(0, −r_ik) is the growth F(y)_ik / y_ik − 1 of an entry. y
    passes once no entry moves by more than about ``tol`` and none grows by
    a factor above 1 + ``tol`` (the latter matters for small entries that
    should grow). At a zero of y (σ_ik = 0 there) the growth is its limit
    β_k / (1 + Σ_c β_c y_ic).

    Returns ``(y, n_iter, converged)``; a converged y is the last iterate whose
    residual was measured to be at most ``tol``. ``n_iter`` and ``converged``
    are tensors of the stack's shape (0-dim for one problem).
    """
    scaled_prior = fairness_weight * prior
    counted = weights > 0
    counted = None if bool(counted.all()) else counted
    tiny = torch.finfo(y.dtype).tiny
    stack = y.shape[:-2]
    converged = [False] * math.prod(stack)  # per problem, on the host
    n_iter = [max_iter] * len(converged)
    for iteration in range(1, max_iter + 1):
        start = y
        for _ in range(_UPDATES_PER_TEST - 1):
            y = reverse_ce_update(probs, weights, scaled_prior, y)
        # the third update written out, to keep β and the denominator of eq. 17
        fair = scaled_prior / weighted_mean(y, weights).clamp_min(tiny)
        numerator = torch.addcmul(probs, y, fair)
        denominator = numerator.sum(dim=-1, keepdim=True)
        y_next = numerator / denominator
        growth = torch.where(y > 0, y_next / y, fair / denominator)
        residual = kkt_terms(y - y_next, 1.0 - growth, counted)
        # one host synchronization
        passed = _both(_host(residual <= tol), [not before for before in converged])
        for index in (index for index, now in enumerate(passed) if now):
            n_iter[index] = iteration
        # a problem that passes now keeps y, one that passed before its y
        y = _choose(converged, start, y, stack)
        y_next = _choose(converged, start, _choose(passed, y, y_next, stack), stack)
        converged = [
            now or before for now, before in zip(passed, converged, strict=True)
        ]
        if all(converged):
            break
        y = y_next
    return y, _tensor(n_iter, y, stack), _tensor(converged, y, stack)


def _tensor(values, y, stack):
    """Per-problem host values as a tensor of the stack's shape, on y's device."""
    return torch.tensor(values, device=y.device).reshape(stack)


def _collision_gap(coef, total, free, base, has_root, guess=None):
    """Root of Σ_{k∈P} a_k / (A + 1 − σ_k / x) = 1 per row (collision eq. 17).

    P = {k : a_k > 0}. The unknown is not x but the gap g = A + 1 − σ_max / x
    of the largest σ on P, with which every denominator reads
    d_k = A + 1 − σ_k / x = g f_k + c_k (1 + A), with f_k = σ_k / σ_max
    (``free``) and c_k = 1 − f_k (``base`` = c_k (1 + A)); off P, and on rows
    without a root, f_k = 0 and d_k = 1 + A. x ∈ (σ_max / (1 + A), σ_max] is
    g ∈ (0, A], and written through x the denominators of the classes tied at
    σ_max, g itself, lose all their digits once A is below the resolution of
    1 + A (λ = 1e-20 gave one-hot or NaN labels where the optimum splits a row
    between tied classes). The sum is convex and decreasing in g (collision
    Theorem 1), so Newton's method started at Lemma 1's left point, where
    every d_k ≥ a_k (g = max_k (a_k − c_k (1 + A)) / f_k), approaches the
    root monotonically from the left. Rows without a root (σ = 0 on P) get
    g = 0.

    ``guess``, a gap near the root, starts Newton's method there instead,
    clipped to [left point, A]. A start right of the root is no harm: by
    convexity the tangent there meets zero left of the root (or the step is
    clipped to the left point), and from then on the iteration is monotone
    again (see :func:`collision_ce_m_step` for the guess it gets).

    ``has_root`` is None when every a_k > 0 (every row then has a root);
    otherwise a mask of the rows that have one.

    Returns ``(gap, terms)``: with ``has_root`` None, the terms a_k / d_k of
    the last evaluation, at the returned gap, which are the M-step's labels
    before normalization; terms is None otherwise, or when the iterations ran
    out before every row converged (the gap is then one step past them).
    """
    left = torch.where(free > 0, (coef - base) / free, -math.inf)
    left = left.amax(dim=-1, keepdim=True).clamp_min(0.0)
    gap = left if guess is None else torch.minimum(guess, total).maximum(left)
    for _ in range(_ROOT_MAX_ITER):
        denom = torch.addcmul(base, gap, free)
        terms = coef / denom  # a_k = 0 off P, where d_k = 1 + A > 0
        value = terms.sum(dim=-1, keepdim=True) - 1.0
        active = value.abs() > 1e-13
        if has_root is not None:
            active &= has_root
        if not bool(active.any()):
            break
        # −d/dg of a_k / d_k = a_k f_k / d_k²
        descent = (terms * free / denom).sum(dim=-1, keepdim=True)
        step = (gap + value / descent).clamp(left, total)
        gap = torch.where(active, step, gap)
    else:
        terms = None
    if has_root is None:
        return gap, terms
    return torch.where(has_root, gap, 0.0), None


def collision_ce_m_step(probs, coef, previous=None):
    """Exact M-step of the collision EM, vectorized over rows.

    Minimizes −ln σ·y − Σ_k a_k ln y_k over the simplex for each row
    (collision eq. 15), a_k = λ N u_k S_k. Cases:

    * all a_k > 0: y_k = a_k / (A + 1 − σ_k / x) with x the root of eq. 17;
    * some a_k = 0 (K_o of supplement C): the remaining mass may go to
      c = argmax_{k∈K_o} σ_k. Its stationarity gives x = σ_c / (1 + A) and the
      closed form of supplement C; it is optimal exactly when this x exceeds
      the root x* on K̄_o (otherwise y_c = 0 and the K̄_o solution stands), so
      x = max(x*, σ_c / (1 + A)) covers both;
    * λ = 0 (all a_k = 0): y is one-hot at argmax σ (collision Example 2).

    x is carried as the gap g = A + 1 − σ_max / x of :func:`_collision_gap`
    (σ_max over the classes with a_k > 0), increasing in x, so that the
    denominators keep their digits for tiny a_k.

    ``previous``, the labels whose E-step gave ``coef``, starts Newton's
    method at x = σ·``previous``: summing y_k (A + 1 − σ_k / x) = a_k over k
    gives x = σ·y for the M-step's own y, so at a fixed point of EM the
    root is σ·y of the labels the E-step saw. From there the root takes two
    or three Newton steps on the features of ``benchmarks/`` (seven or eight
    from Lemma 1's left point).

    When every a_k > 0 (every row of the estimators' fits: a positive prior
    keeps them so), K_o is empty, every row has a root, and the labels are
    the terms of the root's last Newton evaluation, normalized: the masks
    and the K_o steps are skipped.
    """
    positive = coef > 0
    interior = bool(positive.all())
    total = coef.sum(dim=-1, keepdim=True)
    sigma_p = probs if interior else torch.where(positive, probs, 0.0)
    sigma_max = sigma_p.amax(dim=-1, keepdim=True)
    has_root = None if interior else sigma_max > 0
    # f_k = σ_k / σ_max on P; 0 off P and without a root (d_k = 1 + A)
    free = sigma_p / (sigma_max if interior else torch.where(has_root, sigma_max, 1.0))
    base = (1.0 - free) * (1.0 + total)
    guess = None
    if previous is not None:
        x = (probs * previous).sum(dim=-1, keepdim=True)
        guess = 1.0 + total - sigma_max / x.clamp_min(torch.finfo(x.dtype).tiny)
    gap, y = _collision_gap(coef, total, free, base, has_root, guess)
    if not interior:
        sigma_free = torch.where(positive, -1.0, probs)
        sigma_c, c = sigma_free.max(dim=-1, keepdim=True)
        has_free = ~positive.all(dim=-1, keepdim=True)
        # x_c = σ_c / (1 + A) as a gap: (1 + A)(1 − σ_max / σ_c)
        safe_c = torch.where(sigma_c > 0, sigma_c, 1.0)
        gap_c = torch.where(
            has_free & (sigma_c > 0),
            (1.0 + total) * (1.0 - sigma_max / safe_c),
            -math.inf,
        )
        gap = torch.maximum(gap, gap_c)
    if y is None:
        y = coef / torch.addcmul(base, gap, free)  # 0 off P
    if not interior:
        rest = (1.0 - y.sum(dim=-1, keepdim=True)).clamp_min(0.0)
        y = y.scatter_add(-1, c, torch.where(has_free, rest, 0.0))
    return y / y.sum(dim=-1, keepdim=True)


def squarem(em_map, objective, converged, y, max_iter, snap=None, done=None):
    """SQUAREM-accelerated fixed-point iteration of a monotone EM map.

    Scheme SqS3 of Varadhan & Roland (2008): from r = F(y) − y and
    v = F(F(y)) − F(y) − r, step α = −‖r‖/‖v‖ ≤ −1, extrapolate
    y − 2αr + α²v, then apply F once more. The extrapolation is accepted only if
    it stays in the domain (positive where y is) and does not increase the
    objective; otherwise α is halved towards −1, where the cycle reduces to three
    plain EM steps, which never increase the objective (EM is a
    majorize-minimize scheme, entropy-clustering eq. 15).

    ``snap``, if given, maps y to an iterable of pairs (candidate points, e.g.
    with entries set to zero or revived, and the problems they are
    candidates for); after each iteration the first candidate of a problem
    that, after one more F, does not increase its objective replaces its y.

    On a stack of problems (y of shape (S, N, K); ``objective`` and
    ``converged`` give one value per problem) each problem has its own step
    α and its own test; a problem that ``done`` (shape (S,)) marks, or that
    has converged, keeps its y.

    Returns ``(y, n_iter, converged)``, the last two tensors of the stack's
    shape (0-dim for one problem); each iteration evaluates F three times.
    """
    stack = y.shape[:-2]
    # per problem, on the host: whether it has stopped, its iterations
    finished = [False] * math.prod(stack) if done is None else _host(done)
    n_iter = [0 if stopped else max_iter for stopped in finished]
    value = objective(y)
    for iteration in range(1, max_iter + 1):
        y1 = em_map(y)
        y2 = em_map(y1)
        r = y1 - y
        v = y2 - y1 - r
        norms = torch.stack(
            (
                torch.linalg.vector_norm(r, dim=(-2, -1)),
                torch.linalg.vector_norm(v, dim=(-2, -1)),
            )
        )
        alpha = [
            min(-1.0, -r_norm / v_norm) if v_norm > 0 else -1.0
            for r_norm, v_norm in zip(*norms.reshape(2, -1).tolist(), strict=True)
        ]
        y_new, value_new = y, value
        searching = [not stopped for stopped in finished]
        while any(searching):
            plain = [step > -1.01 for step in alpha]
            extrapolated = [
                on and not easy for on, easy in zip(searching, plain, strict=True)
            ]
            if any(extrapolated):
                step = torch.tensor(alpha, dtype=y.dtype, device=y.device)
                step = step.reshape(stack)[..., None, None]
                y_ext = y - 2.0 * step * r + step**2 * v
                # stay in the domain: entries positive in y stay positive (the
                # reverse cross-entropy is a log barrier on them), none negative
                inside = (y_ext > 0) | ((y == 0) & (y_ext == 0))
                inside = _host(inside.flatten(-2).all(-1))
                extrapolated = _both(extrapolated, inside)
            tried = [
                on and (easy or far)
                for on, easy, far in zip(searching, plain, extrapolated, strict=True)
            ]
            if any(tried):
                start = (
                    _choose(extrapolated, y_ext, y2, stack) if any(extrapolated) else y2
                )
                candidate = em_map(start)
                candidate_value = objective(candidate)
                better = (
                    _host(candidate_value <= value)
                    if any(extrapolated)
                    else [False] * len(tried)
                )
                accepted = [
                    on and (easy or (far and good))
                    for on, easy, far, good in zip(
                        tried, plain, extrapolated, better, strict=True
                    )
                ]
                y_new = _choose(accepted, candidate, y_new, stack)
                value_new = _choose(accepted, candidate_value, value_new, stack)
                searching = [
                    on and not took
                    for on, took in zip(searching, accepted, strict=True)
                ]
            alpha = [
                0.5 * (step - 1.0) if on else step
                for step, on in zip(alpha, searching, strict=True)
            ]
        if snap is not None:
            # EM only shrinks entries geometrically towards a boundary optimum
            # (and never revives a zero); jump when the KKT conditions say so,
            # to the first candidate that does not hurt
            waiting = [not stopped for stopped in finished]
            for y_snap, candidates in snap(y_new):
                y_snap = em_map(y_snap)
                value_snap = objective(y_snap)
                taken = _both(
                    _both(waiting, _host(candidates)), _host(value_snap <= value_new)
                )
                y_new = _choose(taken, y_snap, y_new, stack)
                value_new = _choose(taken, value_snap, value_new, stack)
                waiting = [
                    on and not took for on, took in zip(waiting, taken, strict=True)
                ]
        y, value = y_new, value_new
        passed = _both([not stopped for stopped in finished], _host(converged(y)))
        for index in (index for index, now in enumerate(passed) if now):
            n_iter[index] = iteration
        finished = [now or before for now, before in zip(passed, finished, strict=True)]
        if all(finished):
            break
    return y, _tensor(n_iter, y, stack), _tensor(finished, y, stack)


def _host(flags):
    """A per-problem tensor as a flat list on the host (one synchronization)."""
    return flags.flatten().tolist()


def _both(first, second):
    """Element-wise ``and`` of two per-problem host lists."""
    return [one and other for one, other in zip(first, second, strict=True)]


def _choose(flags, chosen, other, stack):
    """Per problem, ``chosen`` where its host flag is set, else ``other``.

    ``chosen`` and ``other`` of shape ``stack`` + (N, K), or ``stack`` (one
    value per problem); no operation when the flags agree.
    """
    if all(flags):
        return chosen
    if not any(flags):
        return other
    mask = _tensor(flags, other, stack)
    if other.ndim > len(stack):
        mask = mask[..., None, None]
    return torch.where(mask, chosen, other)


def run_em(problem, loss, tol, y, max_iter, done=None):
    """The papers' EM from y, accelerated by SQUAREM; returns (y, n_iter, converged).

    ``problem`` is the validated input of a public function
    (``_inputs.SolverInput``), one problem or a stack: its objective and KKT
    residual drive :func:`squarem`, and ``done`` marks the problems of a
    stack that keep their y. The reverse cross-entropy snaps entries
    (:func:`_snap_candidates`) only where σ has exact zeros: elsewhere its
    entries stay positive (y_ik ≥ σ_ik/(1 + Σ_c β_c y_ic) after every update),
    and nothing can snap. For one problem ``n_iter`` is an int and
    ``converged`` a bool; for a stack both are tensors of its shape.
    """
    snap = None
    if loss == "reverse" and bool((problem.probs == 0).any()):
        snap = lambda y: _snap_candidates(problem, loss, y, tol)  # noqa: E731
    y, n_iter, converged = squarem(
        _em_map(problem, loss),
        lambda y: problem.objective(loss, y),
        lambda y: problem.kkt_residuals(loss, y) <= tol,
        y,
        max_iter,
        snap=snap,
        done=done,
    )
    if y.ndim == 2:
        return y, int(n_iter), bool(converged)
    return y, n_iter, converged


def _em_map(problem, loss):
    """The EM update y ↦ M-step(E-step(y)) of ``problem`` for ``loss``.

    The collision M-step starts its Newton iterations from y (see
    :func:`collision_ce_m_step`).
    """

    def em_step(y):
        coef = fairness_coefficients(
            y, problem.weights, problem.prior, problem.fairness_weight
        )
        if loss == "reverse":
            return reverse_ce_m_step(problem.probs, coef)
        return collision_ce_m_step(problem.probs, coef, previous=y)

    return em_step


def _snap_candidates(problem, loss, y, tol):
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
    first (the smaller shares only for problems that revive an entry), each
    with the problems it is a candidate for, for the caller to keep the
    first that does not hurt. Yields nothing when nothing snaps.
    """
    # G_ik = N ∂E/∂y_ik, μ_i = Σ_k y_ik G_ik and max(1, |μ_i|)
    grad = scaled_gradient(
        loss,
        problem.probs,
        y,
        problem.weights,
        problem.fairness_weight * problem.prior,
    )
    mu = torch.where(y > 0, y * grad, 0.0).sum(dim=-1, keepdim=True)
    scale = mu.abs().clamp_min(1.0)
    largest = y.amax(dim=-1, keepdim=True)
    floor = _SNAP_RELATIVE * largest
    vanish = (y > 0) & (y < floor) & (grad - mu > _SNAP_RELATIVE * scale)
    if loss == "reverse":
        vanish &= problem.probs == 0
    revive = (y == 0) & (mu - grad > min(tol, _SNAP_RELATIVE) * scale)
    snapping = (vanish | revive).flatten(-2).any(-1)
    if not bool(snapping.any()):
        return
    reviving = revive.flatten(-2).any(-1)
    for index, share in enumerate(_REVIVE_SHARES):
        candidates = snapping if index == 0 else reviving
        if not bool(candidates.any()):
            return
        snapped = torch.where(vanish, 0.0, torch.where(revive, share * largest, y))
        yield snapped / snapped.sum(dim=-1, keepdim=True), candidates
