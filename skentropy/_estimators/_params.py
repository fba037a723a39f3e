"""Parameters and input validation of the estimators.

:class:`_ClusteringParameters` holds the parameters shared by every softmax
estimator (their constraints, ``module__*`` parameters as skorch has them)
and the checks of parameters against the input and the fitted state. The
functions check what every estimator, SeCu included, checks the same way.
"""

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    column_or_1d,
    validate_data,
)

from skentropy._estimators._heads import HEADS
from skentropy._estimators._neighbors import check_n_neighbors
from skentropy._estimators._training import OPTIMIZERS
from skentropy._torch_utils import without_negative_strides

# Stopping rule of the pseudo-label solvers of the self-labeling estimators.
PSEUDO_LABEL_CONSTRAINTS = {
    "em_tol": [Interval(Real, 0, None, closed="neither")],
    "em_max_iter": [Interval(Integral, 1, None, closed="left")],
}


class _ClusteringParameters(BaseEstimator):
    """The parameters of the softmax estimators, and their checks.

    ``__init__`` stores its arguments unchanged; ``**kwargs`` takes the
    ``module__*`` parameters of the feature network, which ``get_params``
    and ``set_params`` handle as skorch does. The parameters ``head``,
    ``n_heads``, ``temperature`` and ``semi_supervised`` have defaults here,
    so that a subclass that does not list them in its ``__init__`` still
    works (without them being tunable).
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "fairness_weight": [Interval(Real, 0, None, closed="left")],
        "prior": ["array-like", None, StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "head": [StrOptions(set(HEADS))],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "semi_supervised": ["boolean"],
        "module": [None, callable],
        "augment": [None, callable],
        "n_augmentations": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [None, Interval(Integral, 1, None, closed="left")],
        "callbacks": [None, list],
    }

    def __init__(
        self,
        n_clusters,
        *,
        gamma,
        fairness_weight,
        prior,
        max_iter,
        batch_size,
        lr,
        optimizer,
        weight_decay,
        tol,
        n_iter_no_change,
        n_init,
        warm_start,
        random_state,
        verbose,
        device,
        head="linear",
        n_heads=1,
        temperature=0.1,
        semi_supervised=False,
        module=None,
        augment=None,
        n_augmentations=2,
        callbacks=None,
        n_neighbors=None,
        **kwargs,
    ):
        for key in kwargs:
            if not key.startswith("module__"):
                raise TypeError(
                    f"{type(self).__name__}.__init__() got an unexpected keyword "
                    f"argument {key!r}"
                )
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.fairness_weight = fairness_weight
        self.prior = prior
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.n_init = n_init
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.head = head
        self.n_heads = n_heads
        self.temperature = temperature
        self.semi_supervised = semi_supervised
        self.module = module
        self.augment = augment
        self.n_augmentations = n_augmentations
        self.callbacks = callbacks
        self.n_neighbors = n_neighbors
        vars(self).update(kwargs)  # module__* parameters, as skorch stores them

    def get_params(self, deep=True):
        """Get parameters for this estimator, ``module__*`` ones included.

        Parameters
        ----------
        deep : bool, default=True
            If True, will return the parameters for this estimator and
            contained subobjects that are estimators.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=deep)
        params.update(self._module_params(prefixed=True))
        return params

    def set_params(self, **params):
        """Set the parameters of this estimator, ``module__*`` ones included.

        ``module__<name>`` parameters are the keyword arguments the feature
        network ``module`` is built with, as in skorch; they can be tuned by
        :class:`~sklearn.model_selection.GridSearchCV`.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
            Estimator instance.
        """
        for key in [key for key in params if key.startswith("module__")]:
            setattr(self, key, params.pop(key))
        return super().set_params(**params)

    def _module_params(self, prefixed=False):
        """The ``module__*`` parameters, with or without their prefix."""
        return {
            key if prefixed else key.removeprefix("module__"): value
            for key, value in vars(self).items()
            if key.startswith("module__")
        }

    def _check_deep_params(self):
        """Raise where deep-mode parameters are set without a ``module``."""
        if self.module is not None:
            return
        deep_only = [
            key
            for key, value in {
                "augment": self.augment,
                "callbacks": self.callbacks,
                **self._module_params(prefixed=True),
            }.items()
            if value is not None
        ]
        if deep_only:
            raise ValueError(
                f"{', '.join(deep_only)} set up the training of a feature "
                "network and need module (a torch.nn.Module class or "
                "instance); got module=None."
            )

    def _check_params_vs_input(self, X):
        """Check the parameters against the training data (a hook: SeLa adds)."""
        check_n_samples(X, self.n_clusters)
        if self.n_neighbors is not None:
            check_n_neighbors(self.n_neighbors, X.shape[0])

    def _check_partial_labels(self, y, n_samples):
        """Labels of weak supervision as int64 (−1 = unlabeled), or None."""
        return check_partial_labels(
            y, n_samples, self.n_clusters, semi_supervised=self.semi_supervised
        )

    def _continues_training(self):
        """Whether ``fit`` starts from the fitted parameters (``warm_start``)."""
        return self.warm_start and hasattr(self, "n_iter_")

    def _check_continuation(self):
        """Check that training can continue from the fitted model."""
        if (self.module is None) == hasattr(self, "net_"):
            raise ValueError(
                "Training cannot continue with module="
                f"{'None' if self.module is None else 'a network'} from a model "
                f"fitted {'with' if hasattr(self, 'net_') else 'without'} one; fit "
                "a new model (with warm_start=False)."
            )
        fitted = {
            "n_clusters": self._n_features_out,
            "head": self._head_config["head"],
            "n_heads": self._head_config["n_heads"],
        }
        for name, value in fitted.items():
            if getattr(self, name) != value:
                raise ValueError(
                    f"Training cannot continue with {name}={getattr(self, name)!r} "
                    f"from a model fitted with {name}={value!r}; fit a new model "
                    "(with warm_start=False)."
                )


def validate_features(estimator, X, *, reset):
    """Features X of a shallow estimator: float16 and float32 in float32, else float64.

    float32 holds every float16 value exactly, so half-precision embeddings
    (as stored on disk to save space) train in float32 as if given so,
    rather than in float64 as scikit-learn's ``dtype=[np.float64,
    np.float32]`` would convert them: the labels of ``X.astype(np.float32)``,
    in half the memory of float64 and in less time.

    Also checks their magnitude (:func:`check_magnitude`). Copies nothing
    that is already float32 or float64, so memory maps stay on disk (only
    views with a negative stride, e.g. ``X[::-1]``, are copied).
    """
    dtype = [np.float64, np.float32]
    if getattr(X, "dtype", None) == np.float16:
        dtype = np.float32
    X = validate_data(estimator, X, dtype=dtype, reset=reset)
    check_magnitude(X)
    return without_negative_strides(X)


def check_magnitude(X):
    """Raise a ValueError where squared distances between rows of X overflow.

    The heads start from squared distances between rows (k-means++ seeds,
    the temperature of the soft nearest-prototype classifier) and SeCu
    normalizes rows by their norms: with entries so large that the bound
    4 d max|x|² on ‖x − x'‖² exceeds the largest finite number of X's dtype,
    the losses would become infinite or NaN. Entries so small that their
    squares fall below the smallest normal number of the dtype (all below
    1.5e-154 in float64, 1.1e-19 in float32, but not all zero) are refused
    too: their squared distances would round to zero, and every row would
    look the same. Reads X twice (its maximum and minimum), copying nothing,
    so memory maps stay on disk.
    """
    largest = max(float(X.max()), -float(X.min()))
    finfo = np.finfo(X.dtype)
    if largest > math.sqrt(finfo.max / (4 * X.shape[1])):
        raise ValueError(
            f"X has entries of magnitude up to {largest:.3g}, so large that "
            f"squared distances between its rows overflow {X.dtype} (largest "
            f"finite value {finfo.max:.3g}). Scale X down, e.g. with "
            "sklearn.preprocessing.StandardScaler."
        )
    if 0 < largest < math.sqrt(finfo.smallest_normal):
        raise ValueError(
            f"X has entries of magnitude at most {largest:.3g}, so small that "
            f"squared distances between its rows underflow {X.dtype} (smallest "
            f"normal value {finfo.smallest_normal:.3g}). Scale X up, e.g. with "
            "sklearn.preprocessing.StandardScaler."
        )


def relative_sample_weight(sample_weight, X, dtype):
    """Weights of the rows of X, checked in float64, scaled, in ``dtype``.

    The losses, the seeds and the standardization weigh rows by their share
    of the total weight, so only ratios of weights matter. Weights are
    divided by their largest, so that their sums and their products with σ
    and x neither overflow nor underflow whatever their magnitude (1e-300 to
    1e308), and equal weights give the unweighted fit. Integer weights whose
    total is exact in float64 (at most 2⁵³) are kept as they are: SeLa's
    rounding counts them as repeated rows.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
        Non-negative finite weights, not all zero; ``None`` is all ones.

    X : ndarray of shape (n_samples, ...)
        The samples they weigh.

    dtype : numpy dtype
        The dtype of the result.

    Returns
    -------
    sample_weight : ndarray of shape (n_samples,)
    """
    sample_weight = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    integer = np.array_equal(sample_weight, np.round(sample_weight))
    if not (integer and sample_weight.sum() <= 2.0**53):
        sample_weight = sample_weight / sample_weight.max()
    return sample_weight.astype(dtype, copy=False)


def check_n_samples(X, n_clusters):
    """Raise a ValueError if X has fewer samples than clusters."""
    if X.shape[0] < n_clusters:
        raise ValueError(
            f"n_samples={X.shape[0]} should be >= n_clusters={n_clusters}."
        )


def check_partial_labels(y, n_samples, n_clusters, *, semi_supervised):
    """Labels of weak supervision as int64 (−1 = unlabeled), or None.

    ``None`` when ``semi_supervised`` is False (y is ignored, as by every
    scikit-learn clusterer), when y is None, or when no sample is labeled.
    Otherwise y must hold one integer-valued label per sample, each in
    −1..K−1.
    """
    if not semi_supervised or y is None:
        return None
    y = column_or_1d(y)
    check_consistent_length(np.empty(n_samples), y)
    expected = (
        f"semi_supervised=True expects y with a cluster index in "
        f"0..{n_clusters - 1} for each labeled sample and -1 for each "
        "unlabeled one"
    )
    if y.dtype.kind not in "iuf":
        raise ValueError(f"{expected}; got y of dtype {y.dtype}.")
    if y.dtype.kind == "f":
        non_integer = ~np.isfinite(y) | (y != np.round(y))
        if non_integer.any():
            raise ValueError(
                f"{expected}; got non-integer labels, e.g. "
                f"{y[non_integer][:3].tolist()}."
            )
    y = y.astype(np.int64)
    outside = (y < -1) | (y >= n_clusters)
    if outside.any():
        raise ValueError(
            f"{expected}; got labels outside -1..{n_clusters - 1}: "
            f"{np.unique(y[outside])[:5].tolist()}."
        )
    return y if (y >= 0).any() else None


def persistent_random_state(estimator):
    """The RandomState that successive ``partial_fit`` calls draw from.

    Created from ``random_state`` by the first call and kept by the
    estimator, so that each call draws new mini-batches.
    """
    if not hasattr(estimator, "_random_state"):
        estimator._random_state = check_random_state(estimator.random_state)
    return estimator._random_state
