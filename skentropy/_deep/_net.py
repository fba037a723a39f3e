"""The skorch net of deep mode: a feature network f_w with the clustering heads.

- :class:`ClusteringModule` is the network: f_w followed by ``n_heads``
  heads; its output holds every head's logits.
- :class:`ClusteringCriterion` is the net's criterion: it holds the
  estimator's training loss (a
  :class:`~skentropy._estimators._training.TrainingLoss`) and gives the loss
  of each head on a batch.
- :class:`ClusteringNet` is the skorch net. It uses skorch's own override
  points: :meth:`~ClusteringNet.infer` computes ln σ averaged over the views
  of each sample (self-augmentation), :meth:`~ClusteringNet.get_loss` asks
  the criterion for the heads' losses; skorch does the rest (batches,
  optimizer steps, callbacks, history).
"""

import copy
import inspect
from collections.abc import Mapping

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch import nn
from torch.utils.data import DataLoader

from skentropy._estimators._heads import make_head
from skentropy._estimators._views import average_over_views


class ClusteringModule(nn.Module):
    """The feature network f_w followed by the clustering heads.

    Parameters
    ----------
    backbone : torch.nn.Module class or instance
        The feature network f_w. A class is built with ``backbone_params``;
        an instance is deep-copied (the user's module is never trained in
        place), or, with ``backbone_params``, rebuilt from its class with them
        (as skorch does with ``module__*`` parameters).

    backbone_params : dict
        Keyword arguments of the backbone's class. If the class takes an
        ``input_shape`` argument and it is not given, it gets ``input_shape``.

    input_shape : tuple of int
        Shape of one sample, e.g. (C, H, W).

    n_clusters, n_heads, head, temperature
        As the estimators' parameters.
    """

    def __init__(
        self,
        backbone,
        backbone_params,
        input_shape,
        n_clusters,
        n_heads,
        head,
        temperature,
    ):
        super().__init__()
        self.backbone = _build_backbone(backbone, backbone_params, input_shape)
        n_features = _n_output_features(self.backbone, input_shape)
        self.heads = nn.ModuleList(
            make_head(head, n_features, n_clusters, temperature, fixed_features=False)
            for _ in range(n_heads)
        )

    def features(self, X):
        """f_w(X), flattened to shape (n_samples, n_features)."""
        return self.backbone(X).flatten(start_dim=1)

    def forward(self, X):
        """Logits of every head, of shape (n_samples, n_heads, n_clusters)."""
        features = self.features(X)
        return torch.stack([head(features) for head in self.heads], dim=1)


def _build_backbone(backbone, backbone_params, input_shape):
    if isinstance(backbone, nn.Module):
        if not backbone_params:
            return copy.deepcopy(backbone)
        backbone = type(backbone)
    params = dict(backbone_params)
    try:
        accepts_shape = "input_shape" in inspect.signature(backbone).parameters
    except (TypeError, ValueError):  # no introspectable signature
        accepts_shape = False
    if accepts_shape and "input_shape" not in params:
        params["input_shape"] = tuple(input_shape)
    try:
        return backbone(**params)
    except TypeError as error:
        raise ValueError(
            f"module={backbone!r} could not be built with the parameters "
            f"{sorted(params)}: {error}"
        ) from error


def _n_output_features(backbone, input_shape):
    """The number of features f_w gives for one sample, by a probe forward.

    The probe runs on two zero samples (batch norm needs more than one in
    training mode) in evaluation mode, without gradients, and leaves the
    backbone's mode as it was.
    """
    parameter = next(backbone.parameters(), None)
    dtype = torch.float32 if parameter is None else parameter.dtype
    probe = torch.zeros((2, *input_shape), dtype=dtype)
    training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            output = backbone(probe)
    except RuntimeError as error:
        raise ValueError(
            f"The module does not accept samples of shape {tuple(input_shape)} "
            f"(the shape of X without its first axis): {error}"
        ) from error
    finally:
        backbone.train(training)
    if not isinstance(output, torch.Tensor) or output.ndim < 2:
        raise ValueError(
            "The module must return a tensor of features with one row per "
            f"sample; for a batch of shape {tuple(probe.shape)} it returned "
            f"{type(output).__name__} of shape {getattr(output, 'shape', None)}."
        )
    return output[0].numel()


class ClusteringCriterion(nn.Module):
    """The criterion of :class:`ClusteringNet`: the training loss of each head.

    Parameters
    ----------
    loss : TrainingLoss, default=None
        The estimator's loss of one head on a batch (see
        :class:`~skentropy._estimators._training.TrainingLoss`), which holds
        its parameters and not the estimator. The net receives the loss of
        the estimator's current parameters before each training
        (:meth:`ClusteringNet.set_loss`).
    """

    def __init__(self, loss=None):
        super().__init__()
        self.loss = loss
        self.margin_scale = 1.0  # of the epoch, set by ClusteringNet

    def forward(self, log_probs, heads, sample_weight, labels=None):
        """The loss of each head, of shape (n_heads,).

        Parameters
        ----------
        log_probs : torch.Tensor of shape (n_samples, n_heads, n_clusters)
            ln σ of every head on the batch.

        heads : torch.nn.ModuleList
            The heads, whose ``margin_weight`` the margin term acts on.

        sample_weight : torch.Tensor of shape (n_samples,)

        labels : torch.Tensor of shape (n_samples,), default=None
            Labels of weak supervision (−1 = unlabeled), or None.
        """
        return torch.stack(
            [
                self.loss(
                    log_probs[:, index],
                    head.margin_weight,
                    sample_weight,
                    labels=labels,
                    margin_scale=self.margin_scale,
                    head=index,
                )
                for index, head in enumerate(heads)
            ]
        )


class Interrupted(BaseException):
    """A KeyboardInterrupt inside :meth:`ClusteringNet.fit_loop`, passed on."""


class _StopTraining(Exception):
    """Raised by :class:`ClusteringNet` when its training policy stops."""


class ClusteringNet(NeuralNet):
    """A skorch net that trains a :class:`ClusteringModule` without labels.

    The training data X is a dict with the samples ``"X"``, their
    ``"sample_weight"``, their indices ``"rows"`` in X and, with weak
    supervision, their ``"labels"`` (−1 = unlabeled); y is unused. The
    criterion is a :class:`ClusteringCriterion`.

    Parameters
    ----------
    module : type
        :class:`ClusteringModule`, built by skorch from ``module__*``.

    views : views object
        The views of each sample in training (see
        :mod:`skentropy._estimators._views`), e.g. augmented ones.

    generator : torch.Generator
        CPU generator that shuffles the batches (into even batches, see
        :func:`even_batches`) and draws the views.

    **kwargs
        Parameters of :class:`skorch.NeuralNet`.
    """

    def __init__(self, module, *, views, generator, **kwargs):
        super().__init__(
            module,
            criterion=ClusteringCriterion,
            iterator_train=even_batches,
            iterator_train__generator=generator,
            **kwargs,
        )
        self.views = views
        self.generator = generator
        self.policy = None  # the TrainingPolicy of a training, set by the trainer

    def set_loss(self, loss):
        """Train on ``loss`` from now on, keeping the optimizer's state.

        skorch's ``set_params(criterion__loss=...)`` would also start a new
        optimizer, as it must for a criterion with parameters; this one has
        none.
        """
        self.criterion__loss = loss
        self.initialize_criterion()

    def get_params_for_optimizer(self, prefix, named_parameters):
        """skorch's optimizer parameters, without weight decay on 1-d parameters.

        Weight decay shrinks the weights of the convolutions and linear maps
        (the network's and the heads'), not the biases nor the scales and
        shifts of normalization layers (the parameters of one dimension),
        whose size sets no margin and which decay would pull towards a
        degenerate 0 ("no bias decay", He et al., Bag of Tricks for Image
        Classification, CVPR 2019, §5.1).
        """
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        if not kwargs.get("weight_decay"):
            return args, kwargs
        groups = []
        for group in args[0]:
            params = group["params"]
            decayed = [param for param in params if param.ndim > 1]
            kept = [param for param in params if param.ndim <= 1]
            if decayed:
                groups.append({**group, "params": decayed})
            if kept:
                groups.append({**group, "params": kept, "weight_decay": 0.0})
        return (groups, *args[1:]), kwargs

    def fit_loop(self, X, y=None, **fit_params):
        """skorch's training loop, stopped by the policy, passing Ctrl-C on.

        With a ``policy`` (:class:`~skentropy._estimators._training.TrainingPolicy`,
        set by the trainer for one training), each epoch's margin term
        weighs what the policy says, and training stops when the policy says
        so. skorch's ``partial_fit`` ends the training quietly on a
        KeyboardInterrupt, keeping what was trained; an estimator's fit is
        atomic instead (it restores its previous state), so the interrupt
        leaves the loop as :class:`Interrupted`, which skorch does not catch,
        and the trainer raises it again as a KeyboardInterrupt. A
        KeyboardInterrupt of a user's skorch
        :class:`~skorch.callbacks.EarlyStopping` that ran out of patience
        ends the training as in skorch.
        """
        try:
            return super().fit_loop(X, y, **fit_params)
        except _StopTraining:
            return self
        except KeyboardInterrupt as interrupt:
            if any(_stopped_early(callback) for _, callback in self.callbacks_):
                return self
            raise Interrupted from interrupt

    def on_epoch_begin(self, net, **kwargs):
        """Stop if the policy said so; the margin scale of the new epoch."""
        policy = getattr(self, "policy", None)
        if policy is not None and policy.stopped:
            raise _StopTraining
        super().on_epoch_begin(net, **kwargs)
        if policy is not None:
            self.criterion_.margin_scale = policy.begin_epoch()

    def on_epoch_end(self, net, **kwargs):
        """Hand the policy the epoch's loss: the lowest of the heads' means."""
        super().on_epoch_end(net, **kwargs)
        policy = getattr(self, "policy", None)
        if policy is not None:
            policy.end_epoch(float(epoch_head_losses(self.history[-1]).min()))

    def train_step(self, batch, **fit_params):
        """One optimizer step; none for a batch whose samples all weigh 0.

        Zero weights drop samples; a batch of them only is skipped whole, as
        the shallow trainer does, and its losses count as 0.
        """
        inputs, _ = unpack_data(batch)
        if not inputs["sample_weight"].any():
            self.history.record_batch("head_losses", [0.0] * len(self.module_.heads))
            return {"loss": inputs["sample_weight"].sum(), "y_pred": None}
        return super().train_step(batch, **fit_params)

    def infer(self, x, **fit_params):
        """ln σ of every head, shape (n_samples, n_heads, n_clusters).

        For a training batch (a dict), σ_i is averaged over the views of
        sample i: σ_i = mean over t of σ(v f_w(t_i)) (self-augmentation,
        entropy clustering supplement E.3, collision cross-entropy §5.2). For
        samples to predict (a tensor), σ_i = σ(v f_w(X_i)).
        """
        x = to_tensor(x, device=self.device)
        if not isinstance(x, Mapping):
            return torch.log_softmax(self.module_(x), dim=-1)
        views = self.views(x["X"], x["rows"], self.generator)
        log_probs = torch.log_softmax(self.module_(views), dim=-1)
        return average_over_views(log_probs, self.views.n_views)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The sum of the heads' losses on a batch; records each head's.

        The criterion gives the loss of each head; their sum trains every
        head on its own loss (they share the network).
        """
        sample_weight = to_tensor(X["sample_weight"], device=self.device)
        labels = X.get("labels")
        if labels is not None:
            labels = to_tensor(labels, device=self.device)
        head_losses = self.criterion_(y_pred, self.module_.heads, sample_weight, labels)
        loss = head_losses.sum()
        if not torch.isfinite(loss):
            raise ValueError(
                f"The training loss became {loss.item()}. The steps may be too "
                "large (decrease lr) or the inputs too large in magnitude "
                "(scale them, e.g. images to [0, 1])."
            )
        self.history.record_batch("head_losses", head_losses.tolist())
        return loss


def epoch_head_losses(epoch):
    """Mean loss of each head over the batches of one epoch of the history."""
    sizes = np.array([batch["train_batch_size"] for batch in epoch["batches"]])
    head_losses = np.array([batch["head_losses"] for batch in epoch["batches"]])
    return sizes @ head_losses / sizes.sum()


def _stopped_early(callback):
    """Whether ``callback`` is a skorch EarlyStopping that ran out of patience."""
    return isinstance(callback, EarlyStopping) and callback.misses_ == callback.patience


def even_batches(dataset, *, batch_size, generator, **kwargs):
    """A :class:`~torch.utils.data.DataLoader` over shuffled, even batches.

    The skorch ``iterator_train`` of deep mode: each epoch is a random
    partition of the samples into ``ceil(n / batch_size)`` batches that
    differ in size by at most one sample, as in the shallow estimators, so
    that no batch is left with a single sample (batch norm cannot train on
    one) and the fairness term of every batch sees many samples.
    """
    sampler = _EvenBatchSampler(len(dataset), batch_size, generator)
    return DataLoader(dataset, batch_sampler=sampler, **kwargs)


class _EvenBatchSampler:
    """Index lists of an epoch's batches, drawn anew at each iteration."""

    def __init__(self, n_samples, batch_size, generator):
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self):
        return -(-self.n_samples // self.batch_size)

    def __iter__(self):
        permutation = torch.randperm(self.n_samples, generator=self.generator)
        for rows in np.array_split(permutation.numpy(), len(self)):
            yield np.sort(rows).tolist()
