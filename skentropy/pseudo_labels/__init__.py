"""Exact solvers for the soft pseudo-labels of self-labeling entropy clustering.

Given model predictions σ (N, K) with rows on the probability simplex, the
self-labeling estimators solve on every mini-batch for pseudo-labels y (N, K)
that minimize one of two convex problems over the product of simplices:

reverse cross-entropy (entropy-clustering-kmeans-svm eq. 13-14)
    E(y)  = −(1/N) Σ_ik σ_ik ln y_ik − λ Σ_k u_k ln ȳ_k

collision cross-entropy (collision-cross-entropy eq. 11-12)
    E₂(y) = −(1/N) Σ_i ln Σ_k σ_ik y_ik − λ Σ_k u_k ln ȳ_k

with ȳ = (1/N) Σ_i y_i, u the target cluster proportions (``prior``) and λ the
fairness weight. −λ Σ u ln ȳ equals λ KL(u‖ȳ) up to a constant ("strong
fairness"). With ``sample_weight`` the means over rows become weighted means.

Both problems are solved exactly, to a relative KKT residual (:func:`kkt_residual`)
of at most ``tol``, with every step vectorized over rows:

* reverse cross-entropy: the papers' EM algorithm (E-step eq. 16, M-step
  eq. 17) accelerated by SQUAREM, then, if it has not converged, Newton's method
  on the K dual variables β_k = λu_k/ȳ_k with a per-row one-dimensional root,
  then, where that dual is not smooth, a primal-dual Newton method and EM again;
* collision cross-entropy: Newton's method on its dual (per-row solutions on a
  vertex or an edge of the simplex), a primal-dual interior point method on
  candidate classes where the dual has kinks, restarted on the support of its
  result, and the primal-dual Newton method as the last resort.

``method="em"`` runs the papers' EM alone (collision eq. 14-17 with
supplement C for the collision loss), accelerated by SQUAREM and warm-started
from ``init``: the estimators use it with a loose tolerance (see their
``em_tol``). The design of these solvers, the problems and the KKT rule are
written up in :ref:`pseudo-label-design`.

Where a change goes (one solver a module, the choice of method in one place):

* ``_api``: the public functions above and their docstrings, nothing else;
* ``_inputs``: the checks of their input (every error message about it), its
  conversion to float64 tensors and of the labels back to the input's type;
* ``_methods``: ``method="em"`` and the two ``method="auto"`` chains side by
  side, with their iteration shares; what runs first and when a fallback runs;
* ``_problem``: the objective, its gradient and the KKT rule, written once
  and shared by every solver (and by the stopping tests);
* ``_em``: the papers' EM updates (reverse and collision M-steps), SQUAREM
  and the snapping of entries that EM cannot zero or revive;
* ``_reverse_dual``: Newton's method on the dual of the reverse problem;
* ``_collision_dual``: Newton's method on the dual of the collision problem
  (and the problem object the collision solvers share);
* ``_collision_interior``: the primal-dual interior point method of the
  collision problem on candidate classes;
* ``_newton_fallback``: the primal-dual Newton method both chains fall back on;
* ``_sinkhorn``: SeLa's balanced one-hot labels (log-domain Sinkhorn-Knopp
  and exact balanced rounding, Asano et al. eq. 5);
* ``_forward_kl``: MI-ADM's labels (Jabi et al. eq. 6).

The reference solvers that tests and benchmarks judge these with live apart,
in ``skentropy._reference_solvers``, written independently of this package,
and no module here imports them.
"""

from skentropy.pseudo_labels._api import (
    collision_ce_labels,
    collision_ce_objective,
    kkt_residual,
    reverse_ce_labels,
    reverse_ce_objective,
)

__all__ = [
    "collision_ce_labels",
    "collision_ce_objective",
    "kkt_residual",
    "reverse_ce_labels",
    "reverse_ce_objective",
]
