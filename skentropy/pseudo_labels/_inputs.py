"""The input of the public pseudo-label functions: checks and conversions.

:class:`SolverInput` validates (unless the caller says the input is known to
be valid) and converts what a public function of :mod:`skentropy.pseudo_labels`
receives, σ, a warm start or labels, the prior, the fairness weight and the
sample weights, into float64 torch tensors on the device of σ, and evaluates
the objective and the KKT residual of a point of that problem.
:func:`check_stopping` checks ``tol`` and ``max_iter``; :func:`like_input`
converts labels back to the type, dtype and device of the input. The error
messages about these arguments are written here (those about ``method`` and
``loss`` where the choice is made).
"""

import math

import numpy as np
import torch

from skentropy._prior import check_prior
from skentropy.pseudo_labels._problem import (
    objective,
    relative_kkt_terms,
    scaled_gradient,
)

__all__ = ["SolverInput", "check_stopping", "like_input"]

_SIMPLEX_ATOL = {torch.float32: 1e-4, torch.float64: 1e-8}


class SolverInput:
    """The input of a public function, validated, in float64 torch tensors.

    ``probs`` (σ) and ``init`` (a warm start, or the labels to evaluate; σ if
    none was given) have rows renormalized onto the simplex, ``prior`` (u)
    sums to one and ``weights`` (w) are the row weights normalized to sum to
    one. Not to be confused with the pieces of ``_problem``, which evaluate
    any (σ, y, w, λu) and know nothing of the input.
    """

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
        (``"labels"`` for the objective and KKT functions). Unchecked input
        may be a stack of problems sharing the rows' weights: ``probs`` of
        shape (S, N, K) and ``prior`` of shape (K,) or (S, K), stored as
        (S, 1, K) to broadcast against the labels.
        """
        probs = _as_float(probs, "probs")
        probs64 = probs.to(torch.float64)
        device = probs64.device
        if check:
            _check_probs(probs, probs64)
            fairness_weight = _check_fairness_weight(fairness_weight)
        n_samples, n_classes = probs64.shape[-2:]
        probs64 = probs64 / probs64.sum(dim=-1, keepdim=True)
        if prior is None:
            prior64 = torch.full(
                (n_classes,), 1.0 / n_classes, dtype=torch.float64, device=device
            )
        else:
            if check:
                check_prior(prior, n_classes, positive=False)
            prior64 = _as_float(prior, "prior", device).to(torch.float64)
            prior64 = prior64 / prior64.sum(dim=-1, keepdim=True)
            if prior64.ndim == 2:  # one prior per problem of a stack
                prior64 = prior64.unsqueeze(-2)
        weights = _row_shares(sample_weight, n_samples, device, check)
        if init is None:
            init64 = probs64
        else:
            init = _as_float(init, init_name, device)
            init64 = init.to(torch.float64)
            if check:
                _check_probs(init, init64, name=init_name, shape=probs64.shape)
            init64 = init64 / init64.sum(dim=-1, keepdim=True)
        return cls(probs64, init64, prior64, float(fairness_weight), weights)

    @classmethod
    def from_labels(cls, probs, labels, prior, fairness_weight, sample_weight):
        """Validate and convert the input of the objective and KKT functions."""
        return cls.from_input(
            probs,
            labels,
            prior,
            fairness_weight,
            sample_weight,
            check=True,
            init_name="labels",
        )

    def objective(self, loss, y):
        """E(y) or E₂(y) of ``loss`` (a 0-dim tensor)."""
        return objective(
            loss, self.probs, y, self.weights, self.fairness_weight * self.prior
        )

    def kkt_residual(self, loss, y):
        """The relative KKT residual of the public ``kkt_residual`` (a float).

        The largest of the problems' residuals for a stack.
        """
        return float(self.kkt_residuals(loss, y).max())

    def kkt_residuals(self, loss, y):
        """The relative KKT residual of each problem, a tensor (0-dim for one)."""
        grad = scaled_gradient(
            loss, self.probs, y, self.weights, self.fairness_weight * self.prior
        )
        return relative_kkt_terms(y, grad, self.weights)


def like_input(y, reference):
    """y in the type, dtype and device of ``reference`` (float64 if not floating).

    In a narrower dtype, entries below its smallest normal number (y_ik ∝ σ_ik,
    so a tiny σ_ik gives a tiny y_ik) keep only a few bits, or none: they are
    rounded up, never down. Rounding down would make the entry look as if it
    should grow (−σ_ik/y_ik too negative, a dual violation of the KKT rule of
    :func:`skentropy.pseudo_labels.kkt_residual` of up to the rounding error
    itself, e.g. 3% for a float32 entry of 5e-44), and an entry rounded to
    zero would make the
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


def _row_shares(sample_weight, n_samples, device, check=True):
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


def check_stopping(tol, max_iter):
    if not (isinstance(tol, int | float) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}.")
    if not (isinstance(max_iter, int | np.integer) and max_iter >= 1):
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}.")
    return float(tol), int(max_iter)
