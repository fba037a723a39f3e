"""The docstring texts that estimators share, and the decorator that fills them in.

A docstring line that holds only ``{name}`` (any indentation) is a
placeholder: :func:`fill_doc` replaces it with ``SHARED[name]``, indented as
the line. Two kinds of text are shared:

- the description of a parameter or attribute, placed under its own header
  line (``batch_size : int, default=250``), which stays in the class so that
  its defaults are read next to the signature;
- whole entries or paragraphs (``{deep_parameters}``, ``{head_attributes}``,
  ``{initialization_notes}``), for what is identical in every estimator.

One wording per shared parameter: a parameter that means the same in every
estimator is described here and nowhere else. ``tests/test_docstrings.py``
checks that the filled docstrings document every parameter of the
signature, in its order.
"""

import re
import textwrap

SHARED = {
    # -- parameters ---------------------------------------------------------
    "n_clusters": """\
The number of clusters K, the number of outputs of the model.""",
    "gamma": """\
Weight γ of the margin term γ‖v‖² on the weights v of the linear head
(not on its bias). Larger values widen the soft margin 1/‖v‖ between
the clusters. On fixed features γ is in units of the data: the model
sees X through z = (x − x̄)/s, centered and scaled to unit
root-mean-square norm, and the margin term acts on the weights of 10·z,
the rows at a mean squared norm of 100, about that of the papers' fixed
features. So a value means the same on raw, standardized or unit-norm
features at any scale and dimension (see :ref:`margin`), and the papers'
values for fixed features, 0.001 to 0.02, keep every cluster (0.02, the
default, beat K-means on 11 of 12 benchmark inputs). Much larger values
(from about 0.05 to 0.1) leave clusters empty (a ``ConvergenceWarning``
says so and names a smaller γ). In deep mode γ acts on the head's
weights on the network's features, as in the papers. The margin weight
grows from 0 to γ over the first 10 epochs of a new model.""",
    "prior": """\
Target cluster proportions u: positive, summing to one. ``None`` means
equal proportions, u_k = 1/K. ``"auto"`` estimates them while training,
for clusters of unknown, unequal sizes: each head's estimate m follows
its mean prediction σ̄ over about the last epoch (on fixed features
from the end of the margin's warm-up on), and the target of the next mini-batch is
u ∝ m^0.7, pulled towards equal shares, with no share below 0.5/K
(the user guide's "Clusters of unknown sizes"). It suits long-tailed
data; on balanced data the equal default is safer.""",
    "max_iter": """\
Maximum number of epochs (passes over the training data).""",
    "batch_size": """\
Number of samples in a mini-batch, each of which makes one training
step. The rows of an epoch are split into batches of at most
``batch_size`` rows and nearly equal sizes.""",
    "lr": """\
Learning rate of the optimizer. ``"auto"``: with Adam on fixed features
0.01 · √(1280 / n_features), at most 0.04 (0.01 on 1280 features, 0.04
on 80 or fewer), since Adam moves each weight by about lr per step and a
logit then by about lr · √n_features on the standardized rows; 0.01 with
SGD and in deep mode. The margin's warm-up and the patience
(``n_iter_no_change="auto"``) last 80 and 160 steps at 0.01, fewer at a
larger lr (80 · 0.01 / lr and 160 · 0.01 / lr with Adam).""",
    "optimizer": """\
``"adam"`` is :class:`torch.optim.Adam`, ``"sgd"`` plain stochastic
gradient descent (:class:`torch.optim.SGD`), the optimizer of the
papers' protocol on fixed features.""",
    "weight_decay": """\
Weight decay of the optimizer, a separate setting from ``gamma``. On
fixed features it acts on all parameters of the heads, the bias
included; in deep mode (``module``) on the weights of the network's
convolutions and linear maps and of the heads, not on biases nor on the
scales and shifts of normalization layers.""",
    "tol": """\
Tolerance of the stopping rule: training stops when the mean training
loss of an epoch has not been lower than the best so far minus ``tol``
for more than ``n_iter_no_change`` epochs in a row. The rule applies
from the end of the margin's warm-up (the first epochs of a new model,
as many as make 80 optimizer steps, between 2 and 10: 10 on 2,000
rows, 2 on 10,000 with ``batch_size=250``; the margin weight grows to
γ and the loss rises by design).""",
    "n_iter_no_change": """\
Number of epochs without an improvement of at least ``tol`` that
training tolerates before it stops. ``"auto"``: as many as make 160
optimizer steps at lr 0.01 (160 · 0.01 / lr with Adam), between 2 and 10
(10 on 2,000 rows, 4 on 10,000 with ``batch_size=250`` and lr 0.01): an
optimizer step moves the heads by about as much whatever the number of
rows, so a patience in epochs would wait 10 times longer on 10 times
more data. An integer counts epochs, as in scikit-learn.""",
    "head": """\
The head producing the logits. ``"linear"`` is the linear model
vᵀx + b. ``"normfc"`` is the Norm-FC head of Han et al. (twostage
supplement eq. 2): the cosines between the features and fixed random
unit prototypes, divided by ``temperature``; the prototypes are drawn
once from ``random_state`` and never change. On fixed features
(``module=None``) nothing else would train, so the head first projects
them, g = Wx + b, with a trained square matrix W; ``gamma`` applies to
W, and as the logits are bounded by 1/τ, it shrinks W but does not set
a margin as for the linear head. In deep mode the features f_w(X) of
the network are compared with the prototypes as they are, as in the
paper: the network trains, the head has no parameter and ``gamma`` has
nothing to act on.""",
    "n_heads": """\
Number of heads trained at once on the same mini-batches, each from its
own k-means++ seeds (and Norm-FC prototypes); the head with the lowest
training loss in the last epoch is kept, a selection that needs no
labels (as in IIC, SCAN and TwoStageUC). Unlike ``n_init``, whose
trainings run one after the other, each with its own epochs and early
stopping, the heads share every epoch and every mini-batch (on fixed
features, one matrix product gives all linear heads' logits, and the
self-labeling estimators solve all heads' pseudo-labels of a batch at
once); early stopping follows the lowest head loss. Both can be
combined. The heads cost time and buy accuracy: on the 1,280-d feature
files of ``benchmarks/table2.py`` (4 files, raw, standardized and
L2-normalized, 3 seeds) one head fits 1.7 to 3.3 times faster than five
but loses 2.5 (Entropy), 3.0 (CollisionCE) and 4.9 (MaxMargin) points of ACC
on average, and falls below K-means in several cells
(``benchmarks/README.md``).""",
    "temperature": """\
Temperature τ of the Norm-FC head, logits = cos / τ; the paper uses
0.1. Ignored by the linear head.""",
    "semi_supervised": """\
If True, ``fit`` and ``partial_fit`` use ``y`` as weak supervision: y_i
in ``0..n_clusters - 1`` labels sample i with cluster (class) y_i, y_i
= -1 leaves it unlabeled, and the mean cross-entropy −ln σ_{i,y_i} of
the labeled samples of each mini-batch is added to the training loss
(Zhang and Boykov §5.3; Zhang et al. supplement E.4). Cluster k then
means class k. ``y=None`` means no labels. If False, ``y`` is ignored,
as by every scikit-learn clusterer.""",
    "n_init": """\
Number of trainings from different initializations. The one with the
lowest training loss in its last epoch is kept.""",
    "warm_start": """\
If True, ``fit`` continues from the parameters of the previous fit (a
single training; ``n_init`` is ignored).""",
    "random_state": """\
Determines the initialization (k-means++ seeds) and the order of the
samples in the mini-batches. Pass an int for reproducible results
across multiple function calls (on the CPU).
See :term:`Glossary <random_state>`.""",
    "verbose": """\
If positive, show a progress bar over the epochs with the training
loss.""",
    "device": """\
Where the model is trained and evaluated. ``"auto"`` uses a CUDA GPU if
one is available. The fitted parameters are stored as numpy arrays in
any case.""",
    "n_neighbors": """\
Neighbour views: with an int k, σ_i in training is the mean of σ over
three views, sample i and two of its k nearest neighbours (one if
k = 1), drawn at random for each mini-batch, as over augmented views
in deep mode: a cluster boundary between a sample and its neighbours
costs in the loss. The mean enters the pseudo-labels of the batch and
the optimizer step alike. Neighbours are the k rows of X nearest in
Euclidean distance (of the features z = (x − x̄)/s the head sees, which
has the neighbours of X; pass L2-normalized rows for cosine
neighbours), among the samples of positive weight, mined once per call
of ``fit`` (exactly, in blocks, in memory O(n_samples · k); beyond
50,000 samples by a tree on few features, or faiss's HNSW index if
installed) and, by ``partial_fit``, within the chunk it is given (so
also per block of a dask array). In deep mode they are mined on the
input X as given, flattened, and combine with ``augment``: each view
is augmented. k must be smaller than the number of samples. ``None``:
σ_i = σ(x_i), no neighbours. See :ref:`neighbor-views`.""",
    "deep_parameters": """\
module : torch.nn.Module class or instance, default=None
    Feature network f_w of deep mode: the estimator then trains σ(v f_w(X)
    + b), network and head together, on its loss, by a ``skorch.NeuralNet``
    (the fitted ``net_``), and the samples of X may have any shape, e.g.
    images of shape (C, H, W). A class is built with the ``module__*``
    parameters, and with ``input_shape=X.shape[1:]`` if it takes that
    argument and it is not given (e.g. :class:`~skentropy.nets.VGG4`); an
    instance is copied, never trained in place. ``None`` trains the head on
    the features X themselves. See :ref:`deep`.

augment : callable, default=None
    Self-augmentation of deep mode: a random transformation t of a batch of
    samples (a tensor), called as ``augment(batch, generator=g)`` if it
    takes a ``generator`` (a CPU :class:`torch.Generator` seeded from
    ``random_state``), else as ``augment(batch)``, e.g.
    :class:`~skentropy.augment.SelfAugmentation`. σ_i is then the mean of σ
    over ``n_augmentations`` views t(X_i) (entropy paper supplement E.3).
    Samples of shape (H, W) are augmented as one-channel images. ``None``:
    σ_i = σ(X_i).

n_augmentations : int, default=2
    Number of augmented views of each sample with ``augment``; the papers
    use 2.

callbacks : list of skorch callbacks or (name, callback) tuples, \
default=None
    Extra callbacks of deep mode (``skorch.callbacks``, e.g. ``Checkpoint``
    or ``LRScheduler``), added to the estimator's own: early stopping on
    the training loss (``tol``, ``n_iter_no_change``) and, with ``verbose
    >= 2``, a progress bar over the batches (with ``verbose >= 1`` skorch
    prints its table of epochs). Each training uses copies of them.

**kwargs : dict
    ``module__<name>=value`` parameters: the keyword arguments that the
    ``module`` class is built with, tunable by ``set_params`` and
    :class:`~sklearn.model_selection.GridSearchCV`, as in skorch.""",
    # -- attributes ---------------------------------------------------------
    "head_attributes": """\
coef_ : ndarray of shape (n_clusters, n_features)
    Weights v of the linear model, in the dtype of the training data. Only
    with ``head="linear"``; with several heads, those of the kept head (as
    for every head attribute).

intercept_ : ndarray of shape (n_clusters,)
    Bias b of the linear model. Only with ``head="linear"``.

projection_coef_ : ndarray of shape (n_features, n_features)
    Projection W of the Norm-FC head. Only with ``head="normfc"`` on fixed
    features (``module=None``).

projection_intercept_ : ndarray of shape (n_features,)
    Bias b of the projection of the Norm-FC head. Only with
    ``head="normfc"`` on fixed features (``module=None``).

prototypes_ : ndarray of shape (n_clusters, n_features)
    Fixed unit prototypes of the Norm-FC head. Only with ``head="normfc"``.

head_losses_ : ndarray of shape (n_heads,)
    Training loss of each head in the last epoch.

best_head_ : int
    Index of the kept head, the argmin of ``head_losses_``; ``predict``
    uses it only.

labels_ : ndarray of shape (n_samples,)
    Cluster of each training sample (argmax σ) at the end of training.

prior_ : ndarray of shape (n_clusters,)
    Estimated share of the data of each cluster, the kept head's mean
    prediction over about the last epoch. Only with ``prior="auto"``.

n_iter_ : int
    Number of epochs run.

n_steps_ : int
    Number of optimizer steps (mini-batches) made.""",
    "loss_curve_": """\
With several heads, the lowest of the heads' losses; with
``semi_supervised``, including the cross-entropy of the labeled
samples.""",
    "converged_": """\
Whether training stopped on the ``tol`` rule before ``max_iter``.""",
    "input_attributes": """\
n_features_in_ : int
    Number of features seen during :term:`fit`.

feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :term:`fit`. Defined only when `X` has
    feature names that are all strings.""",
    "deep_attributes": """\
net_ : skorch.NeuralNet
    Deep mode only: the trained net. Its ``module_`` holds the feature
    network (``module_.backbone``) and the heads (``module_.heads``), its
    ``history`` the loss of every epoch and batch. It pickles and loads on
    a machine without CUDA. The head's parameters (e.g. ``coef_``) are then
    those on the features f_w(X).""",
    # -- notes --------------------------------------------------------------
    "initialization_notes": """\
The model starts as a soft nearest-prototype classifier on k-means++ seeds,
σ_k(x) ∝ exp(−‖x − c_k‖² / 2T), so that every cluster starts with some
points: a randomly initialized linear model on low-dimensional data can
start with clusters that hold no point, and the loss does not revive them.
The temperature T makes the mean entropy of σ on the seeding rows 0.9 ln K,
and the bias is shifted so that the mean prediction there equals the prior
(see :ref:`input-scale`).""",
    "defaults_notes": """\
Defaults, chosen without labels and by principle rather than tuned to one
data set, so that they carry over to inputs not seen here:

- Units. The head acts on X centered and scaled to unit root-mean-square
  norm (:ref:`input-scale`): ``gamma``, ``lr`` and the initialization mean
  the same for raw, standardized or unit-norm features at any scale, and
  ``fit(c * X)`` gives the clustering of ``fit(X)``. ``gamma`` (default
  0.02, the papers' value for CIFAR-10 and STL-10) acts on the rows scaled
  to a mean squared norm of 100 (:ref:`margin`).
- Optimizer and epochs. The papers' protocol on fixed features (SGD with lr
  0.1, batches of 250, 10 epochs) makes 80 optimizer steps on 2,000 samples,
  far too few, and a fixed SGD step suits one scale only. The defaults keep
  the batches but use Adam (lr 0.01 on 1,280 features, 0.01·√(1280/d) up
  to 0.04 on d: ``lr="auto"``) for up to 200 epochs, stopped once the
  training loss stops improving (``tol``, ``n_iter_no_change``): a small
  data set gets the hundreds of steps it needs, a large one stops after a
  few thousand steps (10,000 image features: 20 to 60 epochs of 40 steps).
- Start. Five heads (``n_heads=5``) from their own k-means++ seeds train on
  the same batches and the one of lowest training loss is kept, the
  label-free counterpart of K-means' ``n_init``; each starts fair (its mean
  prediction equals the prior), so that no cluster starts empty, and the
  margin weight grows over the first 10 epochs. Without the fair start, 1
  of 10 clusters ended empty in 5 of 8 seeds on standardized MNIST-5k
  features.
- Fairness. The defaults assume clusters of similar sizes. For strongly
  unbalanced data give ``prior`` or lower ``fairness_weight``, chosen with
  :func:`skentropy.model_selection.unsupervised_scorer`.""",
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ ]*)\{(?P<name>\w+)\}$", re.MULTILINE)


def fill_doc(obj):
    """Decorator: fill the placeholders of ``obj``'s docstring from ``SHARED``.

    Each line that holds only ``{name}`` becomes ``SHARED[name]``, indented as
    the line. An unknown name raises a KeyError when the module is imported.

    Parameters
    ----------
    obj : class or function
        Its ``__doc__`` is filled in place.

    Returns
    -------
    obj : class or function
        The same object.
    """
    obj.__doc__ = _PLACEHOLDER.sub(
        lambda match: textwrap.indent(SHARED[match["name"]], match["indent"]),
        obj.__doc__,
    )
    return obj
