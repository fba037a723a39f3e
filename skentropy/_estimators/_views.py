"""Views: the inputs a training step sees for each sample of a mini-batch.

A views object maps a batch of samples to T views of each, and the trainers
(shallow and deep) average the predictions over them:

    σ_i = mean over the views t of σ(t_i),   ln σ_i = logsumexp_t ln σ(t_i) − ln T

(:func:`average_over_views`), so that the clusters become invariant to what
varies between the views. A views object has

- ``n_views``, the number T of views of each sample;
- ``__call__(batch, rows, generator)``, the views of the batch stacked view
  by view, a tensor of shape (T · n, ...) for a batch of n samples: the first
  n rows are the first view of each sample, and so on. ``rows`` are the
  indices of the batch's samples in X (a slice or an index array), so that a
  view may depend on a sample's neighbours in X; ``generator`` is the
  trainer's CPU :class:`torch.Generator`, for random views.

:class:`SingleView` is the sample itself (no averaging); :class:`AugmentedViews`
are random augmentations of it, the self-augmentation of deep mode (entropy
clustering supplement E.3, collision cross-entropy §5.2); :class:`NeighborViews`
are the sample and some of its k nearest neighbours in X, drawn anew for each
batch, which stand in for augmentations where there is no image to augment
(fixed features), as in SCAN (Van Gansbeke et al. 2020) and TEMI (Adaloglou
et al. 2023), and combine with them in deep mode.
"""

import inspect
import math

import numpy as np
import torch

# The number of neighbours drawn for the views of each sample with
# n_neighbors: T = 3 views, the sample and two distinct neighbours. On 3,000
# CIFAR-10 EfficientNet features (EntropyClustering, n_neighbors=20, seeds
# 0-3) one neighbour reached ACC 0.535, 0.481, 0.535, 0.534 (no views: 0.491
# for seed 0), two 0.540, 0.538, 0.540 (seeds 1-3) for 1.3 times the time.
NEIGHBOR_DRAWS = 2


def make_views(augment, n_augmentations):
    """The views of an estimator's ``augment`` and ``n_augmentations``."""
    if augment is None:
        return SingleView()
    return AugmentedViews(augment, n_augmentations)


def average_over_views(log_probs, n_views):
    """ln of the mean of σ over the views, from ln σ of the stacked views.

    Parameters
    ----------
    log_probs : torch.Tensor of shape (n_views * n_samples, ...)
        ln σ of the views, stacked view by view as the views object gives them.

    n_views : int
        The number T of views of each sample.

    Returns
    -------
    log_probs : torch.Tensor of shape (n_samples, ...)
        logsumexp over the views of ln σ, minus ln T.
    """
    if n_views == 1:
        return log_probs
    log_probs = log_probs.unflatten(0, (n_views, -1))
    return torch.logsumexp(log_probs, dim=0) - math.log(n_views)


class SingleView:
    """One view of each sample: the sample itself."""

    n_views = 1

    def __call__(self, batch, rows, generator):
        return batch


class AugmentedViews:
    """``n_augmentations`` random augmentations t(X_i) of each sample.

    Parameters
    ----------
    augment : callable
        A random transformation t of a batch of samples, called as
        ``augment(batch, generator=generator)`` if it takes a ``generator``,
        else as ``augment(batch)``. Samples of shape (H, W) are augmented as
        images of one channel.

    n_augmentations : int
        The number of views of each sample.
    """

    def __init__(self, augment, n_augmentations):
        self.augment = augment
        self.n_views = n_augmentations

    def __call__(self, batch, rows, generator):
        return torch.cat(
            [self._augmented(batch, generator) for _ in range(self.n_views)]
        )

    def _augmented(self, batch, generator):
        """t(batch) for one random t, handing the generator over if t takes one."""
        try:
            takes_generator = "generator" in inspect.signature(self.augment).parameters
        except (TypeError, ValueError):
            takes_generator = False
        images = batch.unsqueeze(1) if batch.ndim == 3 else batch  # (n, H, W)
        augmented = (
            self.augment(images, generator=generator)
            if takes_generator
            else self.augment(images)
        )
        if not isinstance(augmented, torch.Tensor) or augmented.shape != images.shape:
            raise ValueError(
                "augment must return a tensor of the shape of its input "
                f"{tuple(images.shape)}; got {type(augmented).__name__} of shape "
                f"{tuple(getattr(augmented, 'shape', ()))}."
            )
        return augmented.view_as(batch)


class NeighborViews:
    """The sample and ``n_drawn`` of its k nearest neighbours, each seen by ``views``.

    For each batch, ``n_drawn`` distinct neighbours of each sample are drawn
    uniformly from its k nearest (a new draw for every batch), so that
    σ_i = mean of σ over x_i and the drawn x_j: a cluster boundary that
    separates a sample from its neighbours costs in the loss, as one that
    separates it from its augmentations does.

    Parameters
    ----------
    neighbors : ndarray of shape (n_samples, k)
        The indices in X of the k nearest neighbours of each row of X.

    read : callable
        ``read(indices)``: the rows of X at ``indices`` (an int64 ndarray,
        sorted) as a tensor like the batches.

    n_drawn : int, default=1
        The number of neighbours drawn for each sample; at most k are.

    views : views object, default=None
        The views of each of these samples (e.g. :class:`AugmentedViews`);
        ``None`` is :class:`SingleView`. Their count multiplies: T =
        (1 + ``n_drawn``) · ``views.n_views``.
    """

    def __init__(self, neighbors, read, n_drawn=1, views=None):
        self.neighbors = torch.as_tensor(neighbors, dtype=torch.int64)
        self.read = read
        self.n_drawn = min(n_drawn, self.neighbors.shape[1])
        self.views = SingleView() if views is None else views
        self.n_views = (1 + self.n_drawn) * self.views.n_views

    def __call__(self, batch, rows, generator):
        if isinstance(rows, torch.Tensor):
            rows = rows.cpu()
        samples = torch.arange(self.neighbors.shape[0])[rows]
        drawn = self.draw(samples, generator)  # (n_drawn, n)
        order = drawn.flatten().numpy()
        unique, inverse = np.unique(order, return_inverse=True)
        neighbors = self.read(unique)[torch.from_numpy(inverse).to(batch.device)]
        return self.views(torch.cat([batch, neighbors]), None, generator)

    def draw(self, samples, generator):
        """``n_drawn`` distinct neighbours of each sample, uniformly among k.

        Returns
        -------
        drawn : torch.Tensor of shape (n_drawn, n_samples)
            Indices in X, stacked draw by draw.
        """
        keys = torch.rand(len(samples), self.neighbors.shape[1], generator=generator)
        columns = keys.argsort(dim=1)[:, : self.n_drawn]
        return torch.gather(self.neighbors[samples], 1, columns).T
