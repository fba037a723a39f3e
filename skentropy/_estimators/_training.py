"""What training means, the same for the shallow and the deep trainer.

An estimator's ``_fit`` hands a :class:`Trainer` the data (:class:`TrainingData`),
the loss (:class:`TrainingLoss`) and what the call asks for (:class:`Run`),
and gets a :class:`TrainingResult` back. Both trainers follow one
:class:`TrainingPolicy` from epoch to epoch (the margin warm-up, the
stopping rule). Two trainers implement the interface:

- :class:`~skentropy._estimators._shallow.ShallowTrainer` trains the heads on
  the features X themselves, with its own mini-batch loop;
- ``skentropy._deep.DeepTrainer`` trains a feature network with the heads,
  through skorch (deep mode, optional).
"""

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from skentropy import losses
from skentropy._estimators._neighbors import nearest_neighbors
from skentropy._prior import PriorEstimate

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}

# The training policy counts optimizer steps, not epochs: the margin's warm-up
# lasts as many epochs as make MARGIN_WARMUP_STEPS steps, and the default
# patience of the stopping rule (n_iter_no_change="auto") as many as make
# PATIENCE_STEPS steps, each between MIN_EPOCHS and MAX_EPOCHS (see
# epochs_of_steps).
MARGIN_WARMUP_STEPS = 80
PATIENCE_STEPS = 160
MIN_EPOCHS, MAX_EPOCHS = 2, 10
# The longest warm-up, that of data of at most 8 batches (digits, 1,797 rows).
MARGIN_WARMUP_EPOCHS = MAX_EPOCHS
# lr="auto": the learning rate of every optimizer and mode, except Adam on
# fixed features, where it is scaled to the number of features (see
# learning_rate): AUTO_LR on REFERENCE_FEATURES features.
AUTO_LR = 0.01
REFERENCE_FEATURES = 1280
MAX_AUTO_LR = 4 * AUTO_LR


def epochs_of_steps(steps, steps_per_epoch):
    """Epochs that make at least ``steps`` optimizer steps, within [2, 10].

    An optimizer step moves the heads by about the same amount whatever the
    number of samples, so the warm-up and the patience are set in steps. The
    warm-up's 80 steps are its 10 epochs of 8 batches of 250 rows (digits,
    where it was set), 2 epochs of 10,000 rows; the patience's 160 steps are
    still 10 epochs of digits, 4 of 10,000 rows. Between 2 epochs (a loss
    compared over at least two passes over the data) and 10 (small data
    keeps the epochs it had). Measured on the 12 cells of ``table2.py``
    (4 feature files of 5,000 to 10,000 rows, raw, standardized and
    L2-normalized, 3 seeds): the same mean ACC and NMI within 0.3 point for
    the three main estimators, in about half the epochs; a patience of 80
    steps lost 0.5 point for MaxMargin (``benchmarks/README.md``).
    """
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(steps / steps_per_epoch)))


def learning_rate(lr, optimizer, n_features=None):
    """The learning rate of a fit: ``lr`` itself, or what ``"auto"`` means.

    With ``lr="auto"``, Adam on fixed features of ``n_features`` columns
    steps by 0.01 · √(1280 / ``n_features``), at most 0.04; every other case
    (SGD, deep mode, where ``n_features`` is None) by 0.01.

    Why the square root: Adam moves each weight by about lr per step,
    whatever its gradient's scale, so a logit vᵀz moves by about
    lr · ‖z‖₁ ≈ lr · √d on the standardized rows z (unit root-mean-square
    norm, :func:`~skentropy._estimators._heads.input_standardization`),
    while the logits' spread at the start does not depend on d (the initial
    temperature sets it). With one lr for all d, 64 features needed 4.5
    times the steps of 1280. 0.01 is the step at which the defaults were
    measured on 1280-d image features (the benchmarks' files keep it
    exactly).

    Why at most 0.04 (four times the reference, reached at 80 features):
    measured, not derived. At the rule's 0.089 on 16 features,
    ``prior="auto"`` lost the long-tailed blobs of 1000/400/150/60 rows
    (CollisionCE ARI 0.98 at lr 0.01, 0.58 and 0.80–0.84 on two of four
    data sets at 0.089, even with the paced warm-up), and
    standardized PCA-32 CIFAR-10 features lost 5 points of accuracy for
    Entropy at 0.063; at 0.04 both hold (``benchmarks/README.md``).

    Parameters
    ----------
    lr : float or "auto"
        The estimator's parameter.

    optimizer : {"adam", "sgd"}
        The estimator's optimizer.

    n_features : int, default=None
        Columns of the fixed features the heads train on; None in deep mode.

    Returns
    -------
    lr : float
    """
    if lr != "auto":
        return lr
    if optimizer == "adam" and n_features is not None:
        return min(MAX_AUTO_LR, AUTO_LR * math.sqrt(REFERENCE_FEATURES / n_features))
    return AUTO_LR


def step_pace(lr, optimizer):
    """How far an optimizer step goes, in steps of Adam at lr 0.01: lr / 0.01.

    Adam moves each weight by about lr per step, so a step at lr goes as far
    as lr / 0.01 steps at 0.01, the rate at which the margin's warm-up of
    ``MARGIN_WARMUP_STEPS`` steps and the patience of ``PATIENCE_STEPS``
    were set; :class:`TrainingPolicy` divides both by it. SGD's step
    follows the gradient's scale, not lr alone: its pace is 1.
    """
    return lr / AUTO_LR if optimizer == "adam" else 1.0


def margin_scale(epoch, warmup_epochs=MARGIN_WARMUP_EPOCHS):
    """The fraction of γ that the margin term weighs in epoch ``epoch`` (from 0).

    The margin weight of a new model grows linearly, epoch/``warmup_epochs``,
    over its first ``warmup_epochs`` epochs (:func:`epochs_of_steps` of
    ``MARGIN_WARMUP_STEPS`` = 80 steps: 10 epochs of digits, 2 of 10,000
    rows), and is γ from then on. At the start the predictions σ are soft,
    and a margin term at full weight keeps them soft (it shrinks v); then the
    self-labeling losses let a cluster die: with σ soft, the fairness of the
    pseudo-labels is met by spreading the dying cluster's share thinly over
    all points, at a cost of about ln(1/(1 − u_k)) per point, which never
    makes it the argmax of σ. Measured on MNIST-5k features, standardized:
    γ at full weight from the first step left 6 to 9 of 10 clusters in use;
    growing it over 10 epochs kept all 10 and reached accuracy 0.71 (K-means
    0.52).
    """
    return min(1.0, epoch / warmup_epochs)


def labeled_cross_entropy(log_probs, labels, sample_weight):
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


class TrainingData(NamedTuple):
    """The validated training data of a call to ``fit`` or ``partial_fit``."""

    X: np.ndarray
    """The samples; features (n, d) for the shallow trainer, any shape for a
    network."""

    labels: np.ndarray | None
    """Labels of weak supervision, int64 with −1 = unlabeled, or None."""

    sample_weight: np.ndarray
    """Nonnegative weights of the samples."""


class Run(NamedTuple):
    """What a call to ``fit`` or ``partial_fit`` asks of a trainer."""

    epochs: int
    """At most this many epochs: ``max_iter`` for ``fit``, 1 for ``partial_fit``."""

    new: bool
    """Whether the model is new (else the fitted one continues)."""

    incremental: bool
    """Whether the call is ``partial_fit``: the fitted model continues with its
    optimizer's state and its margin warm-up."""

    epochs_before: int
    """Epochs the model was trained for before (``n_iter_``; 0 if new)."""

    steps_per_epoch: int
    """Optimizer steps in an epoch: mini-batches of ``batch_size`` in the data."""

    description: str
    """What a progress bar calls the training."""


class TrainingResult(NamedTuple):
    """What a trainer returns: the same for both trainers."""

    model: object
    """The trained model: the trainer's own (heads, or a skorch net)."""

    head_losses: np.ndarray
    """Mean training loss of each head in the last epoch, shape (n_heads,)."""

    loss_curve: list
    """Training loss of every epoch run (the lowest of the heads' losses)."""

    converged: bool
    """Whether training stopped on the ``tol`` rule before ``Run.epochs``."""


class TrainingPolicy:
    """What changes from one epoch to the next, the same in both trainers.

    - **The margin warm-up.** A new model's margin term weighs
      :func:`margin_scale` · γ, growing over its first ``warmup_epochs``
      epochs (those of 80 optimizer steps of Adam at lr 0.01, 80 / ``pace``
      steps of another pace, :func:`epochs_of_steps`); ``partial_fit``
      continues the warm-up where the model is (its epochs so far); a
      warm-started ``fit`` weighs the whole γ from its first epoch.
    - **The stopping rule**, as :class:`~sklearn.neural_network.MLPClassifier`
      has it: training stops once the epoch's loss has not been lower than the
      best so far minus ``tol`` for more than ``patience`` epochs in a row
      (``n_iter_no_change``, or with ``"auto"`` the epochs of 160 optimizer
      steps at pace 1, 160 / ``pace`` at another). It applies once the
      warm-up has ended and counts from there: during the warm-up the loss
      rises by design (the margin term grows), and a training stopped then
      would keep a model fitted with part of γ.

    A trainer calls :meth:`begin_epoch` before each epoch and
    :meth:`end_epoch` after it. (Targets of an epoch, ``_epoch_targets``,
    are computed by the shallow trainer only: they need every sample
    through the model at each epoch, which deep mode does not afford.)

    Parameters
    ----------
    run : Run
        What the call asks for.

    tol : float
        The improvement of the loss that counts.

    n_iter_no_change : int or "auto"
        Epochs without such an improvement that are tolerated; ``"auto"``:
        those of ``PATIENCE_STEPS`` / ``pace`` optimizer steps.

    pace : float, default=1.0
        How far a step goes (:func:`step_pace`). The warm-up lasts as far as
        80 steps at pace 1 go, the patience as far as 160: with
        ``lr="auto"``, 20 and 40 steps of 0.04 on standardized digits (3 and
        5 epochs). Measured with ``prior="auto"`` on the
        long-tailed blobs of ``tests/test_prior.py`` (16 features, lr 0.04,
        4 data sets): with the unpaced 80-step warm-up the model split the
        large blob into equal shares before the estimate of the proportions
        began (it starts after the warm-up), ARI 0.58–0.94 (Entropy) and
        0.58–0.59 (CollisionCE); with the paced one 0.98–1.0 for both, with
        the patience paced or not. Pacing the patience too (11 inputs of 16
        to 512 features, 3 seeds, ``benchmarks/learning_rate.py``): ACC 0.3
        point lower on average than with the unpaced one, in 0.6 of its
        CPU time (against lr 0.01: +1.0 point, 0.37 of the time).

    Attributes
    ----------
    warmup_epochs : int
        Epochs of the margin's warm-up of a new model.

    patience : int
        Epochs without improvement that are tolerated.
    """

    def __init__(self, run, *, tol, n_iter_no_change, pace=1.0):
        self.warmup_epochs = epochs_of_steps(
            MARGIN_WARMUP_STEPS / pace, run.steps_per_epoch
        )
        if n_iter_no_change == "auto":
            n_iter_no_change = epochs_of_steps(
                PATIENCE_STEPS / pace, run.steps_per_epoch
            )
        self.patience = n_iter_no_change
        if run.new:
            self._warmup_start = 0
        elif run.incremental:
            self._warmup_start = run.epochs_before
        else:
            self._warmup_start = None  # a warm-started fit: the whole margin
        self.tol = tol
        self.epoch = 0  # epochs of this run begun
        self.stopped = False
        self._warming_up = False
        self._best_loss, self._n_no_improvement = np.inf, 0

    def begin_epoch(self):
        """Start the next epoch; the fraction of γ its margin term weighs."""
        scale = 1.0
        if self._warmup_start is not None:
            scale = margin_scale(self._warmup_start + self.epoch, self.warmup_epochs)
        self._warming_up = scale < 1.0
        self.epoch += 1
        return scale

    def end_epoch(self, loss):
        """Record the training loss of the epoch; whether training stops."""
        if self._warming_up:  # the rule counts from the end of the warm-up
            return False
        if loss > self._best_loss - self.tol:
            self._n_no_improvement += 1
        else:
            self._n_no_improvement = 0
        self._best_loss = min(self._best_loss, loss)
        self.stopped = self._n_no_improvement > self.patience
        return self.stopped


class TrainingLoss:
    """The training loss of one head on one mini-batch, in both trainers.

    The estimator's mini-batch loss ``batch_loss(log_probs, prior,
    sample_weight)`` (what its ``_mini_batch_loss`` hook returns), plus the
    margin term ``margin_scale`` · γ‖v‖² on the head's weights v, plus, with
    weak supervision, the mean cross-entropy of the labeled rows
    (:func:`labeled_cross_entropy`). An estimator that declares targets of
    an epoch (``_epoch_targets``) gets the batch's rows of them as the
    keyword ``epoch_targets`` of its ``batch_loss``.

    It holds the estimator's loss and parameters, not the estimator, so that
    a skorch net of deep mode keeps it in its criterion and still pickles.

    Parameters
    ----------
    batch_loss : callable
        The estimator's loss of a mini-batch, without margin and labels.

    gamma : float
        The weight γ of the margin term.

    prior : torch.Tensor of shape (n_clusters,), PriorEstimate or None
        Target cluster proportions u; ``None`` means uniform. A
        :class:`~skentropy._prior.PriorEstimate` (``prior="auto"``) gives
        each head its own target, and each head's loss on a batch moves its
        estimate towards the batch's mean prediction σ̄.

    takes_stacks : bool, default=False
        Whether ``batch_loss`` also takes the heads' ln σ stacked, of shape
        (n_heads, n_samples, n_clusters), with the priors of shape
        (n_heads, n_clusters) (or one of shape (n_clusters,), or None), and
        returns the heads' losses, of shape (n_heads,): :meth:`stacked` then
        makes one call for all heads (see the estimators' ``_stacked_loss``).
    """

    def __init__(self, batch_loss, *, gamma, prior, takes_stacks=False):
        self.batch_loss = batch_loss
        self.gamma = gamma
        self.prior = prior
        self.takes_stacks = takes_stacks

    def to(self, dtype, device):
        """The same loss with its prior in ``dtype`` on ``device``.

        A :class:`~skentropy._prior.PriorEstimate` moves in place: the
        estimator reads the estimate it created when training ends.
        """
        prior = (
            None if self.prior is None else self.prior.to(dtype=dtype, device=device)
        )
        return TrainingLoss(
            self.batch_loss,
            gamma=self.gamma,
            prior=prior,
            takes_stacks=self.takes_stacks,
        )

    def head_prior(self, head):
        """The target proportions of head number ``head`` now (None: uniform)."""
        if isinstance(self.prior, PriorEstimate):
            return self.prior.target(head)
        return self.prior

    def __call__(
        self,
        log_probs,
        margin_weight,
        sample_weight,
        *,
        labels=None,
        epoch_targets=None,
        margin_scale=1.0,
        head=0,
    ):
        """The loss of one head on one batch.

        Parameters
        ----------
        log_probs : torch.Tensor of shape (n_samples, n_clusters)
            ln σ of the head on the batch (averaged over views), tracked by
            autograd.

        margin_weight : torch.Tensor or None
            The head's weights v of the margin term (``None``: the head has
            none).

        sample_weight : torch.Tensor of shape (n_samples,)
            Weights of the rows of the batch.

        labels : torch.Tensor of shape (n_samples,), default=None
            Labels of weak supervision (−1 = unlabeled), or None.

        epoch_targets : torch.Tensor, default=None
            The batch's rows of the estimator's targets of the epoch, or None.

        margin_scale : float, default=1.0
            The fraction of γ of the margin warm-up (:func:`margin_scale`).

        head : int, default=0
            The head's number, which picks its target proportions when they
            are estimated (``prior="auto"``).

        Returns
        -------
        loss : torch.Tensor of shape ()
        """
        extra = {} if epoch_targets is None else {"epoch_targets": epoch_targets}
        loss = self.batch_loss(log_probs, self.head_prior(head), sample_weight, **extra)
        return self._whole(
            loss, log_probs, margin_weight, sample_weight, labels, margin_scale, head
        )

    def stacked(
        self,
        log_probs,
        margin_weights,
        sample_weight,
        *,
        labels=None,
        epoch_targets=None,
        margin_scale=1.0,
    ):
        """The losses of all heads on one batch, as :meth:`__call__` gives each.

        Parameters
        ----------
        log_probs : torch.Tensor of shape (n_heads, n_samples, n_clusters)
            ln σ of every head on the batch (averaged over views), tracked by
            autograd.

        margin_weights : list of torch.Tensor or None
            The weights v of each head's margin term.

        sample_weight, labels, margin_scale
            As for :meth:`__call__`.

        epoch_targets : list of torch.Tensor, default=None
            The batch's rows of each head's targets of the epoch, or None.

        Returns
        -------
        losses : torch.Tensor of shape (n_heads,)
            One batch loss for all heads when the batch loss takes stacks
            (``takes_stacks``) and there are no targets of the epoch; one
            call per head otherwise.
        """
        heads = range(len(margin_weights))
        if not self.takes_stacks or epoch_targets is not None:
            return torch.stack(
                [
                    self(
                        log_probs[head],
                        margin_weights[head],
                        sample_weight,
                        labels=labels,
                        epoch_targets=None
                        if epoch_targets is None
                        else epoch_targets[head],
                        margin_scale=margin_scale,
                        head=head,
                    )
                    for head in heads
                ]
            )
        prior = self.prior
        if isinstance(prior, PriorEstimate):
            prior = torch.stack([self.head_prior(head) for head in heads])
        batch_losses = self.batch_loss(log_probs, prior, sample_weight)
        return torch.stack(
            [
                self._whole(
                    batch_losses[head],
                    log_probs[head],
                    margin_weights[head],
                    sample_weight,
                    labels,
                    margin_scale,
                    head,
                )
                for head in heads
            ]
        )

    def _whole(
        self, loss, log_probs, margin_weight, sample_weight, labels, margin_scale, head
    ):
        """A head's batch loss plus its margin and labeled terms; moves its prior."""
        if isinstance(self.prior, PriorEstimate) and margin_scale == 1.0:
            weight = sample_weight / sample_weight.sum()
            self.prior.update(head, weight @ log_probs.detach().exp())
        if margin_weight is not None:
            loss = loss + margin_scale * self.gamma * losses.margin(margin_weight)
        if labels is not None:
            loss = loss + labeled_cross_entropy(log_probs, labels, sample_weight)
        return loss


class Trainer(ABC):
    """How the model of an estimator is built, trained and run, in one mode.

    A trainer reads the estimator's parameters and fitted state; the
    estimator's ``_fit`` calls, for a new model,
    ``new_model`` then ``train``, and for a fitted one ``continued_model``
    then ``train``, and stores what the :class:`TrainingResult` holds.
    Prediction calls ``validate_input``, ``fitted_model`` and ``log_probs``.

    Parameters
    ----------
    estimator : _BaseEntropyClustering
        The estimator whose model this trains.
    """

    def __init__(self, estimator):
        self.estimator = estimator
        self._neighbors = None  # (X, its neighbours): mined once per call

    def neighbors(self, X, sample_weight, device):
        """The ``n_neighbors`` nearest neighbours of each row of X, or None.

        Mined once per call of ``fit`` or ``partial_fit`` (a trainer serves
        one call; the ``n_init`` trainings share them), among the rows of
        positive weight, by Euclidean distance between the rows of X
        flattened (:func:`~skentropy._estimators._neighbors.nearest_neighbors`).

        Returns
        -------
        neighbors : ndarray of shape (n_samples, n_neighbors) or None
            Indices in X; None when ``n_neighbors`` is None.
        """
        n_neighbors = self.estimator.n_neighbors
        if n_neighbors is None:
            return None
        if self._neighbors is None or self._neighbors[0] is not X:
            flat = X.reshape(X.shape[0], -1)
            neighbors, _ = nearest_neighbors(
                flat, n_neighbors, candidates=sample_weight > 0, device=device
            )
            self._neighbors = (X, neighbors)
        return self._neighbors[1]

    @abstractmethod
    def validate_input(self, X, *, reset):
        """X validated for this mode; ``reset`` as for ``validate_data``."""

    @abstractmethod
    def weight_dtype(self, X):
        """The dtype of the sample weights for the validated X."""

    @abstractmethod
    def new_model(self, data, random_state, device):
        """A new model, its heads seeded on ``data`` (a :class:`TrainingData`)."""

    @abstractmethod
    def continued_model(self, data, random_state, device):
        """The fitted model, ready to train on ``data`` again."""

    @abstractmethod
    def fitted_model(self, device):
        """The fitted model, to predict with."""

    @abstractmethod
    def train(self, model, data, loss, run, random_state, device):
        """Train ``model`` on ``data`` as ``run`` asks; a :class:`TrainingResult`.

        Parameters
        ----------
        model : object
            From ``new_model`` or ``continued_model``.

        data : TrainingData

        loss : TrainingLoss

        run : Run

        random_state : numpy.random.RandomState

        device : torch.device
        """

    @abstractmethod
    def log_probs(self, model, X, head):
        """ln σ of head number ``head`` on every row of X, without gradients."""

    @abstractmethod
    def heads(self, model):
        """The heads of a model, a :class:`torch.nn.ModuleList`."""

    @abstractmethod
    def fitted_state(self, model):
        """The fitted attributes of this mode, as a dict (e.g. ``net_``)."""
