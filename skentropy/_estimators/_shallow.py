"""The shallow trainer: heads trained on the features X themselves.

Its mini-batch loop (:meth:`ShallowTrainer.train`) is the training of every
estimator without a ``module``: epochs of shuffled mini-batches
(:mod:`~skentropy._estimators._batching`), one optimizer step per batch on
the sum of the heads' losses, with the margin warm-up and the stopping rule
of :class:`~skentropy._estimators._training.TrainingPolicy`.
"""

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from skentropy._estimators._batching import (
    BatchReader,
    batch_bounds,
    epoch_batches,
    one_thread,
    to_tensor,
)
from skentropy._estimators._heads import (
    input_standardization,
    make_head,
    stacked_logits,
)
from skentropy._estimators._optim import HeadsOptimizer
from skentropy._estimators._params import validate_features
from skentropy._estimators._seeding import init_size, seed_heads
from skentropy._estimators._training import (
    Trainer,
    TrainingPolicy,
    TrainingResult,
    learning_rate,
    step_pace,
)
from skentropy._estimators._views import (
    NEIGHBOR_DRAWS,
    NeighborViews,
    SingleView,
    average_over_views,
)
from skentropy._prior import fixed_prior
from skentropy._torch_utils import torch_dtype, torch_generator


@dataclass
class ShallowModel:
    """The model of the shallow trainer: the heads, and what trains them."""

    heads: nn.ModuleList
    generator: torch.Generator | None = None
    """Shuffles the mini-batches (None for a model that only predicts)."""

    optimizer: HeadsOptimizer | None = None
    """Set by the training."""

    views: object = field(default_factory=SingleView)
    """The views of the training samples (see
    :mod:`~skentropy._estimators._views`)."""


class ShallowTrainer(Trainer):
    """Trains ``n_heads`` heads at once on the features X, in X's dtype.

    New heads see X through the standardization z = (x − x̄)/s of
    :func:`~skentropy._estimators._heads.input_standardization` (mean x̄ and
    root-mean-square distance s to it, fixed from then on), so that the
    initialization, the steps and the margin term mean the same for X and
    c·X; each starts from its own k-means++ seeds of X
    (:func:`~skentropy._estimators._seeding.seed_heads`).

    The margin weight of a new model grows from 0 to γ over its first epochs,
    and the stopping rule starts over once it is whole; ``partial_fit``
    continues the warm-up over its calls, a warm-started ``fit`` trains with
    the whole γ (:class:`~skentropy._estimators._training.TrainingPolicy`,
    shared with deep mode). ``fit`` starts
    a new optimizer, ``partial_fit`` continues the fitted one's state (e.g.
    Adam's moments).

    With ``n_neighbors``, the views of each training sample are the sample
    and two of its ``n_neighbors`` nearest neighbours in X (Euclidean, the
    geometry of z, whose single scale s keeps the neighbours of X), drawn
    anew for each batch
    (:class:`~skentropy._estimators._views.NeighborViews`); the neighbours
    are mined once per call of ``fit`` or ``partial_fit``, on the rows it
    is given, among those of positive weight
    (:meth:`~skentropy._estimators._training.Trainer.neighbors`). σ_i, the
    mean over the views, enters the pseudo-labels of the batch and the
    step alike; targets of an epoch (``_epoch_targets``) see σ of the
    samples alone.
    """

    views = SingleView()
    """The views of each sample without neighbours (those with neighbours
    wrap them)."""

    def validate_input(self, X, *, reset):
        return validate_features(self.estimator, X, reset=reset)

    def weight_dtype(self, X):
        return X.dtype

    def new_model(self, data, random_state, device):
        estimator = self.estimator
        X, labels, sample_weight = data
        dtype = torch_dtype(X.dtype)
        heads = nn.ModuleList(
            self._make_head(X.shape[1]).to(dtype=dtype, device=device)
            for _ in range(estimator.n_heads)
        )
        center, scale = input_standardization(X, sample_weight)
        for head in heads:
            head.standardize(center, scale)
        size = init_size(estimator.batch_size, estimator.n_clusters)
        with one_thread():  # small operations, as in the training steps
            generator = seed_heads(
                heads,
                X,
                labels,
                sample_weight,
                estimator.n_clusters,
                size,
                random_state,
                prior=fixed_prior(estimator.prior, estimator.n_clusters),
            )
        return ShallowModel(heads, generator, views=self._views(data, heads))

    def continued_model(self, data, random_state, device):
        heads = self.fitted_model(device).heads.to(dtype=torch_dtype(data.X.dtype))
        return ShallowModel(
            heads, torch_generator(random_state), views=self._views(data, heads)
        )

    def _views(self, data, heads):
        """The training views: the samples, or with their neighbours in X."""
        X, _, sample_weight = data
        parameter = next(heads.parameters())
        neighbors = self.neighbors(X, sample_weight, parameter.device)
        if neighbors is None:
            return self.views
        n_rows = self.estimator.batch_size * NEIGHBOR_DRAWS
        read = BatchReader(X, n_rows, like=parameter)
        return NeighborViews(neighbors, read, NEIGHBOR_DRAWS, views=self.views)

    def fitted_model(self, device):
        """All fitted heads, in the fitted dtype, from the estimator's state.

        Built as they were fitted (kind of head, number of clusters), whatever
        parameters were set since: those take effect at the next fit.
        """
        estimator = self.estimator
        heads = nn.ModuleList()
        for saved in estimator._head_states:
            head = make_head(
                estimator._head_config["head"],
                estimator.n_features_in_,
                estimator._n_features_out,
                estimator.temperature,  # a buffer of the state, loaded below
            )
            state = {key: torch.tensor(value) for key, value in saved.items()}
            head.load_state_dict(state, assign=True)  # keeps the fitted dtype
            heads.append(head)
        return ShallowModel(heads.to(device=device))

    def _make_head(self, n_features):
        estimator = self.estimator
        return make_head(
            estimator.head, n_features, estimator.n_clusters, estimator.temperature
        )

    def train(self, model, data, loss, run, random_state, device):
        """At most ``run.epochs`` epochs, as the :class:`TrainingPolicy` has it.

        The training loss of an epoch is the lowest of the heads' mean
        losses; the policy weighs the margin term of each epoch (the warm-up)
        and stops the training on it.
        """
        estimator = self.estimator
        heads = model.heads
        parameter = next(heads.parameters())
        resume = run.incremental and not run.new
        model.optimizer = _make_optimizer(
            heads,
            estimator,
            data.X.shape[1],
            estimator._optimizer_state if resume else None,
        )
        loss = loss.to(parameter.dtype, parameter.device)
        policy = TrainingPolicy(
            run,
            tol=estimator.tol,
            n_iter_no_change=estimator.n_iter_no_change,
            pace=step_pace(model.optimizer.lr, estimator.optimizer),
        )
        loss_curve = []
        epochs = tqdm(
            range(run.epochs),
            desc=run.description,
            unit="epoch",
            disable=not estimator.verbose,
        )
        with epochs:
            for _ in epochs:
                scale = policy.begin_epoch()
                head_losses = self._run_epoch(model, data, loss, scale)
                epoch_loss = float(head_losses.min())
                loss_curve.append(epoch_loss)
                epochs.set_postfix(loss=f"{epoch_loss:.5g}")
                if policy.end_epoch(epoch_loss):
                    break
        return TrainingResult(model, head_losses, loss_curve, policy.stopped)

    def _run_epoch(self, model, data, loss, scale):
        """One pass over X in shuffled mini-batches; the mean loss of each head.

        The margin term weighs ``scale`` · γ. All heads see the same
        mini-batches; one optimizer step on the sum of their losses trains
        each head on its own loss (they share no parameter). The batches are
        contiguous slices of X (no copy) in a random order when X looks
        randomly ordered and no row has a label or a target of the epoch, and
        a random partition of its rows otherwise (see
        :func:`~skentropy._estimators._batching.epoch_batches`).
        """
        estimator = self.estimator
        heads, generator, optimizer = model.heads, model.generator, model.optimizer
        X, labels, sample_weight = data
        parameter = next(heads.parameters())
        weights = to_tensor(sample_weight, like=parameter)
        if labels is not None:
            labels = torch.tensor(labels, device=parameter.device)
        targets = [
            estimator._epoch_targets(
                functools.partial(self._log_probs, head, X),
                loss.head_prior(index),
                weights,
            )
            for index, head in enumerate(heads)
        ]
        if all(head_targets is None for head_targets in targets):
            targets = None
        some_zero_weight = not np.all(sample_weight > 0)
        read = BatchReader(X, estimator.batch_size, like=parameter)
        total_loss = torch.zeros(
            len(heads), dtype=parameter.dtype, device=parameter.device
        )
        batches = epoch_batches(
            X,
            estimator.batch_size,
            generator,
            contiguous=labels is None and targets is None,
        )
        with one_thread():
            for rows in batches:
                if some_zero_weight and not sample_weight[rows].any():
                    continue  # zero weights drop rows, and here a whole batch
                weight = weights[rows]
                views = model.views(read(rows), rows, generator)
                head_losses = loss.stacked(
                    self._view_log_probs(heads, views, model.views.n_views),
                    [head.margin_weight for head in heads],
                    weight,
                    labels=None if labels is None else labels[rows],
                    epoch_targets=_rows_of(targets, rows),
                    margin_scale=scale,
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

    def _view_log_probs(self, heads, views, n_views):
        """ln σ of the heads on a batch, averaged over the views of each sample.

        Of shape (n_heads, n_samples, n_clusters), from the heads' logits of
        :func:`~skentropy._estimators._heads.stacked_logits`. The linear
        heads' product leaves the logits laid out as (n_heads, n_clusters,
        n_samples) in memory, and the log-softmax runs over the clusters in
        that layout: over a last dimension of 10 clusters its CPU kernel took
        0.22 ms for five heads on 250 rows, 0.01 ms along the rows (the
        result is a view in the order above; labels unchanged on the
        feature files of benchmarks/).
        """
        logits = stacked_logits(heads, views).permute(1, 2, 0)
        log_probs = torch.log_softmax(logits, dim=1).permute(2, 0, 1)
        return average_over_views(log_probs, n_views).transpose(0, 1)

    def log_probs(self, model, X, head):
        return self._log_probs(model.heads[head], X)

    @torch.no_grad()
    def _log_probs(self, head, X):
        """ln σ of one head on all rows of X, computed batch by batch.

        The batches are read into one reused buffer and their logits written
        into one tensor allocated once: a new copy of each batch of a memory
        map, freed next to its small logits that stay, fragmented the heap
        (on 1M × 256 float32 rows, 0.9 × the size of X of anonymous memory
        held after predicting; 0.02 × with the buffer).
        """
        parameter = next(head.parameters())
        read = BatchReader(X, self.estimator.batch_size, like=parameter)
        logits = None
        for start, stop in batch_bounds(X.shape[0], self.estimator.batch_size):
            batch_logits = head(read(slice(start, stop)))
            if logits is None:
                logits = batch_logits.new_empty((X.shape[0], batch_logits.shape[1]))
            logits[start:stop] = batch_logits
        return torch.log_softmax(logits, dim=1)

    def heads(self, model):
        return model.heads

    def fitted_state(self, model):
        return {"_optimizer_state": _optimizer_state(model.optimizer, self.estimator)}


def _rows_of(targets, rows):
    """The batch's rows of each head's targets of the epoch, or None."""
    if targets is None:
        return None
    return [
        None if head_targets is None else head_targets[rows] for head_targets in targets
    ]


def _make_optimizer(heads, estimator, n_features, state=None):
    """The estimator's optimizer over the heads, resuming from a saved ``state``.

    Its learning rate is ``lr``, or with ``lr="auto"`` that of
    :func:`~skentropy._estimators._training.learning_rate` for heads on
    ``n_features`` features. The steps are those of torch's fused
    implementation (one kernel for all parameters): on one CPU thread its
    step over five heads of 10 × 1280 weights takes a third of the time of
    the default one (0.10 against 0.30 ms). See
    :class:`~skentropy._estimators._optim.HeadsOptimizer` for why not the
    ``torch.optim`` classes themselves.
    """
    optimizer = HeadsOptimizer(
        heads.parameters(),
        estimator.optimizer,
        lr=learning_rate(estimator.lr, estimator.optimizer, n_features),
        weight_decay=estimator.weight_decay,
    )
    if state is not None and state["optimizer"] == estimator.optimizer:
        # Resume the per-parameter state (e.g. Adam's moments); the
        # hyper-parameters (lr, weight_decay) are the current ones.
        optimizer.load_state_arrays(state["state"])
    return optimizer


def _optimizer_state(optimizer, estimator):
    """The optimizer's per-parameter state (e.g. Adam's moments) as numpy."""
    return {"optimizer": estimator.optimizer, "state": optimizer.state_arrays()}
