"""Shared base of the entropy clustering estimators.

:class:`_BaseEntropyClustering` holds the parameters, the mini-batch training
loop and the whole public API. A concrete estimator implements one hook,
:meth:`~_BaseEntropyClustering._batch_loss`: its loss on one mini-batch without
the margin term γ‖v‖², which the base adds.
"""

import warnings
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)
from tqdm.auto import tqdm

from skentropy import losses
from skentropy._heads import LinearHead

_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}

# A new head is seeded by k-means++ on at most this many mini-batches of rows
# (MiniBatchKMeans' init_size is also 3 batches).
_INIT_SIZE_BATCHES = 3


class _BaseEntropyClustering(
    ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, BaseEstimator, ABC
):
    """Base class for the discriminative entropy clustering estimators.

    Trains a softmax head σ(vᵀx + b) on mini-batches of X to minimize the loss
    of the subclass plus the margin term γ‖v‖² (bias excluded), and provides
    ``fit``, ``partial_fit``, ``predict``, ``predict_proba``, ``transform`` and
    ``score``.
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "fairness_weight": [Interval(Real, 0, None, closed="left")],
        "prior": ["array-like", None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [StrOptions(set(_OPTIMIZERS))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
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
    ):
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

    @abstractmethod
    def _batch_loss(self, log_probs, prior, sample_weight):
        """Loss of one mini-batch, without the margin term γ‖v‖².

        Parameters
        ----------
        log_probs : torch.Tensor of shape (n_samples, n_clusters)
            ln σ of the batch, tracked by autograd.

        prior : torch.Tensor of shape (n_clusters,) or None
            Target cluster proportions u; ``None`` means uniform.

        sample_weight : torch.Tensor of shape (n_samples,)
            Weights of the rows of the batch.

        Returns
        -------
        loss : torch.Tensor of shape ()
        """

    def _check_params_vs_input(self, X):
        if X.shape[0] < self.n_clusters:
            raise ValueError(
                f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}."
            )
        if self._continues_training() and self._n_features_out != self.n_clusters:
            raise ValueError(
                f"warm_start=True cannot continue with n_clusters={self.n_clusters}"
                f" from a model fitted with {self._n_features_out} clusters; set "
                "warm_start=False to fit a new model."
            )

    def _continues_training(self):
        """Whether ``fit`` starts from the fitted parameters (``warm_start``)."""
        return self.warm_start and hasattr(self, "n_iter_")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Train the clustering model on X.

        Runs ``n_init`` trainings of at most ``max_iter`` epochs each (a single
        one continuing from the fitted parameters if ``warm_start``) and keeps
        the one with the lowest training loss in its last epoch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. float32 data trains in float32, anything else in
            float64. Only mini-batches are copied, so read-only memory maps
            work.

        y : Ignored
            Not used, present here for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the losses. ``None`` gives every sample
            weight one.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        warm = self._continues_training()
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=not warm)
        self._check_params_vs_input(X)
        prior = _check_prior(self.prior, self.n_clusters)
        random_state = check_random_state(self.random_state)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        device = _resolve_device(self.device)

        best = None
        n_init = 1 if warm else self.n_init
        for init in range(n_init):
            head = self._initial_head(X, sample_weight, random_state, device, warm=warm)
            optimizer = self._make_optimizer(head)
            generator = _torch_generator(random_state)
            loss, n_iter, loss_curve, converged = self._fit_single(
                X,
                sample_weight,
                head,
                optimizer,
                prior,
                generator,
                description=f"init {init + 1}/{n_init}",
            )
            if best is None or loss < best[2]:
                best = head, optimizer, loss, n_iter, loss_curve, converged
        head, optimizer, _, n_iter, loss_curve, converged = best

        if not converged:
            warnings.warn(
                f"Training stopped at max_iter={self.max_iter} epochs while the "
                f"training loss still improved by more than tol={self.tol}; "
                "consider increasing max_iter.",
                ConvergenceWarning,
                stacklevel=2,
            )
        labels = self._labels(head, X)

        self._set_head_attributes(head)
        self._optimizer_state = _optimizer_state(optimizer, self.optimizer)
        self._n_features_out = self.n_clusters
        self.labels_ = labels
        self.n_iter_ = n_iter
        self.n_steps_ = n_iter * _n_batches(X.shape[0], self.batch_size)
        self.loss_curve_ = loss_curve
        self.converged_ = converged
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Train the clustering model for one epoch over X.

        The first call initializes the model; later calls continue from the
        fitted parameters and the optimizer's state (whatever ``warm_start``),
        so that a data set can be streamed in chunks, e.g. with
        :class:`dask_ml.wrappers.Incremental`. Each call makes one pass over X
        in shuffled mini-batches of ``batch_size`` rows, each with its own
        pseudo-labels (if any) and optimizer step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.

        y : Ignored
            Not used, present here for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the losses. ``None`` gives every sample
            weight one.

        Returns
        -------
        self : object
            Updated estimator.
        """
        first_call = not hasattr(self, "n_iter_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=first_call)
        if first_call:
            self._check_params_vs_input(X)
        prior = _check_prior(self.prior, self.n_clusters)
        self._random_state = getattr(
            self, "_random_state", check_random_state(self.random_state)
        )
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        device = _resolve_device(self.device)

        head = self._initial_head(
            X, sample_weight, self._random_state, device, warm=not first_call
        )
        optimizer = self._make_optimizer(
            head, state=None if first_call else self._optimizer_state
        )
        generator = _torch_generator(self._random_state)
        loss = self._run_epoch(X, sample_weight, head, optimizer, prior, generator)
        labels = self._labels(head, X)

        n_steps = _n_batches(X.shape[0], self.batch_size)
        self._set_head_attributes(head)
        self._optimizer_state = _optimizer_state(optimizer, self.optimizer)
        self._n_features_out = self.n_clusters
        self.labels_ = labels
        self.n_iter_ = 1 if first_call else self.n_iter_ + 1
        self.n_steps_ = n_steps if first_call else self.n_steps_ + n_steps
        self.loss_curve_ = [loss] if first_call else [*self.loss_curve_, loss]
        self.converged_ = False
        return self

    def _fit_single(
        self, X, sample_weight, head, optimizer, prior, generator, description
    ):
        """Train ``head`` for at most ``max_iter`` epochs.

        Stops early, as :class:`~sklearn.neural_network.MLPClassifier` does,
        once the training loss of an epoch has not been lower than the best
        so far minus ``tol`` for more than ``n_iter_no_change`` epochs in a row.

        Returns
        -------
        loss : float
            Training loss of the last epoch.

        n_iter : int
            Number of epochs run.

        loss_curve : list of float
            Training loss of every epoch.

        converged : bool
            Whether training stopped before ``max_iter``.
        """
        loss_curve = []
        best_loss, n_no_improvement = np.inf, 0
        epochs = tqdm(
            range(self.max_iter),
            desc=description,
            unit="epoch",
            disable=not self.verbose,
        )
        with epochs:
            for _ in epochs:
                loss = self._run_epoch(
                    X, sample_weight, head, optimizer, prior, generator
                )
                loss_curve.append(loss)
                epochs.set_postfix(loss=f"{loss:.5g}")
                if loss > best_loss - self.tol:
                    n_no_improvement += 1
                else:
                    n_no_improvement = 0
                best_loss = min(best_loss, loss)
                if n_no_improvement > self.n_iter_no_change:
                    return loss, len(loss_curve), loss_curve, True
        return loss, len(loss_curve), loss_curve, False

    def _run_epoch(self, X, sample_weight, head, optimizer, prior, generator):
        """One pass over X in shuffled mini-batches; returns the mean loss."""
        parameter = next(head.parameters())
        if prior is not None:
            prior = _to_tensor(prior, like=parameter)
        total_loss = torch.zeros((), dtype=parameter.dtype, device=parameter.device)
        for rows in _shuffled_batches(X.shape[0], self.batch_size, generator):
            if not sample_weight[rows].any():
                continue  # zero weights drop rows, and here a whole batch
            weight = _to_tensor(sample_weight[rows], like=parameter)
            X_batch = _to_tensor(X[rows], like=parameter)
            log_probs = torch.log_softmax(head(X_batch), dim=1)
            loss = self._batch_loss(log_probs, prior, weight)
            loss = loss + self.gamma * losses.margin(head.margin_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * weight.sum()
        mean_loss = total_loss.item() / sample_weight.sum()
        if not np.isfinite(mean_loss):
            raise ValueError(
                f"The training loss became {mean_loss}. The steps may be too large "
                "for the scale of X: standardize X (e.g. StandardScaler) or "
                "decrease lr."
            )
        return mean_loss

    def _make_head(self, n_features):
        """A new head with unset parameters: the one place where heads plug in."""
        return LinearHead(n_features, self.n_clusters)

    def _initial_head(self, X, sample_weight, random_state, device, *, warm):
        """The head to train, in the dtype of X: a new one, or the fitted one.

        A new head starts as a soft nearest-prototype classifier on k-means++
        seeds of (a random subset of) X, so that every cluster starts with
        some points.
        """
        dtype = _torch_dtype(X.dtype)
        if warm:
            return self._fitted_head(device).to(dtype=dtype)
        head = self._make_head(X.shape[1]).to(dtype=dtype, device=device)
        init_size = max(_INIT_SIZE_BATCHES * self.batch_size, 3 * self.n_clusters)
        head.reset_parameters(
            _seed_prototypes(X, sample_weight, self.n_clusters, init_size, random_state)
        )
        return head

    def _fitted_head(self, device):
        """The fitted head, rebuilt from the fitted numpy attributes."""
        head = self._make_head(self.n_features_in_)
        state = {
            key: torch.tensor(getattr(self, attribute))
            for key, attribute in head.fitted_attributes.items()
        }
        head.load_state_dict(state, assign=True)  # keeps the fitted dtype
        return head.to(device=device)

    def _set_head_attributes(self, head):
        """Store the head's parameters as fitted numpy attributes, on the CPU."""
        state = head.state_dict()
        for key, attribute in head.fitted_attributes.items():
            setattr(self, attribute, state[key].detach().cpu().numpy())

    def _make_optimizer(self, head, state=None):
        """The optimizer over the head, resuming from a saved ``state``."""
        optimizer = _OPTIMIZERS[self.optimizer](
            head.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        if state is not None and state["optimizer"] == self.optimizer:
            # Resume the per-parameter state (e.g. Adam's moments) but keep the
            # current hyper-parameters (lr, weight_decay) of the param_groups.
            optimizer.load_state_dict(
                {
                    "state": {
                        index: {
                            name: torch.tensor(value) for name, value in saved.items()
                        }
                        for index, saved in state["state"].items()
                    },
                    "param_groups": optimizer.state_dict()["param_groups"],
                }
            )
        return optimizer

    @torch.no_grad()
    def _log_probs(self, head, X):
        """ln σ of all rows of X, computed batch by batch."""
        parameter = next(head.parameters())
        logits = [
            head(_to_tensor(X[start:stop], like=parameter))
            for start, stop in _batch_bounds(X.shape[0], self.batch_size)
        ]
        return torch.log_softmax(torch.cat(logits), dim=1)

    def _labels(self, head, X):
        return self._log_probs(head, X).argmax(dim=1).cpu().numpy()

    def _validate_for_inference(self, X):
        """Validated X and the fitted head on the estimator's device."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return X, self._fitted_head(_resolve_device(self.device))

    def predict(self, X):
        """Predict the cluster of each sample, the argmax of σ.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Index of the cluster each sample belongs to.
        """
        X, head = self._validate_for_inference(X)
        return self._labels(head, X)

    def predict_proba(self, X):
        """Soft cluster memberships σ, the softmax of the head's logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        probs : ndarray of shape (n_samples, n_clusters)
            Probability of each cluster for each sample; rows sum to one.
        """
        X, head = self._validate_for_inference(X)
        return self._log_probs(head, X).exp().cpu().numpy()

    def transform(self, X):
        """Transform X to soft cluster memberships σ, as ``predict_proba``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_clusters)
            Probability of each cluster for each sample; rows sum to one.
        """
        return self.predict_proba(X)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the maximum-margin entropy clustering loss on X.

        Evaluates on the whole of X, with this estimator's ``fairness_weight``
        λ, ``prior`` u and ``gamma`` γ, the loss

            mean H(σ) + λ KL(σ̄‖u) + γ‖v‖²,

        eq. (11) of Zhang et al. in the KL form of their supplement eq. (a),
        i.e. decisiveness, fairness and margin. Higher is better. It is the
        training loss of :class:`~skentropy.MaxMarginEntropyClustering`, and
        the loss that the self-labeling losses of
        :class:`~skentropy.EntropyClustering` and
        :class:`~skentropy.CollisionCEClustering` stand in for. It depends on
        ``gamma`` and ``fairness_weight``, so do not compare scores across
        values of those; tune them with a label-based scorer instead.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        y : Ignored
            Not used, present here for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the means over X.

        Returns
        -------
        score : float
            Opposite of the loss on X.
        """
        X, head = self._validate_for_inference(X)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        prior = _check_prior(self.prior, self.n_clusters)
        log_probs = self._log_probs(head, X)
        weight = _to_tensor(sample_weight, like=log_probs)
        with torch.no_grad():
            loss = (
                losses.decisiveness(log_probs, weight)
                + self.fairness_weight * losses.fairness(log_probs, prior, weight)
                + self.gamma * losses.margin(head.margin_weight)
            )
        return -loss.item()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _check_prior(prior, n_clusters):
    """Target cluster proportions u as a float64 array; ``None`` stays uniform."""
    if prior is None:
        return None
    prior = check_array(prior, ensure_2d=False, dtype=np.float64, input_name="prior")
    if prior.shape != (n_clusters,):
        raise ValueError(
            f"prior must have one entry per cluster, shape ({n_clusters},); got "
            f"shape {prior.shape}."
        )
    if np.any(prior <= 0):
        raise ValueError(f"prior must have positive entries; got {prior}.")
    if not np.isclose(prior.sum(), 1.0, rtol=0.0, atol=1e-6):
        raise ValueError(f"prior must sum to 1; got a sum of {prior.sum():.6g}.")
    return prior


def _seed_prototypes(X, sample_weight, n_clusters, init_size, random_state):
    """k-means++ seeds of a random subset of at most ``init_size`` rows of X."""
    if X.shape[0] > init_size:
        rows = np.sort(random_state.choice(X.shape[0], init_size, replace=False))
        X, sample_weight = X[rows], sample_weight[rows]
    prototypes, _ = kmeans_plusplus(
        X, n_clusters, sample_weight=sample_weight, random_state=random_state
    )
    return prototypes


def _optimizer_state(optimizer, name):
    """The optimizer's per-parameter state (e.g. Adam's moments) as numpy."""
    return {
        "optimizer": name,
        "state": {
            index: {
                key: value.detach().cpu().numpy()
                for key, value in saved.items()
                if isinstance(value, torch.Tensor)
            }
            for index, saved in optimizer.state_dict()["state"].items()
        },
    }


def _resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available.")
    return torch.device(device)


def _torch_dtype(dtype):
    return torch.float32 if dtype == np.float32 else torch.float64


def _torch_generator(random_state):
    """A CPU torch generator seeded from a numpy RandomState."""
    seed = random_state.randint(np.iinfo(np.int32).max)
    return torch.Generator().manual_seed(seed)


def _to_tensor(array, like):
    """A copy of (a chunk of) an array as a tensor of ``like``'s dtype and device."""
    return torch.tensor(array, dtype=like.dtype, device=like.device)


def _n_batches(n_samples, batch_size):
    return -(-n_samples // batch_size)


def _batch_bounds(n_samples, batch_size):
    """(start, stop) of consecutive batches of at most ``batch_size`` rows."""
    return [
        (start, min(start + batch_size, n_samples))
        for start in range(0, n_samples, batch_size)
    ]


def _shuffled_batches(n_samples, batch_size, generator):
    """Row indices of one epoch's mini-batches: a random partition of the rows.

    The ``ceil(n_samples / batch_size)`` batches differ in size by at most one
    row (no small last batch). Indices are sorted within a batch, which keeps
    reads from a memory map local.
    """
    permutation = torch.randperm(n_samples, generator=generator).numpy()
    for rows in np.array_split(permutation, _n_batches(n_samples, batch_size)):
        yield np.sort(rows)
