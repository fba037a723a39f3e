"""The skorch bridge of deep mode: a feature network f_w trained with the heads.

With a ``module``, an estimator trains σ(v f_w(X) + b) end to end: the
feature network f_w (the user's module, e.g. :class:`~skentropy.nets.VGG4`)
and the clustering heads of the shallow estimators on top of it, on the
estimator's own loss, by a :class:`skorch.NeuralNet` (held as the estimator's
``net_``) rather than a second training loop: skorch gives the batches, the
optimizer, callbacks (early stopping, checkpoints, LR schedules), the
printed log and its progress bar.

- :class:`ClusteringModule` is the network: f_w followed by ``n_heads``
  heads; its output holds every head's logits.
- :class:`ClusteringNet` is the skorch net. It overrides one step,
  :meth:`~ClusteringNet.train_step_single`, which averages σ over the
  augmented views of each image (self-augmentation) and asks the estimator
  for the loss; the estimator's loss and the random generator come with each
  call as ``fit_params``, so the net holds no reference to the estimator.
"""

import copy
import inspect
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from skentropy._heads import make_head

try:
    from skorch import NeuralNet
    from skorch.callbacks import EarlyStopping, ProgressBar
    from skorch.dataset import unpack_data
    from skorch.utils import to_tensor
except ImportError:  # deep mode is optional: the estimators raise the hint
    NeuralNet = object

def check_skorch():
    """Raise an ImportError with the install hint when skorch is missing."""
    if NeuralNet is object:
        raise ImportError(
            "Deep mode (module=...) trains the network with skorch, which is "
            'not installed: pip install "skentropy[deep]" (or pip install skorch).'
        )


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
        self, backbone, backbone_params, input_shape, n_clusters, n_heads, head,
        temperature,
    ):
        super().__init__()
        self.backbone = _build_backbone(backbone, backbone_params, input_shape)
        n_features = _n_output_features(self.backbone, input_shape)
        self.heads = nn.ModuleList(
            make_head(head, n_features, n_clusters, temperature)
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


class ClusteringNet(NeuralNet):
    """A skorch net that trains a :class:`ClusteringModule` without labels.

    The training data X is a dict with the samples ``"X"``, their
    ``"sample_weight"`` and, with weak supervision, their ``"labels"``
    (−1 = unlabeled); y is unused. Every ``fit``/``partial_fit`` call passes
    the loss of a batch, ``batch_loss(module, log_probs, sample_weight,
    labels) -> head_losses``, as a ``fit_params``.

    Parameters
    ----------
    module : type
        :class:`ClusteringModule`, built by skorch from ``module__*``.

    augment : callable or None
        Random augmentation t of a batch of samples, called as
        ``augment(X, generator=generator)`` if it takes a ``generator``
        argument, else ``augment(X)``. ``None``: no augmentation.

    n_augmentations : int
        Number of augmented views averaged in σ_i when ``augment`` is set.

    generator : torch.Generator
        CPU generator that shuffles the batches (into even batches, see
        :func:`even_batches`) and draws the augmentations.

    **kwargs
        Parameters of :class:`skorch.NeuralNet`.
    """

    def __init__(
        self, module, *, augment=None, n_augmentations=1, generator=None, **kwargs
    ):
        # The loss is the estimator's, passed per call; skorch requires a
        # criterion, which is never called.
        super().__init__(
            module,
            criterion=nn.Identity,
            iterator_train=even_batches,
            iterator_train__generator=generator,
            **kwargs,
        )
        self.augment = augment
        self.n_augmentations = n_augmentations
        self.generator = generator

    def train_step_single(self, batch, *, batch_loss):
        """One step: σ averaged over augmented views, the heads' losses.

        σ_i = mean over t of σ(v f_w(t(X_i))) (self-augmentation, entropy
        clustering supplement E.3, collision cross-entropy §5.2); without
        ``augment``, σ_i = σ(v f_w(X_i)). The gradient of the sum of the
        heads' losses is computed here; skorch takes the optimizer step.
        """
        self._set_training(True)
        inputs, _ = unpack_data(batch)
        inputs = to_tensor(inputs, device=self.device)
        if not inputs["sample_weight"].any():  # zero weights drop a whole batch
            self.history.record_batch("head_losses", [0.0] * len(self.module_.heads))
            return {"loss": inputs["sample_weight"].sum(), "y_pred": None}
        log_probs = self.view_log_probs(inputs["X"])
        head_losses = batch_loss(
            self.module_, log_probs, inputs["sample_weight"], inputs.get("labels")
        )
        loss = head_losses.sum()
        if not torch.isfinite(loss):
            raise ValueError(
                f"The training loss became {loss.item()}. The steps may be too "
                "large (decrease lr) or the inputs too large in magnitude "
                "(scale them, e.g. images to [0, 1])."
            )
        loss.backward()
        self.history.record_batch("head_losses", head_losses.tolist())
        return {"loss": loss, "y_pred": log_probs}

    def view_log_probs(self, X):
        """ln σ averaged over the augmented views, shape (n, n_heads, K)."""
        if self.augment is None:
            return torch.log_softmax(self.module_(X), dim=-1)
        views = torch.cat(
            [_call_augment(self.augment, X, self.generator)
             for _ in range(self.n_augmentations)]
        )
        log_probs = torch.log_softmax(self.module_(views), dim=-1)
        log_probs = log_probs.unflatten(0, (self.n_augmentations, X.shape[0]))
        # ln mean_t σ_t = logsumexp_t ln σ_t − ln T
        return torch.logsumexp(log_probs, dim=0) - np.log(self.n_augmentations)


def _call_augment(augment, X, generator):
    """t(X) for one random t, handing the generator over if t takes one.

    Samples of shape (H, W) are augmented as images of one channel.
    """
    try:
        takes_generator = "generator" in inspect.signature(augment).parameters
    except (TypeError, ValueError):
        takes_generator = False
    images = X.unsqueeze(1) if X.ndim == 3 else X  # (n, H, W): one channel
    augmented = (
        augment(images, generator=generator) if takes_generator else augment(images)
    )
    if not isinstance(augmented, torch.Tensor) or augmented.shape != images.shape:
        raise ValueError(
            "augment must return a tensor of the shape of its input "
            f"{tuple(images.shape)}; got {type(augmented).__name__} of shape "
            f"{tuple(getattr(augmented, 'shape', ()))}."
        )
    return augmented.view_as(X)


def default_callbacks(n_iter_no_change, tol, verbose):
    """The estimator's own skorch callbacks, as ``(name, callback)`` pairs.

    Early stopping on the training loss with the estimators' rule (as
    :class:`~sklearn.neural_network.MLPClassifier`: stop once the loss has
    not improved by ``tol`` for more than ``n_iter_no_change`` epochs), and a
    progress bar over the batches with ``verbose >= 2``; skorch prints its
    table of epochs with ``verbose >= 1``.
    """
    callbacks = [
        (
            "early_stopping",
            EarlyStopping(
                monitor="train_loss",
                patience=n_iter_no_change + 1,
                threshold=tol,
                threshold_mode="abs",
                sink=print if verbose else silent,
            ),
        )
    ]
    if verbose >= 2:
        callbacks.append(("progress_bar", ProgressBar()))
    return callbacks


def silent(*args, **kwargs):
    """A sink that prints nothing (a module function, so that nets pickle)."""


def epoch_head_losses(epoch):
    """Mean loss of each head over the batches of one epoch of the history."""
    sizes = np.array([batch["train_batch_size"] for batch in epoch["batches"]])
    head_losses = np.array([batch["head_losses"] for batch in epoch["batches"]])
    return sizes @ head_losses / sizes.sum()


def log_probs(net, X, head):
    """ln σ of one head for all samples of X, by batches in evaluation mode."""
    logits = [
        output[:, head]
        for output in net.forward_iter(X, training=False, device="cpu")
    ]
    return torch.log_softmax(torch.cat(logits), dim=1)


def features(net, X, batch_size):
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


@contextmanager
def seeded_rng(seed, device):
    """Fork torch's global RNG and seed it, for what skorch and modules draw.

    skorch initializes the module's parameters, and dropout draws its masks,
    from torch's global generators: forking them (the CUDA one of ``device``
    too) and seeding the fork keeps training reproducible without seeding
    them globally.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


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
