"""FeatureExtractor: preprocessing, batching, fitted state and pipelines.

The networks are small random-weights modules, seeded locally: torch's global
random generator is never seeded here.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from skentropy import EntropyClustering
from skentropy.feature_extraction import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FeatureExtractor,
)


class SmallConvNet(nn.Module):
    """Conv → batch norm → ReLU → 2×2 average pooling: 32 features."""

    def __init__(self, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.norm(self.conv(x))))


class FlatNet(nn.Module):
    """A linear layer on the flattened image: needs 3×8×8 inputs."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, 5)

    def forward(self, x):
        return self.linear(x.flatten(1))


class ReturnsTuple(nn.Module):
    def forward(self, x):
        return x, x


class DropsRows(nn.Module):
    def forward(self, x):
        return x[:-1].flatten(1)


class LogOfInput(nn.Module):
    def forward(self, x):
        return torch.log(x.flatten(1))


def make_net(seed=0, in_channels=3):
    """A SmallConvNet with weights drawn from ``seed``, in train mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallConvNet(in_channels)


def forward(net, images):
    """The reference features: the module on a float32 (n, C, H, W) array."""
    net = net.eval()
    with torch.no_grad():
        return net(torch.as_tensor(images, dtype=torch.float32)).flatten(1).numpy()


@pytest.fixture
def images():
    """12 float32 RGB images of 8×8 pixels, channels first, in [0, 1)."""
    return np.random.default_rng(0).random((12, 3, 8, 8), dtype=np.float32)


def quadrant_images(n_per_class, seed, size=12):
    """uint8 RGB images, channels last: a bright square in one of 3 quadrants."""
    rng = np.random.default_rng(seed)
    X = rng.normal(40, 20, size=(3 * n_per_class, size, size, 3))
    y = np.repeat(np.arange(3), n_per_class)
    half = size // 2
    for i, (row, col) in enumerate([(0, 0), (0, half), (half, 0)]):
        X[y == i, row : row + half, col : col + half] += 150
    return np.clip(X, 0, 255).astype(np.uint8), y


# -- Output --------------------------------------------------------------------


def test_features_equal_the_module_forward(images):
    net = make_net()
    extractor = FeatureExtractor(net, device="cpu").fit(images)
    features = extractor.transform(images)
    assert features.shape == (12, 32)
    assert features.dtype == np.float32
    assert extractor.n_features_out_ == 32
    assert extractor.module_input_shape_ == (3, 8, 8)
    assert not hasattr(extractor, "n_features_in_")
    np.testing.assert_allclose(features, forward(net, images), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        extractor.get_feature_names_out()[[0, 31]],
        ["featureextractor0", "featureextractor31"],
    )


@pytest.mark.parametrize("batch_size", [1, 5, 12, 256])
def test_batch_size_does_not_change_the_features(images, batch_size):
    net = make_net()
    reference = FeatureExtractor(net, batch_size=256, device="cpu").fit_transform(
        images
    )
    features = FeatureExtractor(net, batch_size=batch_size, device="cpu")
    np.testing.assert_allclose(
        features.fit_transform(images), reference, rtol=1e-5, atol=1e-6
    )


def test_float64_and_half_precision(images):
    net = make_net()
    reference = forward(net, images)
    float64 = FeatureExtractor(net, dtype="float64", device="cpu")
    features = float64.fit_transform(images.astype(np.float64))
    assert features.dtype == np.float64
    assert next(float64.module_.parameters()).dtype == torch.float64
    np.testing.assert_allclose(features, reference, rtol=1e-5, atol=1e-6)
    bfloat16 = FeatureExtractor(net, dtype="bfloat16", device="cpu")
    features = bfloat16.fit_transform(images)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, reference, rtol=0.05, atol=0.05)


def test_verbose_shows_a_progress_bar(images, capsys):
    FeatureExtractor(make_net(), batch_size=4, verbose=1, device="cpu").fit_transform(
        images
    )
    assert "FeatureExtractor" in capsys.readouterr().err


# -- Preprocessing -------------------------------------------------------------


def test_channels_last_is_detected_or_set(images):
    net = make_net()
    reference = forward(net, images)
    last = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    for channels_last in ("auto", True):
        extractor = FeatureExtractor(net, channels_last=channels_last, device="cpu")
        np.testing.assert_allclose(
            extractor.fit_transform(last), reference, rtol=1e-6, atol=1e-6
        )
        assert extractor.module_input_shape_ == (3, 8, 8)
    # Three channels and three rows: "auto" keeps channels first.
    square = images[:, :, :3, :3]
    np.testing.assert_allclose(
        FeatureExtractor(net, device="cpu").fit_transform(square),
        forward(net, square),
        rtol=1e-6,
        atol=1e-6,
    )
    last_square = np.ascontiguousarray(square.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(
        FeatureExtractor(net, channels_last=True, device="cpu").fit_transform(
            last_square
        ),
        forward(net, square),
        rtol=1e-6,
        atol=1e-6,
    )


def test_greyscale_images_get_one_channel_or_n_channels(images):
    grey = images[:, 0]
    net = make_net(in_channels=1)
    np.testing.assert_allclose(
        FeatureExtractor(net, device="cpu").fit_transform(grey),
        forward(net, grey[:, None]),
        rtol=1e-6,
        atol=1e-6,
    )
    rgb_net = make_net()
    extractor = FeatureExtractor(rgb_net, n_channels=3, device="cpu")
    np.testing.assert_allclose(
        extractor.fit_transform(grey),
        forward(rgb_net, np.repeat(grey[:, None], 3, axis=1)),
        rtol=1e-6,
        atol=1e-6,
    )
    assert extractor.module_input_shape_ == (3, 8, 8)


def test_scale_mean_and_std(images):
    net = make_net()
    pixels = np.round(images * 255)
    extractor = FeatureExtractor(
        net, scale=1 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD, device="cpu"
    )
    mean = np.array(IMAGENET_MEAN)[:, None, None]
    std = np.array(IMAGENET_STD)[:, None, None]
    expected = forward(net, (pixels / 255 - mean) / std)
    np.testing.assert_allclose(
        extractor.fit_transform(pixels), expected, rtol=1e-5, atol=1e-5
    )
    # One value for all channels.
    extractor = FeatureExtractor(net, mean=0.5, std=2.0, device="cpu")
    np.testing.assert_allclose(
        extractor.fit_transform(images),
        forward(net, (images - 0.5) / 2),
        rtol=1e-6,
        atol=1e-6,
    )


def test_uint8_input_equals_float_input(images):
    pixels = np.round(images * 255).astype(np.uint8)
    extractor = FeatureExtractor(make_net(), scale=1 / 255, device="cpu")
    np.testing.assert_allclose(
        extractor.fit_transform(pixels),
        extractor.fit_transform(pixels.astype(np.float64)),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "input_size, expected", [(16, (16, 16)), ((6, 10), (6, 10)), ([4, 4], (4, 4))]
)
def test_input_size_resizes_bilinearly(images, input_size, expected):
    net = make_net()
    extractor = FeatureExtractor(net, input_size=input_size, device="cpu")
    features = extractor.fit_transform(images)
    assert extractor.module_input_shape_ == (3, *expected)
    shrink = expected[0] < 8 or expected[1] < 8
    resized = F.interpolate(
        torch.as_tensor(images),
        size=expected,
        mode="bilinear",
        align_corners=False,
        antialias=shrink,
    )
    np.testing.assert_allclose(
        features, forward(net, resized.numpy()), rtol=1e-5, atol=1e-6
    )


def test_other_image_size_in_transform(images):
    bigger = np.random.default_rng(1).random((4, 3, 10, 10), dtype=np.float32)
    # Global pooling takes any size ...
    extractor = FeatureExtractor(make_net(), device="cpu").fit(images)
    assert extractor.transform(bigger).shape == (4, 32)
    # ... a flattening network does not, unless input_size is set.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        flat = FlatNet()
    extractor = FeatureExtractor(flat, device="cpu").fit(images)
    with pytest.raises(ValueError, match=r"failed on a batch of shape \(1, 3, 10, 10"):
        extractor.transform(bigger)
    extractor.set_params(input_size=8).fit(images)
    assert extractor.transform(bigger).shape == (4, 5)


def test_vectors_with_a_module_on_vectors():
    X = np.random.default_rng(0).standard_normal((20, 6))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        linear = nn.Linear(6, 4)
    extractor = FeatureExtractor(linear, mean=X.mean(axis=0), device="cpu").fit(X)
    assert extractor.n_features_in_ == 6
    assert extractor.module_input_shape_ == (6,)
    with torch.no_grad():
        expected = linear(torch.as_tensor(X - X.mean(axis=0), dtype=torch.float32))
    np.testing.assert_allclose(
        extractor.transform(X), expected.numpy(), rtol=1e-5, atol=1e-6
    )


# -- Inputs that stay on disk, fitted state ------------------------------------


def test_read_only_memmap(images, tmp_path):
    path = tmp_path / "images.npy"
    pixels = np.round(images.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    np.save(path, pixels)
    memmap = np.load(path, mmap_mode="r")
    extractor = FeatureExtractor(make_net(), scale=1 / 255, batch_size=5, device="cpu")
    np.testing.assert_array_equal(
        extractor.fit_transform(memmap), extractor.transform(pixels)
    )


def test_pickle_round_trip_keeps_a_cpu_module(images):
    extractor = FeatureExtractor(make_net(), device="auto").fit(images)
    features = extractor.transform(images)
    loaded = pickle.loads(pickle.dumps(extractor))
    assert all(p.device.type == "cpu" for p in loaded.module_.parameters())
    np.testing.assert_array_equal(loaded.transform(images), features)


def test_clone_copies_the_module(images):
    net = make_net()
    extractor = FeatureExtractor(net, batch_size=4, device="cpu").fit(images)
    cloned = clone(extractor)
    assert cloned.module is not net
    assert not hasattr(cloned, "module_")
    np.testing.assert_allclose(
        cloned.fit_transform(images), extractor.transform(images), rtol=0, atol=0
    )


def test_the_callers_module_is_not_changed(images):
    net = make_net().train()
    state = {name: t.clone() for name, t in net.state_dict().items()}
    extractor = FeatureExtractor(net, dtype="float64", device="cpu")
    extractor.fit_transform(images)
    assert net.training
    assert extractor.module_ is not net
    assert not extractor.module_.training
    for name, tensor in net.state_dict().items():
        assert tensor.dtype == state[name].dtype
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)


def test_module_class_is_seeded_by_random_state(images):
    rng_state = torch.get_rng_state()
    first = FeatureExtractor(SmallConvNet, random_state=0, device="cpu")
    second = FeatureExtractor(SmallConvNet, random_state=0, device="cpu")
    other = FeatureExtractor(SmallConvNet, random_state=1, device="cpu")
    features = first.fit_transform(images)
    np.testing.assert_array_equal(second.fit_transform(images), features)
    assert not np.allclose(other.fit_transform(images), features)
    assert torch.equal(torch.get_rng_state(), rng_state)


# -- Errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, X_shape, match",
    [
        ({}, (4, 3, 8, 8, 1), "2-D .*, 3-D .* or 4-D"),
        ({}, (4,), "Expected 2D array"),
        ({"channels_last": False}, (4, 8, 8, 3), r"takes 3 channels"),
        ({"mean": [0.1, 0.2]}, (4, 3, 8, 8), "mean must have 1 value or one per"),
        ({"std": [1.0, 0.0, 1.0]}, (4, 3, 8, 8), "std must be positive"),
        ({"input_size": 8}, (4, 6), "input_size and n_channels apply to images"),
        ({"input_size": (8, 8, 8)}, (4, 3, 8, 8), "input_size must be"),
        ({"n_channels": 3}, (4, 2, 8, 8), "n_channels=3 but the images have 2"),
    ],
)
def test_wrong_input_raises_a_clear_error(params, X_shape, match):
    X = np.zeros(X_shape, dtype=np.float32)
    with pytest.raises(ValueError, match=match):
        FeatureExtractor(make_net(), device="cpu", **params).fit(X)


def test_transform_needs_the_same_kind_of_input(images):
    extractor = FeatureExtractor(make_net(), device="cpu").fit(images)
    with pytest.raises(ValueError, match="fitted on images"):
        extractor.transform(images.reshape(12, -1))
    extractor = FeatureExtractor(make_net(in_channels=1), device="cpu").fit(
        images[:, 0]
    )
    with pytest.raises(ValueError, match="images with 3 channels"):
        extractor.transform(images)


@pytest.mark.parametrize(
    "module, match",
    [
        (ReturnsTuple(), "must return a tensor"),
        (DropsRows(), "one row per sample"),
        (LogOfInput(), "non-finite values"),
    ],
)
def test_bad_module_outputs_raise(images, module, match):
    X = images - 0.5  # the log of negative values is NaN
    with pytest.raises(ValueError, match=match):
        FeatureExtractor(module, device="cpu").fit(X)


def test_non_finite_output_in_transform_names_the_sample(images):
    extractor = FeatureExtractor(LogOfInput(), batch_size=5, device="cpu").fit(images)
    X = images.copy()
    X[7, 0, 0, 0] = -1.0
    with pytest.raises(ValueError, match="non-finite values .* for sample 7"):
        extractor.transform(X)


def test_module_must_be_a_torch_module(images):
    with pytest.raises(TypeError, match="torch.nn.Module"):
        FeatureExtractor(dict, device="cpu").fit(images)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_raises(images):
    extractor = FeatureExtractor(make_net(), device="cuda").fit(images)
    with pytest.raises(ValueError, match="CUDA is not available"):
        extractor.transform(images)
    # Fitted state does not depend on the device: switch it without refitting.
    assert extractor.set_params(device="cpu").transform(images).shape == (12, 32)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_features(images):
    net = make_net()
    extractor = FeatureExtractor(net, scale=2.0, input_size=16, device="cuda")
    features = extractor.fit_transform(images)
    assert all(p.device.type == "cpu" for p in extractor.module_.parameters())
    reference = extractor.set_params(device="cpu").transform(images)
    np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-4)
    loaded = pickle.loads(pickle.dumps(extractor.set_params(device="cuda")))
    np.testing.assert_allclose(loaded.transform(images), features, rtol=0, atol=0)


# -- Pipelines and scikit-learn's checks ---------------------------------------


def test_pipeline_with_entropy_clustering(global_random_seed):
    X, y = quadrant_images(30, seed=global_random_seed)
    pipeline = make_pipeline(
        FeatureExtractor(
            make_net(global_random_seed), scale=1 / 255, mean=0.3, std=0.2
        ),
        EntropyClustering(n_clusters=3, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = pipeline.fit(X).predict(X)
    assert adjusted_rand_score(y, labels) > 0.9


def test_set_output_pandas(images):
    pd = pytest.importorskip("pandas")
    extractor = FeatureExtractor(make_net(), device="cpu").set_output(
        transform="pandas"
    )
    features = extractor.fit_transform(images)
    assert isinstance(features, pd.DataFrame)
    assert list(features.columns[:2]) == ["featureextractor0", "featureextractor1"]


# The checks feed 2-D data of any width; a lazy linear layer takes any width,
# its weights drawn from random_state in fit.
@parametrize_with_checks(
    [FeatureExtractor(nn.LazyLinear(4), random_state=0, device="cpu")]
)
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)
