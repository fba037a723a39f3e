"""Shared base of the entropy clustering estimators.

:class:`_BaseEntropyClustering` holds the parameters, the mini-batch training
loop and the whole public API. A concrete estimator implements one hook,
:meth:`~_BaseEntropyClustering._batch_loss`: its loss on one mini-batch without
the margin term γ‖v‖² and without the cross-entropy on labeled samples of
weak supervision (``semi_supervised``), which the base adds. The base also
builds the heads (:meth:`~_BaseEntropyClustering._make_head`: linear or
Norm-FC), trains ``n_heads`` of them at once and keeps the one with the
lowest training loss.
"""

import contextlib
import copy
import functools
import itertools
import math
import threading
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
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from skentropy import _deep, losses
from skentropy._heads import HEADS, input_standardization, make_head
from skentropy._prior import check_prior

_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}

# A new head is seeded by k-means++ on at most this many mini-batches of rows
# (MiniBatchKMeans' init_size is also 3 batches).
_INIT_SIZE_BATCHES = 3
# Contiguous mini-batches need rows in random order: the analysis of variance
# of _looks_randomly_ordered tests it on this many batches of each epoch, and
# its F statistic (expectation 1 in a random order) must stay below this.
_ORDER_TEST_BATCHES = 16
_ORDER_TEST_RATIO = 1.5
# The margin weight of a new model grows linearly from 0 to γ over this many
# epochs (see _margin_scale).
_MARGIN_WARMUP_EPOCHS = 10


# The parameters and attributes of deep mode, the same for every estimator,
# replace these marker lines in the subclasses' docstrings.
_DEEP_PARAMETERS_MARKER = "    <deep mode parameters>\n"
_DEEP_PARAMETERS_DOC = """\
    module : torch.nn.Module class or instance, default=None
        Feature network f_w of deep mode: the estimator then trains
        σ(v f_w(X) + b), network and head together, on its loss, by a
        ``skorch.NeuralNet`` (the fitted ``net_``), and the samples of X may
        have any shape, e.g. images of shape (C, H, W). A class is built with
        the ``module__*`` parameters, and with ``input_shape=X.shape[1:]``
        if it takes that argument and it is not given (e.g.
        :class:`~skentropy.nets.VGG4`); an instance is copied, never trained
        in place. ``None`` trains the head on the features X themselves.
        See :ref:`deep`.

    augment : callable, default=None
        Self-augmentation of deep mode: a random transformation t of a batch
        of samples (a tensor), called as ``augment(batch, generator=g)`` if
        it takes a ``generator`` (a CPU :class:`torch.Generator` seeded from
        ``random_state``), else as ``augment(batch)``, e.g.
        :class:`~skentropy.augment.SelfAugmentation`. σ_i is then the mean
        of σ over ``n_augmentations`` views t(X_i) (entropy paper supplement
        E.3). Samples of shape (H, W) are augmented as one-channel images.
        ``None``: σ_i = σ(X_i).

    n_augmentations : int, default=2
        Number of augmented views of each sample with ``augment``; the papers
        use 2.

    callbacks : list of skorch callbacks or (name, callback) tuples, \
default=None
        Extra callbacks of deep mode (``skorch.callbacks``, e.g.
        ``Checkpoint`` or ``LRScheduler``), added to the estimator's own:
        early stopping on the training loss (``tol``, ``n_iter_no_change``)
        and, with ``verbose >= 2``, a progress bar over the batches. Each
        training uses copies of them.

    **kwargs : dict
        ``module__<name>=value`` parameters: the keyword arguments that the
        ``module`` class is built with, tunable by ``set_params`` and
        :class:`~sklearn.model_selection.GridSearchCV`, as in skorch.
"""
_DEEP_ATTRIBUTES_MARKER = "    <deep mode attributes>\n"
_DEEP_ATTRIBUTES_DOC = """\
    net_ : skorch.NeuralNet
        Deep mode only: the trained net. Its ``module_`` holds the feature
        network (``module_.backbone``) and the heads (``module_.heads``), its
        ``history`` the loss of every epoch and batch. It pickles and loads on
        a machine without CUDA. The head's parameters (e.g. ``coef_``) are
        then those on the features f_w(X).
"""


class _BaseEntropyClustering(
    ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, BaseEstimator, ABC
):
    """Base class for the discriminative entropy clustering estimators.

    Trains a softmax head σ(vᵀx + b) on mini-batches of X to minimize the loss
    of the subclass plus the margin term γ‖v‖² (bias excluded), plus, with
    ``semi_supervised=True``, the mean cross-entropy −ln σ_{i,y_i} of the
    labeled samples of the mini-batch, and provides ``fit``, ``partial_fit``,
    ``predict``, ``predict_proba``, ``transform`` and ``score``.

    The parameters ``head``, ``n_heads``, ``temperature`` and
    ``semi_supervised`` have defaults here, so that a subclass that does not
    list them in its ``__init__`` still works (without them being tunable).
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
        "head": [StrOptions(set(HEADS))],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "semi_supervised": ["boolean"],
        "module": [None, callable],
        "augment": [None, callable],
        "n_augmentations": [Interval(Integral, 1, None, closed="left")],
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
        vars(self).update(kwargs)  # module__* parameters, as skorch stores them

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__:
            cls.__doc__ = cls.__doc__.replace(
                _DEEP_PARAMETERS_MARKER, _DEEP_PARAMETERS_DOC
            ).replace(_DEEP_ATTRIBUTES_MARKER, _DEEP_ATTRIBUTES_DOC)

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
        params.update(
            (key, value) for key, value in vars(self).items()
            if key.startswith("module__")
        )
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

    @abstractmethod
    def _batch_loss(self, log_probs, prior, sample_weight):
        """Loss of one mini-batch, without the margin term γ‖v‖².

        The base adds the margin term and, with ``semi_supervised=True``, the
        cross-entropy of the labeled rows of the batch.

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

    def _check_continuation(self):
        """Check that training can continue from the fitted heads."""
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

    def _check_partial_labels(self, y, n_samples):
        """Labels of weak supervision as int64 (−1 = unlabeled), or None.

        ``None`` when ``semi_supervised`` is False (y is ignored), when y is
        None, or when no sample is labeled.
        """
        if not self.semi_supervised:
            return None
        return _partial_labels(y, n_samples, self.n_clusters)

    def _continues_training(self):
        """Whether ``fit`` starts from the fitted parameters (``warm_start``)."""
        return self.warm_start and hasattr(self, "n_iter_")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Train the clustering model on X.

        Runs ``n_init`` trainings of at most ``max_iter`` epochs each (a single
        one continuing from the fitted parameters if ``warm_start``), each of
        ``n_heads`` heads at once, and keeps the head with the lowest training
        loss in its last epoch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. float32 data trains in float32, anything else in
            float64. Only mini-batches are copied, so read-only memory maps
            work.

        y : array-like of shape (n_samples,), default=None
            Ignored unless ``semi_supervised=True``. Then the cluster (class)
            index in ``0..n_clusters - 1`` of each labeled sample and -1 for
            each unlabeled one; ``None`` means that no sample is labeled.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the losses. ``None`` gives every sample
            weight one.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        self._check_deep_params()
        if self.module is not None:
            return self._fit_network(X, y, sample_weight, partial=False)
        warm = self._continues_training()
        if warm:
            self._check_continuation()
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=not warm)
        _check_magnitude(X)
        self._check_params_vs_input(X)
        y = self._check_partial_labels(y, X.shape[0])
        prior = _check_prior(self.prior, self.n_clusters)
        random_state = check_random_state(self.random_state)
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=X.dtype, ensure_non_negative=True
        )
        device = _resolve_device(self.device)

        best = None
        n_init = 1 if warm else self.n_init
        for init in range(n_init):
            heads, generator = self._initial_heads(
                X, y, sample_weight, random_state, device, warm=warm
            )
            optimizer = self._make_optimizer(heads)
            head_losses, n_iter, loss_curve, converged = self._fit_single(
                X,
                y,
                sample_weight,
                heads,
                optimizer,
                prior,
                generator,
                description=f"init {init + 1}/{n_init}",
                warmup=not warm,
            )
            if best is None or head_losses.min() < best[2].min():
                best = heads, optimizer, head_losses, n_iter, loss_curve, converged
        heads, optimizer, head_losses, n_iter, loss_curve, converged = best

        if not converged:
            warnings.warn(
                f"Training stopped at max_iter={self.max_iter} epochs while the "
                f"training loss still improved by more than tol={self.tol}; "
                "consider increasing max_iter.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_fitted_heads(heads, head_losses)
        log_probs = self._log_probs(heads[self.best_head_], X)
        labels = log_probs.argmax(dim=1).cpu().numpy()
        _warn_degenerate(log_probs, labels, sample_weight, stacklevel=2)

        vars(self).pop("net_", None)  # of a deep model fitted before
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

        y : array-like of shape (n_samples,), default=None
            Ignored unless ``semi_supervised=True``. Then the cluster (class)
            index in ``0..n_clusters - 1`` of each labeled sample of the chunk
            and -1 for each unlabeled one; ``None`` means that no sample is
            labeled.

        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the losses. ``None`` gives every sample
            weight one.

        Returns
        -------
        self : object
            Updated estimator.

        Notes
        -----
        Streaming data that does not fit in memory: write X to disk once, in
        random row order (e.g. with :func:`numpy.save`), open it as a
        read-only memory map (``numpy.load(path, mmap_mode="r")``) and call
        ``partial_fit`` on its successive slices, as many passes as ``fit``
        would make epochs. Each slice is read from disk contiguously and only
        its mini-batches are copied, so memory holds one chunk at most. The
        first call seeds the clusters on its chunk, so every chunk should be
        large enough to hold all clusters (thousands of rows). Over the same
        number of epochs this reaches the quality of ``fit`` on the whole
        array. ``fit`` also accepts the memory map directly, copying only
        mini-batches: when the rows look randomly ordered (and there are at
        least 16 batches) it reads contiguous batches in a random order;
        otherwise it gathers the rows of shuffled mini-batches from all over
        the file, which is slow once the file exceeds the page cache.
        For a chunked :class:`dask.array.Array`, see :mod:`skentropy.dask`.

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from sklearn.datasets import make_blobs
        >>> from sklearn.metrics import adjusted_rand_score
        >>> from skentropy import EntropyClustering
        >>> centers = [[0, 4], [4, -2], [-4, -2]]
        >>> X, y = make_blobs(n_samples=900, centers=centers, random_state=0)
        >>> clustering = EntropyClustering(n_clusters=3, random_state=0)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.save(Path(folder) / "X.npy", X)  # rows already shuffled
        ...     X_map = np.load(Path(folder) / "X.npy", mmap_mode="r")
        ...     for epoch in range(5):
        ...         for start in range(0, X_map.shape[0], 300):
        ...             clustering = clustering.partial_fit(X_map[start:start + 300])
        ...     labels = clustering.predict(X_map)
        ...     del X_map  # close the file before its folder goes
        >>> clustering.n_iter_  # one per call
        15
        >>> adjusted_rand_score(y, labels) > 0.95
        True
        """
        self._check_deep_params()
        if self.module is not None:
            return self._fit_network(X, y, sample_weight, partial=True)
        first_call = not hasattr(self, "n_iter_")
        if not first_call:
            self._check_continuation()
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=first_call)
        _check_magnitude(X)
        if first_call:
            self._check_params_vs_input(X)
        y = self._check_partial_labels(y, X.shape[0])
        prior = _check_prior(self.prior, self.n_clusters)
        self._random_state = getattr(
            self, "_random_state", check_random_state(self.random_state)
        )
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=X.dtype, ensure_non_negative=True
        )
        device = _resolve_device(self.device)

        heads, generator = self._initial_heads(
            X, y, sample_weight, self._random_state, device, warm=not first_call
        )
        optimizer = self._make_optimizer(
            heads, state=None if first_call else self._optimizer_state
        )
        head_losses = self._run_epoch(
            X,
            y,
            sample_weight,
            heads,
            optimizer,
            prior,
            generator,
            margin_scale=_margin_scale(0 if first_call else self.n_iter_),
        )
        self._set_fitted_heads(heads, head_losses)
        labels = self._labels(heads[self.best_head_], X)
        loss = float(head_losses.min())

        n_steps = _n_batches(X.shape[0], self.batch_size)
        self._optimizer_state = _optimizer_state(optimizer, self.optimizer)
        self._n_features_out = self.n_clusters
        self.labels_ = labels
        self.n_iter_ = 1 if first_call else self.n_iter_ + 1
        self.n_steps_ = n_steps if first_call else self.n_steps_ + n_steps
        self.loss_curve_ = [loss] if first_call else [*self.loss_curve_, loss]
        self.converged_ = False
        return self

    # -- Deep mode: a feature network trained with the heads, through skorch --

    def _check_deep_params(self):
        """Raise where deep-mode parameters are set without a ``module``."""
        if self.module is not None:
            _deep.check_skorch()
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

    def _module_params(self, prefixed=False):
        """The ``module__*`` parameters, with or without their prefix."""
        return {
            key if prefixed else key.removeprefix("module__"): value
            for key, value in vars(self).items()
            if key.startswith("module__")
        }

    def _validate_network_input(self, X, *, reset):
        """X for the network as float32; samples of any shape, e.g. (C, H, W).

        Later calls must give samples of the shape that ``fit`` saw.
        """
        X = validate_data(self, X, dtype=np.float32, allow_nd=True, reset=reset)
        if reset:
            self._input_shape = X.shape[1:]
        elif X.shape[1:] != self._input_shape:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but {type(self).__name__} "
                f"was fitted on samples of shape {self._input_shape}."
            )
        return X

    def _fit_network(self, X, y, sample_weight, *, partial):
        """``fit``, or one epoch of ``partial_fit``, of deep mode.

        A :class:`skorch.NeuralNet` trains the network ``module`` and the
        heads on this estimator's loss (see :mod:`skentropy._deep`): ``fit``
        runs ``n_init`` new trainings of at most ``max_iter`` epochs, each
        stopped early on the training loss, or, with ``warm_start``, continues
        the fitted net; ``partial_fit`` runs one epoch.
        """
        if partial:
            new = not hasattr(self, "n_iter_")
            self._random_state = getattr(
                self, "_random_state", check_random_state(self.random_state)
            )
            random_state = self._random_state
        else:
            new = not self._continues_training()
            random_state = check_random_state(self.random_state)
        if not new:
            self._check_continuation()
        X = self._validate_network_input(X, reset=new)
        if new:
            self._check_params_vs_input(X)
        y = self._check_partial_labels(y, X.shape[0])
        prior = _check_prior(self.prior, self.n_clusters)
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float32, ensure_non_negative=True
        )
        device = _resolve_device(self.device)
        data = {"X": X, "sample_weight": sample_weight}
        if y is not None:
            data["labels"] = y
        if prior is not None:
            prior = torch.tensor(prior, dtype=torch.float32, device=device)
        train = functools.partial(
            _train_network,
            data=data,
            epochs=1 if partial else self.max_iter,
            batch_loss=functools.partial(self._network_losses, prior=prior),
            random_state=random_state,
            device=device,
        )
        if new:
            best = None
            for _ in range(1 if partial else self.n_init):
                net = self._new_network(X, y, sample_weight, random_state, device)
                head_losses, loss_curve = train(net)
                if best is None or head_losses.min() < best[1].min():
                    best = net, head_losses, loss_curve
            net, head_losses, loss_curve = best
        else:
            net = self.net_
            net.set_params(lr=self.lr)
            head_losses, loss_curve = train(net)

        self._set_fitted_heads(net.module_.heads, head_losses)
        log_probs = _deep.log_probs(net, X, self.best_head_)
        labels = log_probs.argmax(dim=1).numpy()
        n_steps = len(loss_curve) * _n_batches(X.shape[0], self.batch_size)
        if partial and not new:
            loss_curve = [*self.loss_curve_, *loss_curve]
            n_steps += self.n_steps_
        converged = not partial and len(loss_curve) < self.max_iter
        if not partial:
            _warn_degenerate(log_probs, labels, sample_weight, stacklevel=3)
        if not (partial or converged):
            warnings.warn(
                f"Training stopped at max_iter={self.max_iter} epochs while the "
                f"training loss still improved by more than tol={self.tol}; "
                "consider increasing max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.net_ = net
        self._n_features_out = self.n_clusters
        self.labels_ = labels
        self.n_iter_ = len(loss_curve)
        self.n_steps_ = n_steps
        self.loss_curve_ = loss_curve
        self.converged_ = converged
        return self

    def _new_network(self, X, y, sample_weight, random_state, device):
        """A new, initialized skorch net with heads seeded on f_w(X).

        skorch builds the network from ``module`` and ``module__*`` inside a
        forked torch RNG seeded from ``random_state``. Each head is then
        seeded by k-means++ on the features f_w of a random subset of X, as in
        the shallow estimators on X itself.
        """
        seed = random_state.randint(np.iinfo(np.int32).max)
        callbacks = _deep.default_callbacks(
            self.n_iter_no_change, self.tol, self.verbose
        )
        callbacks += copy.deepcopy(self.callbacks or [])
        net = _deep.ClusteringNet(
            _deep.ClusteringModule,
            module__backbone=self.module,
            module__backbone_params=self._module_params(),
            module__input_shape=X.shape[1:],
            module__n_clusters=self.n_clusters,
            module__n_heads=self.n_heads,
            module__head=self.head,
            module__temperature=self.temperature,
            augment=self.augment,
            n_augmentations=self.n_augmentations,
            optimizer=_OPTIMIZERS[self.optimizer],
            lr=self.lr,
            optimizer__weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            generator=_torch_generator(random_state),
            callbacks=callbacks,
            train_split=None,
            verbose=self.verbose,
            device=str(device),
        )
        with _deep.seeded_rng(seed, device):
            net.initialize()
            if X.shape[0] > self._init_size():
                rows = random_state.choice(X.shape[0], self._init_size(), replace=False)
                rows = np.sort(rows)
            else:
                rows = np.arange(X.shape[0])
            features = _deep.features(net, X[rows], self.batch_size)
        if not np.all(np.isfinite(features)):
            raise ValueError(
                "The network gives non-finite features for some samples of X; "
                "scale X (e.g. images to [0, 1]) or check the module."
            )
        self._reset_heads(
            net.module_.heads,
            features,
            None if y is None else y[rows],
            sample_weight[rows],
            random_state,
        )
        return net

    def _network_losses(self, module, log_probs, sample_weight, labels, *, prior):
        """The training loss of each head on a batch; ``log_probs`` (n, H, K)."""
        return torch.stack(
            [
                self._loss(
                    log_probs[:, index], head.margin_weight, labels, prior,
                    sample_weight,
                )
                for index, head in enumerate(module.heads)
            ]
        )

    def _fit_single(
        self,
        X,
        y,
        sample_weight,
        heads,
        optimizer,
        prior,
        generator,
        description,
        warmup,
    ):
        """Train ``heads`` for at most ``max_iter`` epochs.

        The training loss of an epoch is the lowest of the heads' losses.
        Stops early, as :class:`~sklearn.neural_network.MLPClassifier` does,
        once the training loss of an epoch has not been lower than the best
        so far minus ``tol`` for more than ``n_iter_no_change`` epochs in a row.
        With ``warmup`` (new heads), the margin weight grows over the first
        epochs (:func:`_margin_scale`) and the stopping rule starts once it
        is whole.

        Returns
        -------
        head_losses : ndarray of shape (n_heads,)
            Training loss of each head in the last epoch.

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
            for epoch in epochs:
                if warmup and epoch == _MARGIN_WARMUP_EPOCHS:
                    best_loss, n_no_improvement = np.inf, 0  # the full loss begins
                head_losses = self._run_epoch(
                    X,
                    y,
                    sample_weight,
                    heads,
                    optimizer,
                    prior,
                    generator,
                    margin_scale=_margin_scale(epoch) if warmup else 1.0,
                )
                loss = float(head_losses.min())
                loss_curve.append(loss)
                epochs.set_postfix(loss=f"{loss:.5g}")
                if loss > best_loss - self.tol:
                    n_no_improvement += 1
                else:
                    n_no_improvement = 0
                best_loss = min(best_loss, loss)
                if n_no_improvement > self.n_iter_no_change:
                    return head_losses, len(loss_curve), loss_curve, True
        return head_losses, len(loss_curve), loss_curve, False

    def _run_epoch(
        self, X, y, sample_weight, heads, optimizer, prior, generator, margin_scale
    ):
        """One pass over X in shuffled mini-batches; the mean loss of each head.

        The margin term weighs ``margin_scale`` · γ (see :func:`_margin_scale`).

        All heads see the same mini-batches; one optimizer step on the sum of
        their losses trains each head on its own loss (they share no
        parameter). The batches are contiguous slices of X (no copy) in a
        random order when X looks randomly ordered, and a random partition
        of its rows otherwise (see :func:`_epoch_batches`).
        """
        parameter = next(heads.parameters())
        if prior is not None:
            prior = _to_tensor(prior, like=parameter)
        weights = _to_tensor(sample_weight, like=parameter)
        labels = None if y is None else torch.tensor(y, device=parameter.device)
        some_zero_weight = not np.all(sample_weight > 0)
        read = _BatchReader(X, self.batch_size, like=parameter)
        total_loss = torch.zeros(
            len(heads), dtype=parameter.dtype, device=parameter.device
        )
        batches = _epoch_batches(X, self.batch_size, generator, contiguous=y is None)
        with _one_thread():
            for rows in batches:
                if some_zero_weight and not sample_weight[rows].any():
                    continue  # zero weights drop rows, and here a whole batch
                weight = weights[rows]
                X_batch = read(rows)
                y_batch = None if labels is None else labels[rows]
                head_losses = torch.stack(
                    [
                        self._head_loss(
                            head, X_batch, y_batch, prior, weight, margin_scale
                        )
                        for head in heads
                    ]
                )
                optimizer.zero_grad()
                head_losses.sum().backward()
                optimizer.step()
                total_loss += head_losses.detach() * weight.sum()
        mean_losses = total_loss.cpu().numpy() / sample_weight.sum()
        if not np.all(np.isfinite(mean_losses)):
            raise ValueError(
                f"The training loss became {mean_losses.max()}: the steps are "
                "too large (decrease lr), or the features of X span so many "
                "orders of magnitude that some are lost in its dtype (scale "
                "the features, e.g. with StandardScaler, or pass float64)."
            )
        return mean_losses

    def _head_loss(self, head, X_batch, y_batch, prior, weight, margin_scale):
        """Loss of one head on one mini-batch: the subclass loss, margin, labels.

        ``y_batch`` holds the labels of the batch (−1 = unlabeled), or is None
        without weak supervision.
        """
        log_probs = torch.log_softmax(head(X_batch), dim=1)
        return self._loss(
            log_probs, head.margin_weight, y_batch, prior, weight, margin_scale
        )

    def _loss(self, log_probs, margin_weight, labels, prior, weight, margin_scale=1.0):
        """The training loss of one head on one batch, from its ln σ.

        The subclass loss, plus the margin term γ‖v‖² on the head's weights
        v (times ``margin_scale`` during the warm-up, see
        :func:`_margin_scale`), plus, with labels (−1 = unlabeled), the
        cross-entropy of the labeled rows.
        """
        loss = self._batch_loss(log_probs, prior, weight)
        loss = loss + margin_scale * self.gamma * losses.margin(margin_weight)
        if labels is not None:
            loss = loss + _labeled_cross_entropy(log_probs, labels, weight)
        return loss

    def _make_head(self, n_features):
        """A new head with unset parameters: the one place where heads plug in."""
        return make_head(self.head, n_features, self.n_clusters, self.temperature)

    def _initial_heads(self, X, y, sample_weight, random_state, device, *, warm):
        """The heads to train, in the dtype of X, and the torch generator.

        New heads, or the fitted ones (``warm``), as a
        :class:`torch.nn.ModuleList`. Each new head starts as a soft
        nearest-prototype classifier on its own k-means++ seeds of (a random
        subset of) X, so that every cluster starts with some points; with
        weak supervision (labels ``y``, −1 = unlabeled), a cluster with labeled
        samples is seeded at their weighted mean instead (as seeded k-means,
        Basu et al. 2002), so that cluster k starts at class k. New heads
        see X through the standardization z = (x − x̄)/s of
        :func:`~skentropy._heads.input_standardization` (mean x̄ and
        root-mean-square distance s to it, fixed from here on), so that the
        initialization, the steps and the margin term mean the same for X
        and c·X. Random fixed parameters (Norm-FC prototypes) come from the
        returned generator, which then shuffles the mini-batches.
        """
        dtype = _torch_dtype(X.dtype)
        if warm:
            heads = self._fitted_heads(device).to(dtype=dtype)
            return heads, _torch_generator(random_state)
        heads = nn.ModuleList(
            self._make_head(X.shape[1]).to(dtype=dtype, device=device)
            for _ in range(self.n_heads)
        )
        center, scale = input_standardization(X, sample_weight)
        for head in heads:
            head.standardize(center, scale)
        generator = self._reset_heads(heads, X, y, sample_weight, random_state)
        return heads, generator

    def _init_size(self):
        """How many rows (at most) the k-means++ seeds of a head are drawn from."""
        return max(_INIT_SIZE_BATCHES * self.batch_size, 3 * self.n_clusters)

    def _reset_heads(self, heads, X, y, sample_weight, random_state):
        """Seed each head on its own k-means++ seeds of (a subset of) X.

        Labeled clusters (weak supervision) are seeded at the weighted mean
        of their labeled rows. Returns the torch generator that drew the
        heads' random fixed parameters, seeded from ``random_state``.
        """
        seeds, samples = zip(
            *(
                _seed_prototypes(
                    X, sample_weight, self.n_clusters, self._init_size(), random_state
                )
                for _ in heads
            ),
            strict=True,
        )
        generator = _torch_generator(random_state)
        if y is not None:
            class_means = _class_means(X, y, sample_weight, self.n_clusters)
            labeled = ~np.isnan(class_means[:, 0])
            for head_seeds in seeds:
                head_seeds[labeled] = class_means[labeled]
        for head, head_seeds, sample in zip(heads, seeds, samples, strict=True):
            head.reset_parameters(head_seeds, generator=generator, sample=sample)
        return generator

    def _fitted_heads(self, device):
        """All fitted heads as a :class:`torch.nn.ModuleList`, in the fitted dtype."""
        if self.head != self._head_config["head"]:
            raise ValueError(
                f"head={self.head!r} differs from head="
                f"{self._head_config['head']!r} of the fitted model; refit it."
            )
        heads = nn.ModuleList()
        for saved in self._head_states:
            head = self._make_head(self.n_features_in_)
            state = {key: torch.tensor(value) for key, value in saved.items()}
            head.load_state_dict(state, assign=True)  # keeps the fitted dtype
            heads.append(head)
        return heads.to(device=device)

    def _fitted_head(self, device):
        """The selected fitted head, the one with the lowest training loss."""
        return self._fitted_heads(device)[self.best_head_]

    def _set_fitted_heads(self, heads, head_losses):
        """Store every head's state as numpy arrays on the CPU, select the best.

        The selected head's parameters also become the public fitted
        attributes named by its ``fitted_attributes`` (e.g. ``coef_``); those
        of another kind of head fitted before are removed.
        """
        self._head_states = [
            {
                key: value.detach().cpu().numpy()
                for key, value in head.state_dict().items()
            }
            for head in heads
        ]
        self._head_config = {"head": self.head, "n_heads": len(heads)}
        self.head_losses_ = np.asarray(head_losses, dtype=np.float64)
        self.best_head_ = int(np.argmin(self.head_losses_))
        for other in HEADS.values():
            for attribute in other.fitted_attributes:
                if hasattr(self, attribute):
                    delattr(self, attribute)
        vars(self).update(heads[self.best_head_].fitted_values())

    def _make_optimizer(self, heads, state=None):
        """The optimizer over the heads, resuming from a saved ``state``."""
        optimizer = _OPTIMIZERS[self.optimizer](
            heads.parameters(), lr=self.lr, weight_decay=self.weight_decay
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

    def _inference(self, X):
        """ln σ of the selected head on X, the validated X, the head's v.

        In deep mode the fitted network runs where it was fitted (on the CPU
        once unpickled on a machine without CUDA).
        """
        check_is_fitted(self)
        if hasattr(self, "net_"):
            X = self._validate_network_input(X, reset=False)
            head = self.net_.module_.heads[self.best_head_]
            return _deep.log_probs(self.net_, X, self.best_head_), X, head
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        _check_magnitude(X)
        head = self._fitted_head(_resolve_device(self.device))
        return self._log_probs(head, X), X, head

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
        log_probs, _, _ = self._inference(X)
        return log_probs.argmax(dim=1).cpu().numpy()

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
        log_probs, _, _ = self._inference(X)
        return log_probs.exp().cpu().numpy()

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
        log_probs, X, head = self._inference(X)
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=X.dtype, ensure_non_negative=True
        )
        prior = _check_prior(self.prior, self.n_clusters)
        weight = _to_tensor(sample_weight, like=log_probs)
        with torch.no_grad():
            loss = losses.max_margin_entropy(
                log_probs,
                prior,
                weight,
                fairness_weight=self.fairness_weight,
                weight=head.margin_weight.to(log_probs),
                gamma=self.gamma,
            )
        return -loss.item()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _train_network(net, *, data, epochs, batch_loss, random_state, device):
    """Train a skorch net for up to ``epochs`` epochs on ``data``.

    The net's own generator shuffles the batches and draws the
    augmentations; torch's global RNG (dropout) is forked and seeded from
    ``random_state``. Returns the mean loss of each head in the last epoch and the
    training loss (the lowest of the heads') of every epoch run.
    """
    seed = random_state.randint(np.iinfo(np.int32).max)
    n_before = len(net.history)
    net.set_params(max_epochs=epochs)
    with _deep.seeded_rng(seed, device):
        net.partial_fit(data, batch_loss=batch_loss)
    head_losses = [
        _deep.epoch_head_losses(epoch) for epoch in list(net.history)[n_before:]
    ]
    return head_losses[-1], [float(losses.min()) for losses in head_losses]


def _partial_labels(y, n_samples, n_clusters):
    """Labels of weak supervision as int64 (−1 = unlabeled), or None.

    Validates y: one integer-valued label per sample, each in −1..K−1.
    ``None`` when y is None or no sample is labeled.
    """
    if y is None:
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


def _class_means(X, y, sample_weight, n_clusters):
    """Weighted mean of the rows labeled k, for each k (NaN rows: no label k)."""
    labeled = np.flatnonzero((y >= 0) & (sample_weight > 0))
    sums = np.zeros((n_clusters, X.shape[1]))
    totals = np.zeros(n_clusters)
    np.add.at(sums, y[labeled], X[labeled] * sample_weight[labeled, None])
    np.add.at(totals, y[labeled], sample_weight[labeled])
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / totals[:, None]


def _labeled_cross_entropy(log_probs, labels, sample_weight):
    """Mean cross-entropy −ln σ_{i,y_i} over the labeled rows (y_i ≥ 0).

    The supervised term of weak supervision (collision-cross-entropy §5.3,
    entropy-clustering-kmeans-svm supplement E.4): the standard cross-entropy
    on the labeled data, added to the clustering loss. Zero when no row of
    positive weight is labeled.
    """
    labeled = (labels >= 0) & (sample_weight > 0)
    if not labeled.any():
        return log_probs.new_zeros(())
    targets = nn.functional.one_hot(labels[labeled], log_probs.shape[1])
    return losses.cross_entropy(
        targets.to(log_probs.dtype), log_probs[labeled], sample_weight[labeled]
    )


def _margin_scale(epoch):
    """The fraction of γ that the margin term weighs in epoch ``epoch`` (from 0).

    The margin weight of a new model grows linearly, epoch/10, over its first
    ``_MARGIN_WARMUP_EPOCHS`` = 10 epochs, and is γ from then on. At the
    start the predictions σ are soft, and a margin term at full weight keeps
    them soft (it shrinks v); then the self-labeling losses let a cluster
    die: with σ soft, the fairness of the pseudo-labels is met by spreading
    the dying cluster's share thinly over all points, at a cost of about
    ln(1/(1 − u_k)) per point, which never makes it the argmax of σ.
    Measured on MNIST-5k features, standardized: γ at full weight from the
    first step left 6 to 9 of 10 clusters in use; growing it over 10 epochs
    kept all 10 and reached accuracy 0.71 (K-means 0.52).
    """
    return min(1.0, epoch / _MARGIN_WARMUP_EPOCHS)


def _warn_degenerate(log_probs, labels, sample_weight, *, stacklevel):
    """Warn (ConvergenceWarning) if the fitted clustering is degenerate.

    Two degenerate outcomes are never left silent:

    - empty clusters: no training sample (of positive weight) has its largest
      membership σ there, so the model uses fewer clusters than asked;
    - a trivial model: the mean prediction entropy of the training samples is
      above 0.95 ln K, so σ is nearly uniform and the argmax says little.

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_samples, n_clusters)
        ln σ of the training samples.

    labels : ndarray of shape (n_samples,)
        Their argmax.

    sample_weight : ndarray of shape (n_samples,)
        Their weights.

    stacklevel : int
        Of the caller, as for :func:`warnings.warn`.
    """
    n_clusters = log_probs.shape[1]
    used = sample_weight > 0
    counts = np.bincount(labels[used], minlength=n_clusters)
    n_empty = int(np.sum(counts == 0))
    causes = (
        "Likely causes: a margin weight gamma too large for the data (gamma "
        "is measured on X centered and scaled to unit root-mean-square norm; "
        "try gamma / 10), a fairness_weight too small, or more clusters than "
        "the data holds (try a smaller n_clusters)."
    )
    if n_empty:
        warnings.warn(
            f"{n_empty} of n_clusters={n_clusters} clusters hold no training "
            "sample (no sample has its largest membership there): the "
            f"clustering uses {n_clusters - n_empty} clusters. {causes}",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )
    if n_clusters < 2:
        return
    weight = torch.as_tensor(sample_weight, dtype=log_probs.dtype).to(log_probs)
    entropy = -(log_probs.exp() * log_probs).sum(dim=1)
    mean_entropy = float((weight * entropy).sum() / weight.sum())
    if mean_entropy > 0.95 * math.log(n_clusters):
        warnings.warn(
            f"The predictions are nearly uniform (mean entropy {mean_entropy:.3g}"
            f" of at most ln K = {math.log(n_clusters):.3g}): the clustering is "
            f"close to trivial. {causes}",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )


def _check_magnitude(X):
    """Raise a ValueError where squared distances between rows of X overflow.

    The heads start from squared distances between rows (k-means++ seeds,
    the temperature of the soft nearest-prototype classifier) and SeCu
    normalizes rows by their norms: with entries so large that the bound
    4 d max|x|² on ‖x − x'‖² exceeds the largest finite number of X's dtype,
    the losses would become infinite or NaN. Reads X twice (its maximum and
    minimum), copying nothing, so memory maps stay on disk.
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


def _check_prior(prior, n_clusters):
    """Target cluster proportions u as a float64 array; ``None`` stays uniform."""
    prior = check_prior(prior, n_clusters)
    return None if prior is None else prior.numpy()


def _seed_prototypes(X, sample_weight, n_clusters, init_size, random_state):
    """k-means++ seeds of a random subset of at most ``init_size`` rows of X.

    Returns the seeds, of shape (n_clusters, n_features), and the rows of X
    they were drawn from (of positive weight).
    """
    if X.shape[0] > init_size:
        rows = np.sort(random_state.choice(X.shape[0], init_size, replace=False))
        X, sample_weight = X[rows], sample_weight[rows]
    # A few thousand rows at most: one BLAS thread is as fast on an idle
    # machine and does not stall on a busy one.
    with threadpool_limits(limits=1, user_api="blas"):
        prototypes, _ = kmeans_plusplus(
            X, n_clusters, sample_weight=sample_weight, random_state=random_state
        )
    return prototypes, np.asarray(X)[sample_weight > 0]


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
    """(A chunk of) an array as a tensor of ``like``'s dtype and device.

    A view of the array, without a copy, where it can be one (see
    :func:`_can_view`), otherwise a copy: callers must not modify the tensor
    in place.
    """
    if _can_view(array, like):
        return torch.from_numpy(array)
    return torch.tensor(array, dtype=like.dtype, device=like.device)


def _can_view(array, like):
    """Whether a CPU tensor of ``like``'s dtype can view the array's memory.

    Only for a writable numpy array of that dtype with nonnegative strides:
    torch would warn on read-only arrays, such as memory maps, which are
    therefore copied.
    """
    return (
        like.device.type == "cpu"
        and isinstance(array, np.ndarray)
        and array.dtype == _NUMPY_DTYPES.get(like.dtype)
        and array.flags.writeable
        and min(array.strides, default=0) >= 0
    )


class _OneThread:
    """Context manager: torch's operations on one CPU thread (intra-op).

    The operations of a mini-batch step are small (a 250 × 2048 by 2048 × 10
    product takes 0.3 ms): a second thread gains little on an idle machine,
    and on a busy one every parallel region waits for a descheduled thread;
    on 2 shared cores, 2 threads made an epoch 3 to 20 times slower. The
    setting is global to the process, so concurrent fits (threads of a Dask
    worker) share one count: the first saves the setting, the last restores
    it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._n_users = 0
        self._saved = None

    @contextlib.contextmanager
    def __call__(self):
        with self._lock:
            if not self._n_users:
                self._saved = torch.get_num_threads()
                torch.set_num_threads(1)
            self._n_users += 1
        try:
            yield
        finally:
            with self._lock:
                self._n_users -= 1
                if not self._n_users:
                    torch.set_num_threads(self._saved)


_one_thread = _OneThread()


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


def _epoch_batches(X, batch_size, generator, *, contiguous=True):
    """One epoch's mini-batches of X: slices or row indices, in a random order.

    The ``ceil(n_samples / batch_size)`` batches differ in size by at most one
    row. With ``contiguous``, they are consecutive rows of X from a random
    offset (the batch that passes the end of X wraps to its start), visited
    in a random order: slices cost no copy and are read sequentially, where
    gathering random rows copies every batch (on the CPU, a quarter of the
    time of the forward and backward pass of a linear head). Contiguous
    batches are samples of the data only if its rows are in random order:
    rows sorted by class would make single-class batches, which the
    per-batch fairness term then spreads over all clusters. So they are
    used only if X has at least ``_ORDER_TEST_BATCHES`` batches (fewer are
    quick to gather, and too few for the test) and
    :func:`_looks_randomly_ordered` finds no sign of order in the first of
    them. Otherwise, and without ``contiguous``, the batches are a random
    partition of the rows (:func:`_shuffled_batches`).
    """
    n_samples = X.shape[0]
    n_batches = _n_batches(n_samples, batch_size)
    if contiguous and n_batches >= _ORDER_TEST_BATCHES:
        offset = int(torch.randint(n_samples, (), generator=generator))
        order = torch.randperm(n_batches, generator=generator).tolist()
        bounds = _equal_batch_bounds(n_samples, n_batches)
        batches = [_rotated_rows(*bounds[batch], offset, n_samples) for batch in order]
        if _looks_randomly_ordered(X, batches[:_ORDER_TEST_BATCHES]):
            return batches
    return list(_shuffled_batches(n_samples, batch_size, generator))


def _equal_batch_bounds(n_samples, n_batches):
    """(start, stop) of n_batches consecutive batches, sizes differing by ≤ 1."""
    size, n_larger = divmod(n_samples, n_batches)
    starts = [batch * size + min(batch, n_larger) for batch in range(n_batches + 1)]
    return list(itertools.pairwise(starts))


def _n_rows(rows, n_samples):
    """Number of rows of a slice or an index array."""
    return len(range(n_samples)[rows]) if isinstance(rows, slice) else len(rows)


def _rotated_rows(start, stop, offset, n_samples):
    """Rows start..stop−1 shifted by ``offset`` modulo n_samples.

    A slice, or the indices of the rows at the end and the start of X for the
    batch that wraps around.
    """
    if start + offset >= n_samples:
        offset -= n_samples
    start, stop = start + offset, stop + offset
    if stop <= n_samples:
        return slice(start, stop)
    return np.r_[start:n_samples, : stop - n_samples]


def _looks_randomly_ordered(X, batches):
    """Whether the means of these batches of X vary as in a random row order.

    A one-way analysis of variance, pooled over the features, with halves of
    batches: each batch b is split into halves of means h₁, h₂ and n₁, n₂
    rows. In a random order of the rows, both the spread of the batch means
    m_b around their mean m, Σ_b n_b ‖m_b − m‖² / (B − 1), and the spread
    within batches, mean_b ‖h₁ − h₂‖² n₁n₂ / n_b, estimate tr Σ (Σ the
    covariance of the rows); with rows sorted or grouped (by class, source,
    time) the first exceeds the second. Their ratio, an F statistic, must
    not exceed ``_ORDER_TEST_RATIO``. Only means are taken, summed in
    float64, never squares of X, so this stays exact for features far from
    zero, and it reads each batch once. Batches of single rows are always
    fine.
    """
    sizes = np.array([_n_rows(rows, X.shape[0]) for rows in batches])
    if sizes.min() < 2:
        return True
    half_sizes = np.stack([sizes // 2, sizes - sizes // 2], axis=1)
    half_means = np.array(
        [
            [half.mean(axis=0, dtype=np.float64) for half in np.split(X[rows], [size])]
            for rows, size in zip(batches, half_sizes[:, 0], strict=True)
        ]
    )
    means = np.einsum("bh,bhf->bf", half_sizes / sizes[:, None], half_means)
    mean = sizes @ means / sizes.sum()
    between = sizes @ np.square(means - mean).sum(axis=1) / (len(batches) - 1)
    spread = np.square(half_means[:, 0] - half_means[:, 1]).sum(axis=1)
    within = np.mean(spread * half_sizes.prod(axis=1) / sizes)
    return between <= _ORDER_TEST_RATIO * within


class _BatchReader:
    """Reads mini-batches of X as tensors of ``like``'s dtype and device.

    A slice of an in-memory X of the right dtype is a view, without a copy.
    Other batches (gathered rows, read-only arrays such as memory maps,
    another dtype, a GPU) are copied into one buffer reused for every batch,
    which saves the allocation and its page faults; a batch is thus valid
    until the next one is read.
    """

    def __init__(self, X, batch_size, like):
        self.X = X
        self.device = like.device
        self.view = torch.from_numpy(X) if _can_view(X, like) else None
        n_rows = min(X.shape[0], batch_size)
        self.buffer = torch.empty((n_rows, X.shape[1]), dtype=like.dtype)

    def __call__(self, rows):
        if self.view is not None and isinstance(rows, slice):
            return self.view[rows]
        out = self.buffer[: _n_rows(rows, self.X.shape[0])]
        if self.view is not None:
            torch.index_select(self.view, 0, torch.from_numpy(rows), out=out)
        else:
            out.numpy()[...] = self.X[rows]
        return out.to(self.device)
