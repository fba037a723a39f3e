"""Hard balanced pseudo-labels of SeLa by a log-domain Sinkhorn-Knopp algorithm.

SeLa (Asano et al. 2020; entropy-clustering-kmeans-svm eq. 5) trains the
model on one-hot pseudo-labels y that use the clusters in the proportions u,

    minimize over one-hot y   mean_i H(y_i, σ_i) = −(1/N) Σ_ik y_ik ln σ_ik
    subject to                ȳ = u,

an integer program. Relaxed to transport plans Q ≥ 0 with row sums r
(r_i = 1/N, or the normalized sample weights) and column sums u, and with an
entropy term of weight 1/λ (Cuturi 2013), it becomes

    minimize over Q   −Σ_ik Q_ik ln σ_ik − (1/λ) H(Q),   Q 1 = r,  Qᵀ 1 = u,

whose solution is Q = diag(α) σ^λ diag(β): the Sinkhorn-Knopp algorithm finds
the scalings α, β by alternately matching the row and the column sums. Here
it runs on f = ln α and g = ln β with log-sum-exp, so that λ = 25 with
σ_ik ≈ 1e-300 (λ ln σ ≈ −17,000) or thousands of clusters neither overflow
nor underflow. Each row is then rounded to the cluster of its largest plan
entry, as SeLa does, except where that would overfill a cluster: a greedy
rounding (:func:`balanced_rounding`) keeps every cluster's count at N u_k up
to one row. Larger λ brings Q closer to the unregularized transport plan (and
the rounding closer to the integer program), at the cost of more iterations,
which warm starts from smaller λ (ε-scaling) keep in check.
"""

import math

import torch

__all__ = ["balanced_rounding", "log_sinkhorn", "sinkhorn_labels"]

# Factor between the exponents λ of the warm-started stages of sinkhorn_labels.
_POWER_FACTOR = 4.0


def log_sinkhorn(log_kernel, log_row_sums, log_column_sums, *, tol=1e-3,
                 max_iter=1000, init=None):
    """Scalings of an entropic transport plan, by Sinkhorn-Knopp in log space.

    Finds f (N,) and g (K,) such that the plan
    ln Q_ik = ln K_ik + f_i + g_k has row sums r and column sums c
    (Cuturi 2013, Algorithm 1, on logarithms). Each iteration matches the row
    sums exactly, then the column sums exactly; it stops once the row sums,
    the ones left unmatched, are within ``tol`` of r in L1 norm.

    Parameters
    ----------
    log_kernel : torch.Tensor of shape (n_samples, n_classes)
        ln K, finite (``-inf`` entries are allowed where every row and column
        keeps a finite entry).
    log_row_sums : torch.Tensor of shape (n_samples,)
        ln r, r summing to one; ``-inf`` for rows that carry no mass.
    log_column_sums : torch.Tensor of shape (n_classes,)
        ln c, c summing to one.
    tol : float, default=1e-3
        Stop when Σ_i |Σ_k Q_ik − r_i| ≤ ``tol``.
    max_iter : int, default=1000
        Maximum number of iterations (each one a row and a column update).
    init : torch.Tensor of shape (n_classes,), default=None
        Column scalings g to start from; ``None`` starts from zeros.

    Returns
    -------
    f : torch.Tensor of shape (n_samples,)
        ln α, the row scalings.
    g : torch.Tensor of shape (n_classes,)
        ln β, the column scalings.
    n_iter : int
        Number of iterations made.
    converged : bool
        Whether the row sums reached ``tol``.

    References
    ----------
    Cuturi, M., "Sinkhorn distances: lightspeed computation of optimal
    transport", NeurIPS 2013.
    """
    g = torch.zeros_like(log_column_sums) if init is None else init
    f = log_row_sums - torch.logsumexp(log_kernel + g, dim=1)
    for n_iter in range(1, max_iter + 1):
        g = log_column_sums - torch.logsumexp(log_kernel + f[:, None], dim=0)
        log_rows = torch.logsumexp(log_kernel + g, dim=1)
        error = (torch.exp(f + log_rows) - torch.exp(log_row_sums)).abs().sum()
        if not torch.isfinite(error):
            raise ValueError(
                "The Sinkhorn-Knopp iteration diverged (non-finite row sums): "
                "some row or column of the kernel has no finite entry."
            )
        if float(error) <= tol:
            return f, g, n_iter, True
        f = log_row_sums - log_rows
    return f, g, max_iter, False


def sinkhorn_labels(log_probs, *, prior=None, sample_weight=None, power=25.0,
                    tol=1e-3, max_iter=1000):
    """Hard pseudo-labels of SeLa: balanced assignments by optimal transport.

    Approximately solves the integer program of entropy-clustering-kmeans-svm
    eq. 5 (SeLa, Asano et al. 2020): one-hot y minimizing mean H(y, σ) with
    cluster proportions ȳ = u. The entropic transport plan
    Q = diag(α) σ^λ diag(β) with row sums w (the normalized sample weights)
    and column sums u is found by :func:`log_sinkhorn`, and each row is
    assigned to the cluster of its largest entry of Q, up to a greedy rounding
    that makes the cluster counts match n u_k exactly. The iteration
    contracts slowly for large λ; it is therefore run for λ/4^s, ..., λ/4, λ
    (from the first exponent ≥ 1), each stage warm-started from the last
    (ε-scaling of the entropic weight ε = 1/λ), which cuts the number of
    iterations severalfold.

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_samples, n_classes)
        ln σ of the predictions. Entries below ln(tiny) of the dtype (e.g.
        ``-inf``) are raised to it, so that every assignment stays possible.
    prior : torch.Tensor of shape (n_classes,), default=None
        Target proportions u, positive and summing to one; ``None`` is uniform.
    sample_weight : torch.Tensor of shape (n_samples,), default=None
        Non-negative row weights, not all zero: the rows' shares of the
        transport. ``None`` gives every row weight one.
    power : float, default=25.0
        The exponent λ of σ^λ, the inverse weight of the entropy of Q (SeLa
        uses 25).
    tol : float, default=1e-3
        Tolerance of :func:`log_sinkhorn` on the L1 error of the marginals.
    max_iter : int, default=1000
        Maximum number of Sinkhorn-Knopp iterations, over all stages. The
        labels of the last plan are returned even if it was not reached.

    Returns
    -------
    labels : torch.Tensor of shape (n_samples,), int64
        The cluster of each row: the largest entry of its row of the plan,
        rounded by :func:`balanced_rounding` so that the rows of positive
        weight fill cluster k with round(n u_k) rows (largest remainders).

    References
    ----------
    Asano, Y. M., Rupprecht, C. and Vedaldi, A., "Self-labelling via
    simultaneous clustering and representation learning", ICLR 2020.
    """
    # float64: the scalings reach |λ ln σ| ≈ 2,000 even for float32 input
    floor = math.log(torch.finfo(log_probs.dtype).tiny)
    log_cost = log_probs.detach().clamp_min(floor).to(torch.float64)
    n_samples, n_classes = log_probs.shape
    like = {"dtype": torch.float64, "device": log_probs.device}
    if sample_weight is None:
        sample_weight = torch.ones(n_samples, **like)
    sample_weight = torch.as_tensor(sample_weight, **like)
    log_rows = torch.log(sample_weight / sample_weight.sum())
    if prior is None:
        log_columns = torch.full((n_classes,), -math.log(n_classes), **like)
    else:
        log_columns = torch.log(torch.as_tensor(prior, **like))
    # λ-scaling: solve for ..., λ/16, λ/4, λ (from λ/4^s ≥ 1), each stage
    # warm-started from the last with g in units of ln σ carried over (g ∝ λ).
    powers = [power]
    while powers[0] / _POWER_FACTOR >= 1.0:
        powers.insert(0, powers[0] / _POWER_FACTOR)
    g, last_power, n_iter = None, None, 0
    for stage_power in powers:
        init = None if g is None else g * (stage_power / last_power)
        _, g, n_stage, _ = log_sinkhorn(
            stage_power * log_cost, log_rows, log_columns, tol=tol,
            max_iter=max(max_iter - n_iter, 1), init=init,
        )
        n_iter, last_power = n_iter + n_stage, stage_power
    # f_i is constant along row i: the order of row i's plan entries Q_ik is
    # that of λ ln σ_ik + g_k. The argmax of each row follows the plan, and the
    # rounding keeps the counts of the rows of positive weight at N u_k.
    scores = power * log_cost + g
    labels = scores.argmax(dim=1)
    weighted = sample_weight > 0
    columns = torch.exp(log_columns)
    labels[weighted] = balanced_rounding(scores[weighted],
                                         _capacities(columns, int(weighted.sum())))
    return labels


def _capacities(proportions, n_rows):
    """Integer cluster sizes summing to ``n_rows``, nearest to n_rows · u.

    Largest-remainder rounding: each size is ⌊n u_k⌋ or ⌊n u_k⌋ + 1.
    """
    exact = proportions * n_rows
    sizes = torch.floor(exact).long()
    missing = n_rows - int(sizes.sum())
    if missing > 0:
        sizes[torch.topk(exact - sizes, missing).indices] += 1
    return sizes


def balanced_rounding(scores, capacities):
    """Hard labels that follow ``scores`` and fill every cluster to its capacity.

    Rounds a transport plan to an assignment with exactly ``capacities[k]``
    rows in cluster k (Σ capacities = N): in rounds, every unassigned row
    proposes to its best-scoring cluster among those with room left, and each
    cluster accepts its best-scoring proposals up to its room (a greedy
    variant of the auction algorithm, Bertsekas 1988). Each round assigns every
    proposer or fills a cluster, so there are at most K rounds, each
    vectorized over rows. Rows whose argmax cluster has room keep it.

    Parameters
    ----------
    scores : torch.Tensor of shape (n_samples, n_classes)
        Preference of each row for each cluster (e.g. the log of the plan).
    capacities : torch.Tensor of shape (n_classes,), int64
        Number of rows each cluster takes, summing to n_samples.

    Returns
    -------
    labels : torch.Tensor of shape (n_samples,), int64
    """
    n_samples, n_classes = scores.shape
    labels = torch.full((n_samples,), -1, dtype=torch.long, device=scores.device)
    room = capacities.to(scores.device).clone()
    for _ in range(n_classes):
        open_rows = (labels < 0).nonzero().squeeze(1)
        if open_rows.numel() == 0:
            break
        masked = torch.where(room > 0, scores[open_rows], -math.inf)
        best_score, choice = masked.max(dim=1)
        # rank of each proposal within its cluster, best score first
        order = torch.argsort(best_score, descending=True, stable=True)
        order = order[torch.argsort(choice[order], stable=True)]
        chosen = choice[order]
        counts = torch.bincount(chosen, minlength=n_classes)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(order.numel(), device=scores.device) - starts[chosen]
        accepted = rank < room[chosen]
        labels[open_rows[order[accepted]]] = chosen[accepted]
        room -= torch.bincount(chosen[accepted], minlength=n_classes)
    return labels
