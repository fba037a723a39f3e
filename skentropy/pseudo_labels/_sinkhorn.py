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
rounding (:func:`balanced_rounding`) makes every cluster's count exactly
round(N u_k) (largest remainders), and with integer sample weights (a total
W of at most 2⁵³) its weight round(W u_k), as if every row were repeated by
its weight. Weights are divided by their largest first, so that weights of
any finite magnitude neither overflow nor underflow. Larger λ brings Q closer
to the unregularized transport plan (and the rounding closer to the integer
program), at the cost of more iterations, which warm starts from smaller λ
(ε-scaling) keep in check.
"""

import math

import torch

__all__ = ["balanced_rounding", "log_sinkhorn", "sinkhorn_labels"]

# Factor between the exponents λ of the warm-started stages of sinkhorn_labels.
_POWER_FACTOR = 4.0
# Largest total of integer weights that counts as repeated rows: float64
# integers are exact up to 2⁵³.
_LARGEST_EXACT_INTEGER = 2.0**53


def log_sinkhorn(
    log_kernel, log_row_sums, log_column_sums, *, tol=1e-3, max_iter=1000, init=None
):
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


def sinkhorn_labels(
    log_probs, *, prior=None, sample_weight=None, power=25.0, tol=1e-3, max_iter=1000
):
    """Hard pseudo-labels of SeLa: balanced assignments by optimal transport.

    Approximately solves the integer program of entropy-clustering-kmeans-svm
    eq. 5 (SeLa, Asano et al. 2020): one-hot y minimizing mean H(y, σ) with
    cluster proportions ȳ = u; the proportions are met exactly (up to the
    rounding of n u_k to integers), the cost approximately. The entropic transport plan
    Q = diag(α) σ^λ diag(β) with row sums w (the normalized sample weights)
    and column sums u is found by :func:`log_sinkhorn`, and each row is
    assigned to the cluster of its largest entry of Q, up to a greedy rounding
    that makes the cluster counts exactly round(n u_k). The iteration
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
        transport, and what the rounding balances. Integer weights (of total
        at most 2⁵³) count as repeated rows; other weights are divided by
        their largest, so equal weights of any magnitude give the unweighted
        labels. ``None`` gives every row weight one.
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
        weight fill cluster k with round(n u_k) rows (largest remainders),
        exactly. With integer weights (total W) cluster k gets the weight
        round(W u_k) that the repeated rows would give it, exactly where no
        row's repetitions would be split between clusters and by less than
        the largest weight otherwise; with other weights, W u_k within the
        largest weight.

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
    # w / max w first: the sum of weights of any finite size stays finite
    relative_weight = sample_weight / sample_weight.amax()
    log_rows = torch.log(relative_weight / relative_weight.sum())
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
            stage_power * log_cost,
            log_rows,
            log_columns,
            tol=tol,
            max_iter=max(max_iter - n_iter, 1),
            init=init,
        )
        n_iter, last_power = n_iter + n_stage, stage_power
    # f_i is constant along row i: the order of row i's plan entries Q_ik is
    # that of λ ln σ_ik + g_k. The argmax of each row follows the plan, and the
    # rounding keeps the counts of the rows of positive weight at N u_k.
    scores = power * log_cost + g
    labels = scores.argmax(dim=1)
    weighted = sample_weight > 0
    weights, capacities = _rounding_targets(
        sample_weight[weighted], relative_weight[weighted], torch.exp(log_columns)
    )
    labels[weighted] = balanced_rounding(scores[weighted], capacities, weights)
    return labels


def _rounding_targets(weights, relative_weights, proportions):
    """The weights that :func:`balanced_rounding` balances, and the capacities.

    Integer weights whose total W is an exact float64 integer (at most 2⁵³)
    count as repeated rows: they are kept, with integer capacities round(W u_k).
    Other weights, and integer weights too large to count (1e19 each), are
    divided by their largest (``relative_weights``), so that the totals stay
    finite whatever the magnitude and equal weights become ones, the
    unweighted rounding.
    """
    if not _is_integer(weights) or float(weights.sum()) > _LARGEST_EXACT_INTEGER:
        weights = relative_weights
    total = float(weights.sum())
    if _is_integer(weights):
        return weights, _capacities(proportions, round(total))
    return weights, proportions * total


def _is_integer(weights):
    return bool((weights == torch.round(weights)).all())


def _capacities(proportions, total):
    """Integer cluster sizes summing to ``total``, nearest to total · u.

    Largest-remainder rounding: each size is ⌊total u_k⌋ or ⌊total u_k⌋ + 1.
    """
    exact = proportions * total
    sizes = torch.floor(exact).long()
    missing = total - int(sizes.sum())
    if missing > 0:
        sizes[torch.topk(exact - sizes, missing).indices] += 1
    return sizes


def balanced_rounding(scores, capacities, weights=None):
    """Hard labels that follow ``scores`` and fill every cluster to its capacity.

    Rounds a transport plan to an assignment whose rows fill cluster k with
    weight ``capacities[k]`` (Σ capacities = Σ weights): in rounds, every
    unassigned row proposes to its best-scoring cluster among those with room
    left for its weight, and each cluster accepts its proposals, best score
    first, while their weights fit in its room (a greedy variant of the
    auction algorithm, Bertsekas 1988). Each round assigns at least one row
    per cluster proposed to, and every round is vectorized over rows. Rows
    whose argmax cluster has room keep it.

    A row of integer weight w counts as w repeated rows: with unit weights
    the counts are exactly the capacities, and integer weights fill each
    cluster with the same weight as the repeated rows would. Only where the
    repeated rows would be split between clusters (a weight that does not fit
    whole in the room left) does the row go whole to the cluster of its best
    score among those with room, which then holds at most one row's weight
    more or less than its capacity; a row that fits nowhere goes to the
    cluster with the most room.

    Parameters
    ----------
    scores : torch.Tensor of shape (n_samples, n_classes)
        Preference of each row for each cluster (e.g. the log of the plan).
    capacities : torch.Tensor of shape (n_classes,)
        Weight each cluster takes, summing to the total weight (to n_samples
        without ``weights``).
    weights : torch.Tensor of shape (n_samples,), default=None
        Positive row weights; ``None`` gives every row weight one.

    Returns
    -------
    labels : torch.Tensor of shape (n_samples,), int64
    """
    n_samples, n_classes = scores.shape
    device = scores.device
    if weights is None:
        weights = torch.ones(n_samples, dtype=torch.float64, device=device)
    weights = weights.to(device=device, dtype=torch.float64)
    room = capacities.to(device=device, dtype=torch.float64).clone()
    # float weights: cumulated sums may exceed a room by rounding
    allowance = 1e-9 * float(weights.sum())
    labels = torch.full((n_samples,), -1, dtype=torch.long, device=device)
    while True:
        open_rows = (labels < 0).nonzero().squeeze(1)
        if open_rows.numel() == 0:
            break
        weight = weights[open_rows]
        fits = room[None, :] >= weight[:, None] - allowance
        masked = torch.where(fits, scores[open_rows], -math.inf)
        best_score, choice = masked.max(dim=1)
        proposing = fits.any(dim=1)
        if not bool(proposing.any()):
            break
        open_rows, weight = open_rows[proposing], weight[proposing]
        best_score, choice = best_score[proposing], choice[proposing]
        # proposals grouped by cluster, best score first; accept the prefix
        # whose cumulated weight fits in the room
        order = torch.argsort(best_score, descending=True, stable=True)
        order = order[torch.argsort(choice[order], stable=True)]
        chosen = choice[order]
        cumulated = torch.cumsum(weight[order], 0)
        totals = torch.zeros(n_classes, dtype=torch.float64, device=device)
        totals.index_add_(0, chosen, weight[order])
        before = torch.cumsum(totals, 0) - totals  # weight of earlier clusters
        accepted = cumulated - before[chosen] <= room[chosen] + allowance
        labels[open_rows[order[accepted]]] = chosen[accepted]
        room.index_add_(0, chosen[accepted], -weight[order[accepted]])
    # rows whose weight fits in no cluster's room: the cluster with the most
    for row in (labels < 0).nonzero().squeeze(1).tolist():
        cluster = int(room.argmax())
        labels[row] = cluster
        room[cluster] -= weights[row]
    return labels
