"""The deep trainer: a feature network trained with the heads, through skorch.

With a ``module``, an estimator trains σ(v f_w(X) + b) end to end: the
feature network f_w (the user's module, e.g. :class:`~skentropy.nets.VGG4`)
and the clustering heads on top of it, on the estimator's own loss, by a
:class:`skorch.NeuralNet` (:class:`~skentropy._deep._net.ClusteringNet`, held
as the estimator's ``net_``) rather than a second training loop: skorch gives
the batches, the optimizer, callbacks (early stopping, checkpoints, LR
schedules), the printed log and its progress bar.
"""

import copy
import functools

import numpy as np
import torch
from sklearn.utils.validation import validate_data
from skorch.callbacks import ProgressBar
from torch.optim.swa_utils import update_bn

from skentropy._deep._net import (
    ClusteringModule,
    ClusteringNet,
    Interrupted,
    epoch_head_losses,
)
from skentropy._estimators._seeding import init_rows, init_size, seed_heads
from skentropy._estimators._training import (
    OPTIMIZERS,
    Trainer,
    TrainingPolicy,
    TrainingResult,
    learning_rate,
)
from skentropy._estimators._views import NEIGHBOR_DRAWS, NeighborViews, make_views
from skentropy._prior import fixed_prior
from skentropy._torch_utils import (
    seeded_rng,
    torch_generator,
    without_negative_strides,
)


class DeepTrainer(Trainer):
    """Trains the network ``module`` and ``n_heads`` heads on it, in float32.

    A new net is built from ``module`` and ``module__*`` inside a forked
    torch RNG seeded from ``random_state``; each head is then seeded by
    k-means++ on the features f_w of a random subset of X, as the shallow
    heads on X itself (but on f_w(X) as it is, without standardization).
    Each training continues the net's history and optimizer (``fit`` with
    ``warm_start`` too). The margin warm-up and the stopping rule are those
    of the shallow trainer (:class:`~skentropy._estimators._training.TrainingPolicy`,
    applied by the net at each epoch); targets of an epoch
    (``_epoch_targets``) are not computed: SeLa refuses ``schedule="full"``
    with a module.

    With ``n_neighbors``, the views of each sample are the sample and two of
    its ``n_neighbors`` nearest neighbours (one if k = 1), each augmented by
    ``augment``: 3 · ``n_augmentations`` views
    (:class:`~skentropy._estimators._views.NeighborViews` around the
    augmentations). The neighbours are mined once
    per call of ``fit`` or ``partial_fit``, on the input X as given,
    flattened (Euclidean distance between the samples, e.g. the pixels of
    images or fixed features), not on the network's features f_w(X), which
    would need all of X through the network at each epoch. They are handed
    to the net for the training only, so that ``net_`` holds no reference
    to X.
    """

    def validate_input(self, X, *, reset):
        """X for the network as float32; samples of any shape, e.g. (C, H, W).

        Later calls must give samples of the shape that ``fit`` saw.
        """
        estimator = self.estimator
        X = validate_data(estimator, X, dtype=np.float32, allow_nd=True, reset=reset)
        X = without_negative_strides(X)
        if reset:
            estimator._input_shape = X.shape[1:]
        elif X.shape[1:] != estimator._input_shape:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but "
                f"{type(estimator).__name__} was fitted on samples of shape "
                f"{estimator._input_shape}."
            )
        return X

    def weight_dtype(self, X):
        return np.float32

    def new_model(self, data, random_state, device):
        estimator = self.estimator
        X, labels, sample_weight = data
        seed = random_state.randint(np.iinfo(np.int32).max)
        callbacks = _default_callbacks(estimator.verbose)
        callbacks += copy.deepcopy(estimator.callbacks or [])
        net = ClusteringNet(
            ClusteringModule,
            module__backbone=estimator.module,
            module__backbone_params=estimator._module_params(),
            module__input_shape=X.shape[1:],
            module__n_clusters=estimator.n_clusters,
            module__n_heads=estimator.n_heads,
            module__head=estimator.head,
            module__temperature=estimator.temperature,
            views=make_views(estimator.augment, estimator.n_augmentations),
            optimizer=OPTIMIZERS[estimator.optimizer],
            lr=learning_rate(estimator.lr, estimator.optimizer),
            optimizer__weight_decay=estimator.weight_decay,
            batch_size=estimator.batch_size,
            generator=torch_generator(random_state),
            callbacks=callbacks,
            train_split=None,
            verbose=estimator.verbose,
            device=str(device),
        )
        size = init_size(estimator.batch_size, estimator.n_clusters)
        with seeded_rng(seed, device):
            net.initialize()
            rows = init_rows(X.shape[0], size, random_state)
            features = _features(net, X[rows], estimator.batch_size)
        if not np.all(np.isfinite(features)):
            raise ValueError(
                "The network gives non-finite features for some samples of X; "
                "scale X (e.g. images to [0, 1]) or check the module."
            )
        seed_heads(
            net.module_.heads,
            features,
            None if labels is None else labels[rows],
            sample_weight[rows],
            estimator.n_clusters,
            size,
            random_state,
            prior=fixed_prior(estimator.prior, estimator.n_clusters),
        )
        return net

    def continued_model(self, data, random_state, device):
        net = self.estimator.net_  # trained in place: atomic_fit keeps a copy
        estimator = self.estimator
        net.set_params(lr=learning_rate(estimator.lr, estimator.optimizer))
        return net

    def fitted_model(self, device):
        return self.estimator.net_

    def train(self, model, data, loss, run, random_state, device):
        """Up to ``run.epochs`` epochs of skorch's ``partial_fit``.

        The net's own generator shuffles the batches and draws the views;
        torch's global RNG (dropout) is forked and seeded from
        ``random_state``. The loss of an epoch is the lowest of the heads'
        mean losses over its batches.
        """
        net = model
        X, labels, sample_weight = data
        seed = random_state.randint(np.iinfo(np.int32).max)
        n_before = len(net.history)
        net.set_params(max_epochs=run.epochs)
        net.set_loss(loss.to(torch.float32, device))
        inputs = {"X": X, "sample_weight": sample_weight, "rows": np.arange(len(X))}
        if labels is not None:
            inputs["labels"] = labels
        views = net.views
        neighbors = self.neighbors(X, sample_weight, device)
        if neighbors is not None:
            read = functools.partial(_read_rows, X, net.device)
            net.views = NeighborViews(neighbors, read, NEIGHBOR_DRAWS, views=views)
        estimator = self.estimator
        net.policy = TrainingPolicy(
            run, tol=estimator.tol, n_iter_no_change=estimator.n_iter_no_change
        )
        try:
            with seeded_rng(seed, device):
                net.partial_fit(inputs)
                _recalibrate_batch_norm(
                    net, X, sample_weight, estimator.batch_size, random_state
                )
        except Interrupted:  # Ctrl-C: the estimator restores its state
            raise KeyboardInterrupt from None
        finally:
            net.views = views  # the fitted net_ holds no reference to X
            policy, net.policy = net.policy, None
        head_losses = [
            epoch_head_losses(epoch) for epoch in list(net.history)[n_before:]
        ]
        loss_curve = [float(losses.min()) for losses in head_losses]
        # stopped by the policy, or by a user's callback (skorch's EarlyStopping)
        stopped = policy.stopped or len(loss_curve) < run.epochs
        return TrainingResult(net, head_losses[-1], loss_curve, stopped)

    def log_probs(self, model, X, head):
        """ln σ of one head for all samples of X, by batches in evaluation mode."""
        return torch.cat(
            [
                output[:, head]
                for output in model.forward_iter(X, training=False, device="cpu")
            ]
        )

    def heads(self, model):
        return model.module_.heads

    def fitted_state(self, model):
        return {"net_": model}


def _read_rows(X, device, indices):
    """The samples of X at ``indices`` as a tensor on ``device``."""
    return torch.as_tensor(X[indices], device=device)


def _recalibrate_batch_norm(net, X, sample_weight, batch_size, random_state):
    """Batch norm's running statistics recomputed on the samples of X.

    In training, a batch norm layer normalizes by the statistics of the
    batch (of augmented views) and keeps exponential running means of them
    (momentum 0.1) for evaluation mode, in which the estimator predicts;
    these trail the network by the last few dozen steps, and after a short
    training they are still near their initial values, so that every sample
    can land in one cluster. After each training, one pass over the samples
    of X that weigh more than 0, in random batches of the training's size,
    without gradients, sets them to the statistics of the trained network on
    clean samples, averaged over the batches
    (:func:`torch.optim.swa_utils.update_bn`, as for stochastic weight
    averaging).
    """
    rows = random_state.permutation(np.flatnonzero(sample_weight > 0))
    if rows.size < 2:
        return
    n_batches = -(-rows.size // batch_size)
    batches = (
        torch.as_tensor(X[np.sort(part)], device=net.device)
        for part in np.array_split(rows, n_batches)
    )
    with torch.no_grad():
        update_bn(batches, net.module_)


def _features(net, X, batch_size):
    """f_w(X) of a subset X, in training mode (batch statistics), no gradient."""
    module = net.module_
    module.train()
    n_batches = -(-X.shape[0] // batch_size)
    with torch.no_grad():
        return torch.cat(
            [
                module.features(torch.as_tensor(X[rows], device=net.device)).cpu()
                for rows in np.array_split(np.arange(X.shape[0]), n_batches)
            ]
        ).numpy()


def _default_callbacks(verbose):
    """The estimator's own skorch callbacks, as ``(name, callback)`` pairs.

    A progress bar over the batches with ``verbose >= 2``; skorch prints its
    table of epochs with ``verbose >= 1``. (The margin warm-up and the
    stopping rule are the net's own, from the trainer's
    :class:`~skentropy._estimators._training.TrainingPolicy`.)
    """
    return [("progress_bar", ProgressBar())] if verbose >= 2 else []
