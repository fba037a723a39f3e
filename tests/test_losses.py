"""Tests for skentropy.losses."""

import doctest
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import rel_entr
from scipy.stats import entropy

import skentropy.losses
from skentropy.losses import (
    collision_cross_entropy,
    cross_entropy,
    decisiveness,
    fairness,
    margin,
    mutual_information,
    reverse_cross_entropy,
    strong_fairness,
)

DTYPES = [torch.float32, torch.float64]
SEED = 0


def increasing_prior(log_probs):
    n_clusters = log_probs.shape[1]
    prior = torch.arange(1, n_clusters + 1, dtype=log_probs.dtype)
    return prior / prior.sum()


def prior_with_zero(log_probs):
    prior = increasing_prior(log_probs).clone()
    prior[0] = 0.0
    return prior / prior.sum()


# Every term as f(log_probs, targets, sample_weight); targets are probabilities.
LOSSES = {
    "decisiveness": lambda lp, y, w: decisiveness(lp, sample_weight=w),
    "cross_entropy": lambda lp, y, w: cross_entropy(y, lp, sample_weight=w),
    "reverse_cross_entropy": lambda lp, y, w: reverse_cross_entropy(
        lp, y, sample_weight=w
    ),
    "collision_cross_entropy": lambda lp, y, w: collision_cross_entropy(
        lp, y, sample_weight=w
    ),
    "fairness": lambda lp, y, w: fairness(lp, sample_weight=w),
    "fairness_prior": lambda lp, y, w: fairness(
        lp, prior=increasing_prior(lp), sample_weight=w
    ),
    "fairness_prior_zero": lambda lp, y, w: fairness(
        lp, prior=prior_with_zero(lp), sample_weight=w
    ),
    "strong_fairness": lambda lp, y, w: strong_fairness(y, sample_weight=w),
    "strong_fairness_of_predictions": lambda lp, y, w: strong_fairness(
        lp.exp(), prior=increasing_prior(lp), sample_weight=w
    ),
    "strong_fairness_prior_zero": lambda lp, y, w: strong_fairness(
        y, prior=prior_with_zero(lp), sample_weight=w
    ),
    "mutual_information": lambda lp, y, w: mutual_information(lp, sample_weight=w),
}


def random_inputs(rng, n_samples=7, n_clusters=4, dtype=torch.float64):
    """Random interior log-probabilities and targets."""
    logits = torch.tensor(rng.normal(size=(n_samples, n_clusters)) * 2, dtype=dtype)
    targets = rng.dirichlet(np.ones(n_clusters), size=n_samples)
    return torch.log_softmax(logits, dim=1), torch.tensor(targets, dtype=dtype)


# --------------------------------------------------------------------------
# Closed-form values on small examples
# --------------------------------------------------------------------------


def test_decisiveness_closed_form():
    uniform = torch.full((3, 4), 0.25, dtype=torch.float64)
    assert decisiveness(uniform.log()).item() == pytest.approx(math.log(4))
    one_hot = torch.eye(3, dtype=torch.float64)
    assert decisiveness(one_hot.log()).item() == 0.0
    mixed = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    assert decisiveness(mixed.log()).item() == pytest.approx(math.log(2) / 2)


def test_cross_entropy_closed_form():
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    probs = torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=torch.float64)
    expected = (math.log(4) + math.log(2)) / 2
    assert cross_entropy(targets, probs.log()).item() == pytest.approx(expected)


def test_cross_entropy_infinite_where_prediction_excludes_target():
    targets = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    log_probs = torch.tensor([[0.0, 1.0]], dtype=torch.float64).log()
    log_probs.requires_grad_(True)
    loss = cross_entropy(targets, log_probs)
    assert loss.item() == math.inf
    loss.backward()
    assert torch.equal(log_probs.grad, -targets)


def test_reverse_cross_entropy_closed_form():
    probs = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    targets = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    expected = -(math.log(0.25) + math.log(0.75)) / 2
    assert reverse_cross_entropy(probs.log(), targets).item() == pytest.approx(expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reverse_cross_entropy_floors_log_of_zero_targets(dtype):
    # σ = (0.5, 0.5), y = (1, 0): -(0.5 ln 1 + 0.5 ln tiny).
    probs = torch.tensor([[0.5, 0.5]], dtype=dtype)
    targets = torch.tensor([[1.0, 0.0]], dtype=dtype)
    expected = -0.5 * math.log(torch.finfo(dtype).tiny)
    loss = reverse_cross_entropy(probs.log(), targets)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_collision_cross_entropy_closed_form():
    probs = torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.1, 0.9]], dtype=torch.float64)
    targets = torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.0, 1.0]], dtype=torch.float64)
    expected = (math.log(2) + math.log(2) - math.log(0.9)) / 3
    loss = collision_cross_entropy(probs.log(), targets)
    assert loss.item() == pytest.approx(expected)


def test_collision_cross_entropy_infinite_row_has_zero_gradient():
    log_probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64).log()
    log_probs.requires_grad_(True)
    targets = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    loss = collision_cross_entropy(log_probs, targets)
    assert loss.item() == math.inf
    loss.backward()
    expected = torch.tensor([[0.0, 0.0], [-0.5, 0.0]], dtype=torch.float64)
    assert torch.equal(log_probs.grad, expected)


def test_fairness_closed_form():
    all_first = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64).log()
    assert fairness(all_first).item() == pytest.approx(math.log(2))
    balanced = torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=torch.float64).log()
    assert fairness(balanced).item() == pytest.approx(0.0, abs=1e-15)
    prior = torch.tensor([0.25, 0.75], dtype=torch.float64)
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert fairness(balanced, prior=prior).item() == pytest.approx(expected)


def test_fairness_zero_prior_entry():
    log_probs = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64).log()
    prior = torch.tensor([0.0, 1.0], dtype=torch.float64)
    # σ̄ = (0, 1) puts no mass outside the prior's support: KL = 0.
    assert fairness(log_probs, prior=prior).item() == 0.0
    # σ̄ = (0.5, 0.5) does: KL = +inf.
    log_probs = torch.tensor([[0.5, 0.5]], dtype=torch.float64).log()
    assert fairness(log_probs, prior=prior).item() == math.inf


def test_strong_fairness_closed_form():
    targets = torch.tensor([[0.9, 0.1], [0.7, 0.3]], dtype=torch.float64)
    expected = -(math.log(1.6) + math.log(0.4)) / 2
    assert strong_fairness(targets).item() == pytest.approx(expected)
    prior = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert strong_fairness(targets, prior=prior).item() == pytest.approx(-math.log(0.2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_strong_fairness_empty_cluster_is_finite(dtype):
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=dtype)
    expected = 0.5 * (math.log(0.5) - math.log(torch.finfo(dtype).tiny)) + 0.5 * (
        math.log(0.5)
    )
    assert strong_fairness(targets).item() == pytest.approx(expected, rel=1e-6)


def test_mutual_information_closed_form():
    distinct = torch.eye(3, dtype=torch.float64).log()
    assert mutual_information(distinct).item() == pytest.approx(math.log(3))
    identical = torch.tensor([[0.3, 0.7]] * 4, dtype=torch.float64).log()
    assert mutual_information(identical).item() == pytest.approx(0.0, abs=1e-15)


def test_margin_is_sum_of_squares():
    weight = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    loss = margin(weight)
    assert loss.shape == ()
    assert loss.item() == 30.0
    loss.backward()
    assert torch.equal(weight.grad, 2 * weight.detach())


def test_margin_on_random_weights():
    rng = np.random.default_rng(SEED)
    weight = rng.normal(size=(5, 3))
    assert margin(torch.tensor(weight)).item() == pytest.approx((weight**2).sum())


# --------------------------------------------------------------------------
# Agreement with straightforward numpy/scipy implementations
# --------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("with_prior", [False, True])
def test_agrees_with_scipy(weighted, with_prior):
    rng = np.random.default_rng(SEED)
    n_samples, n_clusters = 11, 5
    probs = rng.dirichlet(np.ones(n_clusters) * 0.7, size=n_samples)
    targets = rng.dirichlet(np.ones(n_clusters), size=n_samples)
    weights = rng.uniform(0.1, 3.0, size=n_samples) if weighted else None
    prior = rng.dirichlet(np.ones(n_clusters)) if with_prior else None
    uniform = np.full(n_clusters, 1 / n_clusters)
    u = uniform if prior is None else prior

    mean_probs = np.average(probs, axis=0, weights=weights)
    mean_targets = np.average(targets, axis=0, weights=weights)
    row_entropy = entropy(probs, axis=1)
    expected = {
        decisiveness: np.average(row_entropy, weights=weights),
        cross_entropy: np.average(-(targets * np.log(probs)).sum(1), weights=weights),
        reverse_cross_entropy: np.average(
            -(probs * np.log(targets)).sum(1), weights=weights
        ),
        collision_cross_entropy: np.average(
            -np.log((probs * targets).sum(1)), weights=weights
        ),
        fairness: rel_entr(mean_probs, u).sum(),
        strong_fairness: rel_entr(u, mean_targets).sum(),
        mutual_information: entropy(mean_probs)
        - np.average(row_entropy, weights=weights),
    }

    log_probs_t = torch.tensor(np.log(probs))
    targets_t = torch.tensor(targets)
    weights_t = None if weights is None else torch.tensor(weights)
    prior_t = None if prior is None else torch.tensor(prior)
    computed = {
        decisiveness: decisiveness(log_probs_t, sample_weight=weights_t),
        cross_entropy: cross_entropy(targets_t, log_probs_t, sample_weight=weights_t),
        reverse_cross_entropy: reverse_cross_entropy(
            log_probs_t, targets_t, sample_weight=weights_t
        ),
        collision_cross_entropy: collision_cross_entropy(
            log_probs_t, targets_t, sample_weight=weights_t
        ),
        fairness: fairness(log_probs_t, prior=prior_t, sample_weight=weights_t),
        strong_fairness: strong_fairness(
            targets_t, prior=prior_t, sample_weight=weights_t
        ),
        mutual_information: mutual_information(log_probs_t, sample_weight=weights_t),
    }
    for function, value in computed.items():
        assert value.item() == pytest.approx(expected[function], rel=1e-12), (
            function.__name__
        )


@pytest.mark.parametrize("name", sorted(set(LOSSES) - {"fairness_prior_zero"}))
def test_gradcheck(name):
    rng = np.random.default_rng(SEED)
    log_probs, targets = random_inputs(rng, n_samples=4, n_clusters=3)
    logits = log_probs.clone().requires_grad_(True)
    targets.requires_grad_(True)
    weights = torch.tensor(rng.uniform(0.5, 2.0, size=4))

    def loss(logits, targets):
        return LOSSES[name](torch.log_softmax(logits, dim=1), targets, weights)

    assert torch.autograd.gradcheck(loss, (logits, targets), fast_mode=True)


def test_collision_gradient_wrt_targets_exact_at_zeros():
    # ∂/∂y_ik of mean_i −ln σ_i·y_i is −σ_ik / (N σ_i·y_i), also where y_ik = 0.
    rng = np.random.default_rng(SEED)
    log_probs, targets = random_inputs(rng, n_samples=5, n_clusters=4)
    targets[:, 0] = 0.0
    targets[1] = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    targets = targets / targets.sum(1, keepdim=True)
    targets.requires_grad_(True)
    collision_cross_entropy(log_probs, targets).backward()
    probs = log_probs.exp()
    overlap = (probs * targets.detach()).sum(1, keepdim=True)
    expected = -probs / (len(probs) * overlap)
    torch.testing.assert_close(targets.grad, expected, rtol=1e-12, atol=0)


def test_strong_fairness_gradient_matches_paper():
    # ∂/∂y_ik of −Σ_k u_k ln ȳ_k is −u_k / Σ_j y_jk (DESIGN, entropy paper EM).
    rng = np.random.default_rng(SEED)
    _, targets = random_inputs(rng, n_samples=6, n_clusters=3)
    targets.requires_grad_(True)
    prior = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    strong_fairness(targets, prior=prior).backward()
    expected = (-prior / targets.detach().sum(0)).expand(6, 3)
    torch.testing.assert_close(targets.grad, expected, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_identities(dtype):
    rng = np.random.default_rng(SEED)
    log_probs, targets = random_inputs(rng, n_samples=9, n_clusters=5, dtype=dtype)
    weights = torch.tensor(rng.uniform(0.1, 2.0, size=9), dtype=dtype)
    n_clusters = log_probs.shape[1]
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}
    close = torch.testing.assert_close

    for w in (None, weights):
        # MI = H(σ̄) − mean H(σ), and KL(σ̄‖u) = ln K − H(σ̄) for uniform u.
        mean_entropy = math.log(n_clusters) - fairness(log_probs, sample_weight=w)
        close(
            mutual_information(log_probs, sample_weight=w),
            mean_entropy - decisiveness(log_probs, sample_weight=w),
            **tol,
        )
        # H(σ, σ) = H(σ).
        close(
            reverse_cross_entropy(log_probs, log_probs.exp(), sample_weight=w),
            decisiveness(log_probs, sample_weight=w),
            **tol,
        )
        # H(y, σ) = H(y) + KL(y‖σ) ≥ H(y); equality at σ = y.
        close(
            cross_entropy(targets, targets.log(), sample_weight=w),
            decisiveness(targets.log(), sample_weight=w),
            **tol,
        )
        uniform = torch.full((n_clusters,), 1 / n_clusters, dtype=dtype)
        close(
            fairness(log_probs, prior=uniform, sample_weight=w),
            fairness(log_probs, sample_weight=w),
            **tol,
        )
        close(
            strong_fairness(targets, prior=uniform, sample_weight=w),
            strong_fairness(targets, sample_weight=w),
            **tol,
        )

    # Collision CE of one-hot y is Shannon's CE; of uniform y it is ln K.
    one_hot = torch.eye(n_clusters, dtype=dtype)[rng.integers(n_clusters, size=9)]
    close(
        collision_cross_entropy(log_probs, one_hot),
        cross_entropy(one_hot, log_probs),
        **tol,
    )
    uniform_targets = torch.full_like(targets, 1 / n_clusters)
    close(
        collision_cross_entropy(log_probs, uniform_targets),
        torch.tensor(math.log(n_clusters), dtype=dtype),
        **tol,
    )
    # Symmetry of H₂ in its arguments.
    close(
        collision_cross_entropy(log_probs, targets),
        collision_cross_entropy(targets.log(), log_probs.exp()),
        **tol,
    )


# --------------------------------------------------------------------------
# Exact zeros: no NaN in values or gradients
# --------------------------------------------------------------------------


def _assert_no_nan(name, loss, *tensors):
    """No NaN in ``loss`` nor in the gradients of the ``tensors`` it uses."""
    assert not torch.isnan(loss), name
    loss.backward()
    for tensor in tensors:
        if tensor.grad is not None:
            assert not torch.isnan(tensor.grad).any(), name


def _finite_grad(tensor):
    return tensor.grad is None or torch.isfinite(tensor.grad).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_saturated_logits_finite(name, dtype):
    # log_softmax of ±1e4 logits: σ underflows to exact zeros.
    rng = np.random.default_rng(SEED)
    signs = rng.choice([-1.0, 1.0], size=(6, 4))
    signs[:, 3] = -1.0  # cluster 3 is (numerically) empty
    logits = torch.tensor(1e4 * signs, dtype=dtype, requires_grad=True)
    log_probs = torch.log_softmax(logits, dim=1)
    assert (log_probs.exp() == 0).any()
    labels = rng.integers(3, size=6)
    targets = torch.eye(4, dtype=dtype)[labels].requires_grad_(True)
    loss = LOSSES[name](log_probs, targets, None)
    assert loss.dtype == dtype
    _assert_no_nan(name, loss, logits, targets)
    if name != "fairness_prior_zero":
        assert torch.isfinite(loss), name
    assert _finite_grad(logits), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("agree", [True, False])
def test_one_hot_log_probs(name, dtype, agree):
    # torch.log of one-hot rows: -inf log-probabilities; an empty cluster (3).
    labels = torch.tensor([0, 0, 1, 2, 2])
    one_hot = torch.eye(4, dtype=dtype)[labels]
    log_probs = torch.log(one_hot).requires_grad_(True)
    target_labels = labels if agree else torch.tensor([1, 0, 1, 0, 2])
    targets = torch.eye(4, dtype=dtype)[target_labels].requires_grad_(True)
    weights = torch.tensor([1.0, 2.0, 0.0, 1.0, 3.0], dtype=dtype)
    for w in (None, weights):
        log_probs.grad = targets.grad = None
        loss = LOSSES[name](log_probs, targets, w)
        _assert_no_nan(name, loss, log_probs, targets)
        assert _finite_grad(log_probs), name
        if agree and name != "fairness_prior_zero":
            assert torch.isfinite(loss), name


def test_zero_weight_rows_are_dropped_even_if_infinite():
    log_probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64).log()
    targets = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    weights = torch.tensor([0.0, 1.0], dtype=torch.float64)
    loss = cross_entropy(targets, log_probs, sample_weight=weights)
    assert loss.item() == pytest.approx(math.log(2))
    loss = collision_cross_entropy(log_probs, targets, sample_weight=weights)
    assert loss.item() == pytest.approx(math.log(2))


# --------------------------------------------------------------------------
# dtypes, devices, sample weights
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_matches_float64(name):
    rng = np.random.default_rng(SEED)
    log_probs, targets = random_inputs(rng)
    weights = torch.tensor(rng.uniform(0.1, 2.0, size=len(targets)))
    expected = LOSSES[name](log_probs, targets, weights)
    result = LOSSES[name](log_probs.float(), targets.float(), weights.float())
    assert result.dtype == torch.float32
    assert result.shape == ()
    assert result.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_integer_sample_weight_equals_repeated_rows(name):
    rng = np.random.default_rng(SEED)
    log_probs, targets = random_inputs(rng, n_samples=8)
    counts = rng.integers(0, 4, size=8)
    counts[0] = 0
    repeats = torch.tensor(counts)
    expected = LOSSES[name](
        log_probs.repeat_interleave(repeats, dim=0),
        targets.repeat_interleave(repeats, dim=0),
        None,
    )
    for weights in (torch.tensor(counts, dtype=torch.float64), counts, counts.tolist()):
        result = LOSSES[name](log_probs, targets, weights)
        assert result.item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_cuda_matches_cpu(name, dtype):
    rng = np.random.default_rng(SEED)
    log_probs, targets = random_inputs(rng, dtype=dtype)
    targets[0] = torch.eye(4, dtype=dtype)[1]
    weights = torch.tensor(rng.uniform(0.1, 2.0, size=len(targets)), dtype=dtype)
    expected = LOSSES[name](log_probs, targets, weights)
    logits = log_probs.cuda().requires_grad_(True)
    result = LOSSES[name](
        torch.log_softmax(logits, dim=1), targets.cuda(), weights.cpu().numpy()
    )
    assert result.device.type == "cuda"
    result.backward()
    assert torch.isfinite(logits.grad).all()
    torch.testing.assert_close(result.cpu(), expected)


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def test_shape_errors():
    log_probs = torch.log_softmax(torch.zeros(3, 2), dim=1)
    targets = torch.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="log_probs must be a 2-D tensor"):
        decisiveness(log_probs[0])
    with pytest.raises(ValueError, match="log_probs must be a 2-D tensor"):
        mutual_information(log_probs[None])
    with pytest.raises(ValueError, match="at least one row"):
        fairness(log_probs[:0])
    with pytest.raises(ValueError, match="targets must have the same shape"):
        cross_entropy(targets[:2], log_probs)
    with pytest.raises(ValueError, match="targets must have the same shape"):
        reverse_cross_entropy(log_probs, targets.T)
    with pytest.raises(ValueError, match="targets must have the same shape"):
        collision_cross_entropy(log_probs, targets[:, :1])
    with pytest.raises(ValueError, match="targets_or_probs must be a 2-D tensor"):
        strong_fairness(targets[0])
    one_per_cluster = r"prior must have one entry per cluster, shape \(n_clusters,\)"
    with pytest.raises(ValueError, match=one_per_cluster):
        fairness(log_probs, prior=torch.ones(3) / 3)
    with pytest.raises(ValueError, match=one_per_cluster):
        strong_fairness(targets, prior=torch.ones(1, 2) / 2)
    with pytest.raises(ValueError, match=r"sample_weight must have shape"):
        decisiveness(log_probs, sample_weight=torch.ones(2))
    with pytest.raises(ValueError, match=r"sample_weight must have shape"):
        cross_entropy(targets, log_probs, sample_weight=torch.ones(3, 1))
    with pytest.raises(TypeError, match="log_probs must be a torch.Tensor"):
        decisiveness(log_probs.numpy())
    with pytest.raises(TypeError, match="targets must be a torch.Tensor"):
        cross_entropy(targets.numpy(), log_probs)
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        margin([[1.0, 2.0]])


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------


def _logits(n_clusters):
    return arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.just(n_clusters)),
        elements=st.floats(-30, 30),
    )


@st.composite
def _predictions_and_targets(draw):
    n_clusters = draw(st.integers(1, 5))
    logits = draw(_logits(n_clusters))
    target_logits = draw(arrays(np.float64, logits.shape, elements=st.floats(-30, 30)))
    log_probs = torch.log_softmax(torch.tensor(logits), dim=1)
    targets = torch.softmax(torch.tensor(target_logits), dim=1)
    return log_probs, targets


@settings(max_examples=40, deadline=None)
@given(_predictions_and_targets())
def test_divergences_nonnegative(inputs):
    log_probs, targets = inputs
    prior = increasing_prior(log_probs)
    assert fairness(log_probs).item() >= -1e-12
    assert fairness(log_probs, prior=prior).item() >= -1e-12
    assert strong_fairness(targets).item() >= -1e-12
    assert strong_fairness(targets, prior=prior).item() >= -1e-12
    assert mutual_information(log_probs).item() >= -1e-12
    assert collision_cross_entropy(log_probs, targets).item() >= -1e-12


@settings(max_examples=40, deadline=None)
@given(_predictions_and_targets())
def test_cross_entropy_bounds_entropy(inputs):
    # Gibbs: H(y, σ) ≥ H(y), and H(σ, y) ≥ H(σ) (up to the floor on ln y).
    log_probs, targets = inputs
    target_entropy = decisiveness(torch.log(targets)).item()
    assert cross_entropy(targets, log_probs).item() >= target_entropy - 1e-9
    entropy_ = decisiveness(log_probs).item()
    assert reverse_cross_entropy(log_probs, targets).item() >= entropy_ - 1e-9
    # σ·y ≤ max σ, so −ln σ·y ≥ −ln max σ.
    lower = -log_probs.max(dim=1).values.mean().item()
    assert collision_cross_entropy(log_probs, targets).item() >= lower - 1e-9


def test_doctests():
    result = doctest.testmod(skentropy.losses, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
