"""Deep mode: estimators that train a feature network through skorch."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from torch import nn

from skentropy import (
    VGG4,
    EntropyClustering,
    SeLaClustering,
    SelfAugmentation,
)
from skentropy._estimators._training import MARGIN_WARMUP_EPOCHS

from helpers import (
    SmallNet,
    best_params_by_split_scores,
    by_name,
    each_softmax_estimator,
    make_images,
)

pytest.importorskip("skorch")
from skorch.callbacks import Callback, EarlyStopping  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class Exploding(nn.Module):
    """A feature network whose features overflow."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, X):
        return X.flatten(1) * self.scale * 1e30 * 1e30


def deep(estimator=EntropyClustering, **params):
    defaults = dict(
        n_clusters=3,
        module=SmallNet,
        max_iter=3,
        lr=1e-2,
        batch_size=60,
        random_state=0,
    )
    return estimator(**{**defaults, **params})


@pytest.fixture(scope="module")
def images():
    return make_images()


@pytest.fixture(scope="module")
def fitted(images):
    X, _ = images
    return deep(max_iter=4).fit(X)


def test_fit_predict_shapes_and_consistency(fitted, images):
    X, _ = images
    assert fitted.labels_.shape == (X.shape[0],)
    np.testing.assert_array_equal(fitted.predict(X), fitted.labels_)
    probs = fitted.predict_proba(X[:7])
    assert probs.shape == (7, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(fitted.transform(X[:7]), probs)
    assert np.isfinite(fitted.score(X))
    assert fitted.n_iter_ == len(fitted.loss_curve_) == 4
    assert fitted.n_steps_ == 4 * 3
    # the head's weights on the features f_w: 4 channels × 2 × 2
    assert fitted.coef_.shape == (3, 16)


def test_clusters_easy_images(images):
    X, y = images
    model = deep(max_iter=15, lr=3e-2).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.9


@each_softmax_estimator
def test_every_estimator_trains_a_module(Estimator, images):
    X, _ = images
    model = deep(Estimator, max_iter=2).fit(X)
    assert set(np.unique(model.predict(X))) <= {0, 1, 2}
    assert hasattr(model, "net_")


def test_same_seed_same_labels(images):
    X, _ = images
    first = deep().fit(X)
    second = deep().fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.loss_curve_, second.loss_curve_)


def test_pickle_round_trip(fitted, images):
    X, _ = images
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    np.testing.assert_allclose(restored.predict_proba(X), fitted.predict_proba(X))


def test_clone_and_module_params(fitted):
    model = deep(module__width=6)
    assert model.get_params()["module__width"] == 6
    copy = clone(model)
    assert copy.get_params()["module__width"] == 6
    assert not hasattr(clone(fitted), "net_")
    model.set_params(module__width=5)
    assert model.module__width == 5


def test_module_params_build_the_network(images):
    X, _ = images
    model = deep(module__width=5, max_iter=1).fit(X)
    assert model.net_.module_.backbone.width == 5
    assert model.coef_.shape == (3, 20)
    model.set_params(module__width=2).fit(X)
    assert model.coef_.shape == (3, 8)


def test_grid_search_over_module_params(images):
    X, y = images
    search = GridSearchCV(
        deep(max_iter=2),
        {"module__width": [2, 4]},
        scoring="adjusted_rand_score",
        cv=2,
    ).fit(X, y)
    assert search.best_params_ == best_params_by_split_scores(search)
    # the chosen width reached the network: 4 pooled positions per channel
    width = search.best_params_["module__width"]
    assert search.best_estimator_.net_.module_.backbone.width == width
    assert search.best_estimator_.coef_.shape == (3, 4 * width)


def test_module_instance_is_not_trained_in_place(images):
    X, _ = images
    with torch.random.fork_rng():
        torch.manual_seed(0)
        backbone = SmallNet()
    before = {key: value.clone() for key, value in backbone.state_dict().items()}
    model = deep(module=backbone, max_iter=2).fit(X)
    assert model.net_.module_.backbone is not backbone
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, before[key])
    # module__* parameters rebuild an instance from its class
    rebuilt = deep(module=backbone, module__width=3, max_iter=1).fit(X)
    assert rebuilt.net_.module_.backbone.width == 3


def test_partial_fit_counts_epochs_and_reads_memmaps(images, tmp_path):
    X, _ = images
    np.save(tmp_path / "X.npy", X)
    X_map = np.load(tmp_path / "X.npy", mmap_mode="r")
    model = deep()
    for epoch in range(3):
        model.partial_fit(X_map)
        assert model.n_iter_ == len(model.loss_curve_) == epoch + 1
    assert model.n_steps_ == 3 * 3
    assert len(model.net_.history) == 3
    assert model.predict(X_map).shape == (X.shape[0],)
    del X_map


def test_warm_start_continues_the_network(images):
    X, _ = images
    model = deep(max_iter=2, warm_start=True).fit(X)
    net = model.net_
    model.fit(X)
    assert model.net_ is net
    assert len(net.history) == 4
    assert model.n_iter_ == 2
    with pytest.raises(ValueError, match="module=None"):
        model.set_params(module=None).fit(X.reshape(len(X), -1))


def test_refit_without_module_drops_the_network(images):
    X, _ = images
    model = deep(max_iter=1).fit(X)
    model.set_params(module=None).fit(X.reshape(len(X), -1))
    assert not hasattr(model, "net_")
    assert model.predict(X.reshape(len(X), -1)).shape == (len(X),)


def test_early_stopping_on_the_training_loss(images):
    X, _ = images
    model = deep(max_iter=30, tol=10.0, n_iter_no_change=2).fit(X)
    # no epoch improves by 10: stops after the margin's warm-up and
    # 1 + (n_iter_no_change + 1) epochs
    assert model.n_iter_ == MARGIN_WARMUP_EPOCHS + 4
    assert model.converged_


class _MarginRecorder(Callback):
    """Records the fraction of γ that the margin term weighed in each epoch."""

    def initialize(self):
        self.scales_ = []
        return self

    def on_epoch_end(self, net, **kwargs):
        self.scales_.append(net.criterion_.margin_scale)


def _stopping_epoch(loss_curve, tol, n_iter_no_change, warmup_epochs=10):
    """The epoch count at which the shallow trainer's rule stops, or None.

    Written out here as the user guide states it: stop once the loss has not
    been lower than the best minus tol for more than n_iter_no_change epochs,
    counting afresh when the margin warm-up ends.
    """
    best, misses = np.inf, 0
    for epoch, loss in enumerate(loss_curve):
        if epoch == warmup_epochs:
            best, misses = np.inf, 0
        misses = misses + 1 if loss > best - tol else 0
        best = min(best, loss)
        if misses > n_iter_no_change:
            return epoch + 1
    return None


def test_deep_mode_warms_the_margin_up_and_stops_by_the_shallow_rule(images):
    X, _ = images
    # No epoch improves by 1e9: without the restart at the end of the
    # warm-up, training would stop after 1 + 13 epochs; with it, after 24.
    params = dict(max_iter=40, tol=1e9, n_iter_no_change=12)
    model = deep(callbacks=[("margin", _MarginRecorder())], **params).fit(X)
    scales = dict(model.net_.callbacks_)["margin"].scales_
    np.testing.assert_allclose(scales[:11], np.arange(11) / 10)
    assert all(scale == 1.0 for scale in scales[10:])
    assert model.n_iter_ == _stopping_epoch(model.loss_curve_, 1e9, 12) == 24
    assert model.converged_
    shallow = EntropyClustering(n_clusters=3, random_state=0, **params)
    shallow.fit(X.reshape(len(X), -1))
    assert shallow.n_iter_ == 24
    # partial_fit continues the warm-up where the model is.
    model = deep(callbacks=[("margin", _MarginRecorder())], max_iter=3).fit(X)
    model.partial_fit(X)
    assert dict(model.net_.callbacks_)["margin"].scales_ == [0.0, 0.1, 0.2, 0.3]


def test_a_users_early_stopping_callback_still_stops_the_training(images):
    """skorch's EarlyStopping stops by a KeyboardInterrupt: no interrupt of the fit."""
    X, _ = images
    stopping = EarlyStopping(
        monitor="train_loss", patience=2, threshold=1e9, threshold_mode="abs"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # it converged
        model = deep(max_iter=30, callbacks=[("stop", stopping)]).fit(X)
    assert model.n_iter_ == 3  # the first epoch, then two without improvement
    assert model.predict(X).shape == (len(X),)


def test_not_converged_warns(images):
    X, _ = images
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        deep(max_iter=2, tol=0.0).fit(X)


class _Recorder(Callback):
    def initialize(self):
        self.epochs_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1


def test_user_callbacks_run_and_are_not_mutated(images):
    X, _ = images
    recorder = _Recorder()
    model = deep(max_iter=3, callbacks=[("recorder", recorder)]).fit(X)
    assert dict(model.net_.callbacks_)["recorder"].epochs_ == 3
    assert not hasattr(recorder, "epochs_")


def test_several_heads_keep_the_best(images):
    X, _ = images
    model = deep(n_heads=3, max_iter=2).fit(X)
    assert model.head_losses_.shape == (3,)
    assert model.best_head_ == int(np.argmin(model.head_losses_))
    assert len(model.net_.module_.heads) == 3


def test_normfc_head_has_no_projection_in_deep_mode(images):
    # twostage supplement eq. 2: cosines of the network's features to fixed
    # prototypes; the network trains, the head has no parameter of its own
    X, y = images
    model = deep(head="normfc", max_iter=15, lr=3e-2).fit(X)
    assert sum(p.numel() for p in model.net_.module_.heads.parameters()) == 0
    assert model.prototypes_.shape == (3, 16)
    assert not hasattr(model, "projection_coef_")
    assert np.isfinite(model.score(X))
    assert adjusted_rand_score(y, model.labels_) > 0.9
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.labels_)


def test_n_init_keeps_the_lowest_loss(images):
    X, _ = images
    model = deep(n_init=2, max_iter=2).fit(X)
    single = deep(max_iter=2).fit(X)
    assert model.head_losses_.min() <= single.head_losses_.min() + 1e-6


def test_augment_callables(images):
    X, _ = images
    calls = []

    def noise(batch, generator):
        calls.append(generator)
        scale = 0.1 * torch.rand(len(batch), 1, 1, 1, generator=generator)
        return batch + scale.to(batch.device)

    model = deep(augment=noise, n_augmentations=3, max_iter=1).fit(X)
    # 3 views per batch, 3 batches, and the generator handed over
    assert len(calls) == 9
    assert all(isinstance(generator, torch.Generator) for generator in calls)
    again = deep(augment=noise, n_augmentations=3, max_iter=1).fit(X)
    np.testing.assert_array_equal(model.labels_, again.labels_)
    deep(augment=lambda batch: batch.flip(-1), max_iter=1).fit(X)
    with pytest.raises(ValueError, match="augment must return"):
        deep(augment=lambda batch: batch[:, :, :4], max_iter=1).fit(X)


def test_grey_images_without_channel_axis_are_augmented(images):
    X, _ = images

    class Flat(nn.Module):
        def __init__(self, input_shape):
            super().__init__()
            self.linear = nn.Linear(int(np.prod(input_shape)), 8)

        def forward(self, X):
            return self.linear(X.flatten(1))

    def shift(batch):
        assert batch.ndim == 4  # (n, 1, H, W)
        return batch.roll(1, dims=-1)

    model = deep(module=Flat, augment=shift, max_iter=1).fit(X[:, 0])
    assert model.predict(X[:, 0]).shape == (len(X),)


def test_semi_supervised_deep(images):
    X, y = images
    given = np.full_like(y, -1)
    given[::10] = y[::10]
    model = deep(semi_supervised=True, max_iter=8, lr=3e-2).fit(X, given)
    accuracy = np.mean(model.labels_ == y)
    assert accuracy > 0.9


def test_sample_weight_ones_changes_nothing(images):
    X, _ = images
    plain = deep().fit(X)
    weighted = deep().fit(X, sample_weight=np.ones(len(X)))
    np.testing.assert_array_equal(plain.labels_, weighted.labels_)


def test_deep_parameters_without_module_raise(images):
    X, _ = images
    flat = X.reshape(len(X), -1)
    with pytest.raises(ValueError, match="module__width .*module=None"):
        EntropyClustering(3, module__width=3).fit(flat)
    with pytest.raises(ValueError, match="augment .*module=None"):
        EntropyClustering(3, augment=lambda batch: batch).fit(flat)
    with pytest.raises(TypeError, match="unexpected keyword argument 'widht'"):
        EntropyClustering(3, widht=3)


def test_bad_inputs_raise_value_errors(fitted, images):
    X, _ = images
    with pytest.raises(ValueError, match=r"samples of shape \(1, 6, 6\)"):
        fitted.predict(X[:, :, :6, :6])
    with pytest.raises(ValueError, match="does not accept samples of shape"):
        deep(module=SmallNet()).fit(np.zeros((30, 2, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="could not be built"):
        deep(module__depth=3).fit(X)
    with pytest.raises(ValueError, match="training loss became nan"):
        deep(optimizer="sgd", lr=1e38, max_iter=3).fit(X)
    with pytest.raises(ValueError, match="non-finite features"):
        deep(module=Exploding).fit(X + 1.0)
    with pytest.raises(ValueError, match="schedule='full'"):
        deep(SeLaClustering, schedule="full").fit(X)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fit_pickles_to_cpu(images):
    X, _ = images
    model = deep(device="cuda", max_iter=2).fit(X)
    assert next(model.net_.module_.parameters()).is_cuda
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))


def test_vgg4_with_self_augmentation_on_small_images():
    rng = np.random.default_rng(0)
    X = rng.random((24, 16, 16), dtype=np.float32)  # grey, USPS-sized
    model = EntropyClustering(
        n_clusters=2,
        module=VGG4,
        augment=SelfAugmentation(),
        batch_size=12,
        max_iter=1,
        random_state=0,
    ).fit(X)
    assert model.net_.module_.backbone.variant == "28x28x1"
    assert model.coef_.shape == (2, 4608)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.labels_)


@pytest.mark.parametrize("Estimator", [EntropyClustering, SeLaClustering], ids=by_name)
def test_estimated_prior_in_deep_mode(Estimator, images):
    X, y = images
    model = deep(Estimator, prior="auto", max_iter=15, lr=3e-2).fit(X)
    assert model.prior_.shape == (3,)
    assert model.prior_.sum() == pytest.approx(1.0)
    # three equal classes: the estimate stays near equal shares
    np.testing.assert_allclose(model.prior_, 1 / 3, atol=0.1)
    assert adjusted_rand_score(y, model.labels_) > 0.9


def _batch_norm_inputs(model, X):
    """Each batch norm layer's running statistics, and its input on all of X.

    The input is that of a forward pass of X in one batch in training mode,
    after which the running statistics are put back as they were.
    """
    module = copy.deepcopy(model.net_.module_)
    layers = [
        m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    running = {
        layer: (layer.running_mean.clone(), layer.running_var.clone())
        for layer in layers
    }
    inputs = {}
    hooks = [
        layer.register_forward_hook(
            lambda layer, args, output: inputs.__setitem__(layer, args[0])
        )
        for layer in layers
    ]
    module.train()
    try:
        with torch.no_grad():
            module(torch.as_tensor(X))
    finally:
        for hook in hooks:
            hook.remove()
    return {layer: (*running[layer], inputs[layer]) for layer in layers}


def test_batch_norm_statistics_are_those_of_the_trained_network(images):
    X, _ = images  # 180 samples: three batches of 60
    model = deep(max_iter=2).fit(X)
    layers = _batch_norm_inputs(model, X)
    assert layers
    for running_mean, running_var, values in layers.values():
        per_channel = values.transpose(0, 1).flatten(start_dim=1)
        # the mean of three equal random batches' means; of their variances
        np.testing.assert_allclose(
            running_mean, per_channel.mean(dim=1), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(running_var, per_channel.var(dim=1), rtol=0.1)


def test_a_short_fit_predicts_as_it_trained():
    """Evaluation-mode labels after 3 steps are the training-mode ones.

    Away from 0, the images' batch statistics are far from batch norm's
    initial running statistics (0 and 1), where momentum 0.1 would leave
    them after 3 steps: predictions would then use 2 of the 3 clusters the
    training uses, agreeing with its labels at ARI 0.67 only.
    """
    X, _ = make_images()
    X = X + 3.0
    model = deep(max_iter=1).fit(X)
    module = model.net_.module_
    module.train()
    with torch.no_grad():
        trained = module(torch.as_tensor(X))[:, model.best_head_].argmax(dim=1)
    module.eval()
    assert np.unique(trained).size == 3
    assert np.unique(model.labels_).size == 3
    assert adjusted_rand_score(trained.numpy(), model.labels_) > 0.95
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_weight_decay_spares_biases_and_normalization(images):
    X, _ = images
    model = deep(weight_decay=0.01, max_iter=1).fit(X)
    decays = {
        id(param): group["weight_decay"]
        for group in model.net_.optimizer_.param_groups
        for param in group["params"]
    }
    named = dict(model.net_.module_.named_parameters())
    assert len(decays) == len(named)
    for name, param in named.items():
        assert decays[id(param)] == (0.01 if param.ndim > 1 else 0.0), name
    assert decays[id(named["heads.0.weight"])] == 0.01  # the margin's v
