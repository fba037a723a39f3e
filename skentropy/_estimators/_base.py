"""The public API of the softmax estimators, and their one training flow.

:class:`_BaseEntropyClustering` is what every softmax estimator shares:
``fit``, ``partial_fit``, ``predict``, ``predict_proba``, ``transform`` and
``score``. ``fit`` and ``partial_fit`` both go through
:meth:`~_BaseEntropyClustering._fit`, which hands the data to the trainer of
the estimator's mode (:mod:`~skentropy._estimators._shallow` on features,
``skentropy._deep`` with a ``module``) and sets the fitted attributes from
its result in one place. A concrete estimator declares its loss through
hooks:

- :meth:`~_BaseEntropyClustering._mini_batch_loss` (required): its loss on one
  mini-batch, without the margin term γ‖v‖² and the cross-entropy of the
  labeled samples of weak supervision, which are added to every loss;
- :meth:`~_BaseEntropyClustering._epoch_targets` (optional): targets of every
  sample, computed before each epoch and handed to the loss of each batch.
"""

import math
import warnings
from abc import ABC, abstractmethod

import numpy as np
import torch
from sklearn.base import (
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skentropy import losses
from skentropy._estimators._atomic import atomic_fit
from skentropy._estimators._batching import n_batches, to_tensor
from skentropy._estimators._heads import HEADS
from skentropy._estimators._params import (
    _ClusteringParameters,
    persistent_random_state,
    relative_sample_weight,
)
from skentropy._estimators._shallow import ShallowTrainer
from skentropy._estimators._training import Run, TrainingData, TrainingLoss
from skentropy._prior import PriorEstimate, check_prior
from skentropy._torch_utils import resolve_device

# Warnings of fit and partial_fit point at their caller: the warning is issued
# in _set_fitted, called by _fit, by fit (or partial_fit), by the wrapper of
# _fit_context, by the caller.
_CALLER = 5


class _BaseEntropyClustering(
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _ClusteringParameters,
    ABC,
):
    """Base class for the discriminative entropy clustering estimators.

    Trains softmax heads σ(vᵀx + b) on mini-batches of X (or of the features
    f_w(X) of a network, in deep mode) to minimize the loss of the subclass
    plus the margin term γ‖v‖² (bias excluded), plus, with
    ``semi_supervised=True``, the mean cross-entropy −ln σ_{i,y_i} of the
    labeled samples of the mini-batch, and provides ``fit``, ``partial_fit``,
    ``predict``, ``predict_proba``, ``transform`` and ``score``.
    """

    @abstractmethod
    def _mini_batch_loss(self):
        """Hook: the loss of one mini-batch, with this estimator's parameters.

        Returns a function ``loss(log_probs, prior, sample_weight)`` (plus the
        keyword ``epoch_targets`` if the estimator declares
        :meth:`_epoch_targets`) that holds no reference to the estimator, e.g.
        a :func:`functools.partial` of a module-level function: deep mode
        keeps it in the skorch net's criterion. The margin term γ‖v‖² and,
        with ``semi_supervised=True``, the cross-entropy of the labeled rows
        are added to it.

        The function's arguments: ``log_probs``, ln σ of the batch of shape
        (n_samples, n_clusters), tracked by autograd; ``prior``, the target
        cluster proportions u as a tensor of shape (n_clusters,), or None for
        uniform ones; ``sample_weight``, the weights of the rows, a tensor of
        shape (n_samples,). It returns the loss, a tensor of shape ().
        """

    _stacked_loss = False
    """Whether the function of :meth:`_mini_batch_loss` also takes a stack.

    A stack is the heads' ln σ on the batch, of shape (n_heads, n_samples,
    n_clusters), with ``prior`` of shape (n_heads, n_clusters) (one per
    head, ``prior="auto"``), (n_clusters,) or None; the function then
    returns the heads' losses, of shape (n_heads,), and the shallow trainer
    calls it once per batch for all heads (the self-labeling estimators
    solve all heads' pseudo-labels at once). False: one call per head.
    """

    def _epoch_targets(self, log_probs, prior, sample_weight):
        """Hook: targets of every training sample for the coming epoch, or None.

        The shallow trainer calls it before each epoch, for each head; if it
        returns targets, the loss of each mini-batch receives the batch's
        rows of them as its ``epoch_targets``. The default has none.

        Parameters
        ----------
        log_probs : callable
            ``log_probs()`` gives ln σ of the head on every training sample,
            a tensor of shape (n_samples, n_clusters), computed on the call.

        prior : torch.Tensor of shape (n_clusters,) or None
            Target cluster proportions u, like the head's parameters.

        sample_weight : torch.Tensor of shape (n_samples,)
            Weights of the samples, like the head's parameters.

        Returns
        -------
        targets : torch.Tensor of shape (n_samples, ...) or None
        """
        return None

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
        return self._fit(X, y, sample_weight, incremental=False)

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
        number of epochs this comes close to the quality of ``fit`` on the
        whole array (standardized digits in three chunks, 20 passes, three
        seeds: CollisionCEClustering 0.69 against 0.75 for ``fit``). ``fit``
        also accepts the memory map directly, copying only
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
        return self._fit(X, y, sample_weight, incremental=True)

    def _fit(self, X, y, sample_weight, *, incremental):
        """``fit`` (``incremental=False``) or ``partial_fit``, in either mode.

        Checks the parameters and the data, then trains: ``fit`` runs
        ``n_init`` new trainings of at most ``max_iter`` epochs each and keeps
        the one with the lowest training loss (a single one continuing the
        fitted model with ``warm_start``); ``partial_fit`` runs one epoch of
        a new model (first call) or of the fitted one. Atomic
        (:func:`~skentropy._estimators._atomic.atomic_fit`): if it raises,
        KeyboardInterrupt included, the estimator is left as it was.
        """
        with atomic_fit(self):  # restores every attribute if the fit fails
            self._check_deep_params()
            trainer = self._trainer(deep=self.module is not None)
            fitted = hasattr(self, "n_iter_")
            new = not (fitted if incremental else self._continues_training())
            if not new:
                self._check_continuation()
            X = trainer.validate_input(X, reset=new)
            if new or not incremental:
                self._check_params_vs_input(X)
            sample_weight = relative_sample_weight(
                sample_weight, X, trainer.weight_dtype(X)
            )
            data = TrainingData(
                X, self._check_partial_labels(y, X.shape[0]), sample_weight
            )
            auto = isinstance(self.prior, str)  # "auto", the one string allowed
            if incremental:
                random_state = persistent_random_state(self)
            else:
                random_state = check_random_state(self.random_state)
            device = resolve_device(self.device)

            n_init = self.n_init if new and not incremental else 1
            best = None
            for init in range(n_init):
                if auto:  # each training estimates its own proportions
                    prior = PriorEstimate(
                        self.n_heads,
                        self.n_clusters,
                        rate=min(1.0, self.batch_size / X.shape[0]),
                        means=None if new else getattr(self, "_prior_means", None),
                    )
                else:
                    prior = check_prior(self.prior, self.n_clusters)
                loss = TrainingLoss(
                    self._mini_batch_loss(),
                    gamma=self.gamma,
                    prior=prior,
                    takes_stacks=self._stacked_loss,
                )
                run = Run(
                    epochs=1 if incremental else self.max_iter,
                    new=new,
                    incremental=incremental,
                    epochs_before=0 if new else self.n_iter_,
                    steps_per_epoch=-(-len(X) // self.batch_size),
                    description=f"init {init + 1}/{n_init}",
                )
                if new:
                    model = trainer.new_model(data, random_state, device)
                else:
                    model = trainer.continued_model(data, random_state, device)
                result = trainer.train(model, data, loss, run, random_state, device)
                if best is None or result.head_losses.min() < best.head_losses.min():
                    best, best_prior = result, prior
            self._set_fitted(trainer, best, data, incremental=incremental, new=new)
            vars(self).pop("prior_", None)
            vars(self).pop("_prior_means", None)
            if auto:
                self._prior_means = best_prior.means.cpu().numpy()
                self.prior_ = best_prior.estimate(self.best_head_).cpu().numpy()
            return self

    def _trainer(self, *, deep):
        """The trainer of shallow or deep mode (which imports skorch)."""
        if not deep:
            return ShallowTrainer(self)
        from skentropy._deep import DeepTrainer  # deep mode only: skorch

        return DeepTrainer(self)

    def _set_fitted(self, trainer, result, data, *, incremental, new):
        """Set every fitted attribute from a training's result; warn on it.

        ``fit`` warns (ConvergenceWarning) if training stopped at ``max_iter``
        and if the clustering is degenerate (:func:`_warn_degenerate`);
        ``partial_fit`` does not, a single epoch being no whole training.
        """
        if not (incremental or result.converged):
            warnings.warn(
                f"Training stopped at max_iter={self.max_iter} epochs while the "
                f"training loss still improved by more than tol={self.tol}; "
                "consider increasing max_iter.",
                ConvergenceWarning,
                stacklevel=_CALLER,
            )
        self._set_fitted_heads(trainer.heads(result.model), result.head_losses)
        log_probs = trainer.log_probs(result.model, data.X, self.best_head_)
        labels = log_probs.argmax(dim=1).cpu().numpy()
        if not incremental:
            _warn_degenerate(
                log_probs,
                labels,
                data.sample_weight,
                gamma=self.gamma,
                estimated_prior=isinstance(self.prior, str),
                stacklevel=_CALLER,
            )
        loss_curve = result.loss_curve
        n_steps = len(loss_curve) * n_batches(data.X.shape[0], self.batch_size)
        if incremental and not new:
            loss_curve = [*self.loss_curve_, *loss_curve]
            n_steps += self.n_steps_

        for name in ("net_", "_optimizer_state"):  # of the other mode
            vars(self).pop(name, None)
        vars(self).update(trainer.fitted_state(result.model))
        self._n_features_out = self.n_clusters
        self.labels_ = labels
        self.n_iter_ = len(loss_curve)
        self.n_steps_ = n_steps
        self.loss_curve_ = loss_curve
        self.converged_ = result.converged

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

    def _inference(self, X):
        """ln σ of the selected head on X, the validated X, the head.

        In deep mode the fitted network runs where it was fitted (on the CPU
        once unpickled on a machine without CUDA).
        """
        check_is_fitted(self)
        trainer = self._trainer(deep=hasattr(self, "net_"))
        X = trainer.validate_input(X, reset=False)
        model = trainer.fitted_model(resolve_device(self.device))
        log_probs = trainer.log_probs(model, X, self.best_head_)
        return log_probs, X, trainer.heads(model)[self.best_head_]

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
        λ, ``prior`` u (with ``prior="auto"``, the fitted estimate
        ``prior_``) and ``gamma`` γ, the loss

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
        auto = isinstance(self.prior, str)  # "auto": the fitted estimate
        sample_weight = relative_sample_weight(sample_weight, X, X.dtype)
        weight = to_tensor(sample_weight, like=log_probs)
        margin_weight = head.margin_weight
        with torch.no_grad():
            loss = losses.max_margin_entropy(
                log_probs,
                check_prior(
                    getattr(self, "prior_", None) if auto else self.prior,
                    self._n_features_out,  # as fitted
                    like=log_probs,
                ),
                weight,
                fairness_weight=self.fairness_weight,
                weight=None if margin_weight is None else margin_weight.to(log_probs),
                gamma=self.gamma,
            )
        return -loss.item()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _warn_degenerate(
    log_probs,
    labels,
    sample_weight,
    *,
    gamma,
    estimated_prior=False,
    balance="fairness_weight",
    stacklevel,
):
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

    gamma : float
        The margin weight of the fit, named in the warning with a value ten
        times smaller to try when it is positive.

    estimated_prior : bool, default=False
        Whether the fit estimated the cluster proportions (``prior="auto"``),
        which lets clusters shrink: then named as a cause too.

    balance : str, default="fairness_weight"
        The parameter that keeps clusters from emptying, named as a cause
        when too small (SeCu's is ``lower_ratio``).

    stacklevel : int
        Of the caller, as for :func:`warnings.warn`.
    """
    n_clusters = log_probs.shape[1]
    used = sample_weight > 0
    counts = np.bincount(labels[used], minlength=n_clusters)
    n_empty = int(np.sum(counts == 0))
    margin = (
        f"the margin weight gamma={gamma:g} too large for the data (try "
        f"gamma={gamma / 10:g}, or choose gamma without labels with "
        "skentropy.model_selection.unsupervised_scorer; see the user guide's "
        "'Choosing gamma' for its unit), "
        if gamma > 0
        else ""
    )
    estimated = (
        "prior='auto', which let clusters shrink (prior=None asks for equal ones), "
        if estimated_prior
        else ""
    )
    causes = (
        f"Likely causes: {margin}{estimated}a {balance} too small, or more "
        "clusters than the data holds (try a smaller n_clusters)."
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
