"""Self-augmentation of image batches: flip, rotation, colour jitter."""

import copy
import pickle

import pytest
import torch
from sklearn.base import BaseEstimator, clone

# _affine: the rotation by fixed angles behind random_rotation, which no
# public function offers; the comparisons with torch.rot90 need fixed angles.
from skentropy.augment import (
    SelfAugmentation,
    _affine,
    color_jitter,
    horizontal_flip,
    random_affine,
    random_rotation,
)

TRANSFORMS = {
    "flip": lambda X, generator: horizontal_flip(X, p=0.5, generator=generator),
    "rotation": lambda X, generator: random_rotation(
        X, degrees=30.0, generator=generator
    ),
    "affine": lambda X, generator: random_affine(
        X, degrees=10.0, translate=0.2, scale=0.2, generator=generator
    ),
    "jitter": lambda X, generator: color_jitter(X, generator=generator),
    "self_augmentation": lambda X, generator: SelfAugmentation()(
        X, generator=generator
    ),
}


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _images(shape=(8, 3, 12, 12), seed=0, dtype=torch.float32):
    return torch.rand(shape, generator=_generator(seed), dtype=dtype)


def _disc(side=33, radius=10.0):
    """A centred disc, smooth at its border, as a (1, 1, side, side) image."""
    coordinates = torch.arange(side, dtype=torch.float64) - (side - 1) / 2
    distance = torch.hypot(coordinates[:, None], coordinates[None, :])
    return torch.sigmoid(radius - distance)[None, None]


class _Holder(BaseEstimator):
    """An estimator-like object with an ``augment`` parameter."""

    def __init__(self, augment=None):
        self.augment = augment


# -- Reproducibility, shapes, dtypes ------------------------------------------


@pytest.mark.parametrize("name", TRANSFORMS)
def test_same_seed_same_output_other_seed_other_output(name, global_random_seed):
    transform = TRANSFORMS[name]
    X = _images()
    first = transform(X, _generator(global_random_seed))
    assert torch.equal(first, transform(X, _generator(global_random_seed)))
    assert not torch.equal(first, transform(X, _generator(global_random_seed + 1)))


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_dtype_are_kept_without_nan(name, dtype):
    X = _images(dtype=dtype)
    Y = TRANSFORMS[name](X, _generator(0))
    assert Y.shape == X.shape
    assert Y.dtype == dtype
    assert Y.device == X.device
    assert torch.isfinite(Y).all()


@pytest.mark.parametrize("name", TRANSFORMS)
def test_float32_and_float64_draw_the_same_parameters(name):
    X = _images(dtype=torch.float64)
    Y64 = TRANSFORMS[name](X, _generator(0))
    Y32 = TRANSFORMS[name](X.float(), _generator(0))
    torch.testing.assert_close(Y32, Y64.float(), atol=1e-5, rtol=1e-5)


def test_default_generator_is_torch_default():
    X = _images()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        first = SelfAugmentation()(X)
        torch.manual_seed(0)
        assert torch.equal(first, SelfAugmentation()(X))


def test_each_image_draws_its_own_parameters():
    X = _images((1, 3, 12, 12)).expand(64, -1, -1, -1)
    Y = SelfAugmentation()(X, generator=_generator(0))
    assert len(torch.unique(Y.flatten(start_dim=1), dim=0)) == 64


@pytest.mark.parametrize("name", TRANSFORMS)
def test_differentiable(name):
    X = _images().requires_grad_()
    Y = TRANSFORMS[name](X, _generator(0))
    Y.square().sum().backward()
    assert X.grad is not None
    assert torch.isfinite(X.grad).all()
    assert X.grad.abs().sum() > 0


# -- Identities ----------------------------------------------------------------


def test_zero_strengths_are_identities():
    X = _images()
    generator = _generator(0)
    assert torch.equal(horizontal_flip(X, p=0.0, generator=generator), X)
    assert torch.equal(random_rotation(X, degrees=0.0, generator=generator), X)
    assert torch.equal(
        random_affine(X, degrees=0, translate=0, scale=0, generator=generator), X
    )
    assert torch.equal(
        color_jitter(X, brightness=0, contrast=0, saturation=0, generator=generator),
        X,
    )
    off = SelfAugmentation(flip=0, degrees=0, brightness=0, contrast=0, saturation=0)
    assert torch.equal(off(X, generator=generator), X)


def test_zero_strengths_draw_nothing():
    generator = _generator(0)
    SelfAugmentation(flip=0, degrees=0, brightness=0, contrast=0, saturation=0)(
        _images(), generator=generator
    )
    assert torch.equal(generator.get_state(), _generator(0).get_state())


# -- Flip ----------------------------------------------------------------------


def test_flip_with_probability_one_flips_every_image():
    X = _images()
    assert torch.equal(horizontal_flip(X, p=1.0), torch.flip(X, dims=[-1]))


def test_flip_flips_about_half_of_the_images():
    X = _images((400, 1, 4, 4))
    Y = horizontal_flip(X, p=0.5, generator=_generator(0))
    flipped = (Y == X.flip(-1)).flatten(start_dim=1).all(dim=1)
    kept = (Y == X).flatten(start_dim=1).all(dim=1)
    assert torch.all(flipped ^ kept)
    assert 150 < flipped.sum() < 250


# -- Rotation ------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, -1, 2])
@pytest.mark.parametrize("side", [8, 9])
def test_rotation_by_right_angles_matches_rot90(k, side):
    """Positive angles turn counter-clockwise, as torch.rot90 and torchvision."""
    X = _images((2, 3, side, side), dtype=torch.float64)
    rotated = _affine(X, torch.full((2,), 90.0 * k))
    torch.testing.assert_close(rotated, torch.rot90(X, k, dims=(-2, -1)))


def test_rotation_of_a_non_square_image_keeps_pixel_sizes():
    """A horizontal bar of 8 × 2 pixels turns into a vertical bar of 2 × 8."""
    X = torch.zeros(1, 1, 8, 12, dtype=torch.float64)
    X[..., 3:5, 2:10] = 1.0
    expected = torch.zeros_like(X)
    expected[..., 0:8, 5:7] = 1.0
    torch.testing.assert_close(_affine(X, torch.tensor([90.0])), expected)


def test_rotation_keeps_a_disc():
    disc = _disc().expand(16, 1, -1, -1)
    rotated = random_rotation(disc, degrees=180.0, generator=_generator(0))
    assert (rotated - disc).abs().max() < 0.02


def test_a_shift_by_whole_pixels_moves_the_content():
    """A shift of 2/W of the width, 1/H of the height: 2 pixels right, 1 down."""
    X = _images((1, 1, 8, 10), dtype=torch.float64)
    moved = _affine(
        X, torch.zeros(1), shifts=torch.tensor([[2 / 10, 1 / 8]], dtype=torch.float64)
    )
    expected = torch.zeros_like(X)
    expected[..., 1:, 2:] = X[..., :-1, :-2]
    torch.testing.assert_close(moved, expected)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_a_scale_changes_a_discs_area_by_its_square(factor):
    disc = _disc(side=65, radius=12.0)
    scaled = _affine(disc, torch.zeros(1), scales=torch.tensor([factor]))
    assert scaled.sum() / disc.sum() == pytest.approx(factor**2, rel=0.02)


def test_affine_parameters_stay_within_their_strengths():
    """A pixel's shift is at most translate · side; scales within 1 ± scale."""
    X = torch.zeros(64, 1, 21, 21, dtype=torch.float64)
    X[..., 10, 10] = 1.0  # the centre, which rotations and scales keep
    moved = random_affine(X, degrees=0, translate=0.2, scale=0, generator=_generator(1))
    rows = (moved.sum(dim=3) * torch.arange(21.0)).sum(dim=(1, 2)) - 10
    columns = (moved.sum(dim=2) * torch.arange(21.0)).sum(dim=(1, 2)) - 10
    assert rows.abs().max() <= 0.2 * 21 + 1e-9
    assert columns.abs().max() <= 0.2 * 21 + 1e-9
    assert rows.abs().max() > 0.1 * 21  # draws span the range
    disc = _disc(side=65, radius=12.0).expand(64, 1, -1, -1)
    scaled = random_affine(
        disc, degrees=0, translate=0, scale=0.3, generator=_generator(2)
    )
    ratio = (scaled.sum(dim=(1, 2, 3)) / disc.sum(dim=(1, 2, 3))).sqrt()
    assert 0.7 - 0.02 <= ratio.min() < 0.8
    assert 1.2 < ratio.max() <= 1.3 + 0.02


def test_rotation_angles_stay_within_degrees():
    """A thin horizontal bar keeps its slope within ±degrees."""
    X = torch.zeros(64, 1, 33, 33, dtype=torch.float64)
    X[..., 16, 4:29] = 1.0
    rotated = random_rotation(X, degrees=10.0, generator=_generator(0))
    # Mass outside the rows a ±10° turn reaches (|row − 16| ≤ 12·tan 10° + 1).
    assert rotated[..., :13, :].abs().max() < 1e-12
    assert rotated[..., 20:, :].abs().max() < 1e-12
    assert not torch.equal(rotated, X)


# -- Colour jitter -------------------------------------------------------------


def test_brightness_scales_the_mean():
    X = _images((256, 3, 4, 4), dtype=torch.float64) * 255  # raw 0-255 scale
    Y = color_jitter(
        X, brightness=0.5, contrast=0, saturation=0, generator=_generator(0)
    )
    factors = Y.mean(dim=(1, 2, 3)) / X.mean(dim=(1, 2, 3))
    torch.testing.assert_close(Y, factors[:, None, None, None] * X)
    assert factors.min() >= 0.5
    assert factors.max() <= 1.5
    assert factors.max() - factors.min() > 0.9


def test_brightness_strength_above_one_keeps_factors_nonnegative():
    X = _images((256, 1, 2, 2), dtype=torch.float64) + 1
    Y = color_jitter(
        X, brightness=3.0, contrast=0, saturation=0, generator=_generator(0)
    )
    factors = Y.mean(dim=(1, 2, 3)) / X.mean(dim=(1, 2, 3))
    assert factors.min() >= 0
    assert factors.max() <= 4


def test_contrast_keeps_the_mean_grey_level():
    X = _images((32, 3, 6, 6), dtype=torch.float64)
    Y = color_jitter(
        X, brightness=0, contrast=0.8, saturation=0, generator=_generator(0)
    )
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)

    def mean_grey(images):
        return torch.einsum("nchw,c->n", images, weights) / (6 * 6)

    torch.testing.assert_close(mean_grey(Y), mean_grey(X))
    assert not torch.allclose(Y, X)


def test_saturation_is_a_no_op_for_one_channel():
    X = _images((8, 1, 6, 6))
    Y = color_jitter(
        X, brightness=0, contrast=0, saturation=0.9, generator=_generator(0)
    )
    assert torch.equal(Y, X)


def test_saturation_keeps_grey_rgb_images():
    X = _images((8, 1, 6, 6), dtype=torch.float64).expand(-1, 3, -1, -1)
    Y = color_jitter(
        X, brightness=0, contrast=0, saturation=0.9, generator=_generator(0)
    )
    torch.testing.assert_close(Y, X)
    colourful = _images((8, 3, 6, 6), dtype=torch.float64)
    Y = color_jitter(
        colourful, brightness=0, contrast=0, saturation=0.9, generator=_generator(0)
    )
    assert not torch.allclose(Y, colourful)


def test_contrast_and_saturation_need_one_or_three_channels():
    X = _images((2, 4, 6, 6))
    with pytest.raises(ValueError, match="4 channels"):
        color_jitter(X, brightness=0, contrast=0.4, saturation=0)
    with pytest.raises(ValueError, match="4 channels"):
        color_jitter(X, brightness=0, contrast=0, saturation=0.4)
    assert color_jitter(X, contrast=0, saturation=0).shape == X.shape


# -- Validation ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["flip", "rotation", "jitter", "self_augmentation"])
@pytest.mark.parametrize("shape", [(8, 12, 12), (12, 12), (1, 8, 1, 12, 12)])
def test_images_must_have_a_channel_axis(name, shape):
    with pytest.raises(ValueError, match=r"\(n_samples, C, H, W\)"):
        TRANSFORMS[name](torch.zeros(shape), _generator(0))


def test_images_must_be_floating_point_tensors():
    with pytest.raises(TypeError, match="torch.Tensor"):
        horizontal_flip(_images().numpy())
    with pytest.raises(TypeError, match="floating-point"):
        random_rotation(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda X: horizontal_flip(X, p=1.5), "p must be"),
        (lambda X: horizontal_flip(X, p=-0.1), "p must be"),
        (lambda X: random_rotation(X, degrees=-5.0), "degrees must be"),
        (lambda X: random_rotation(X, degrees=200.0), "degrees must be"),
        (lambda X: random_affine(X, translate=1.5), "translate must be"),
        (lambda X: random_affine(X, scale=-0.1), "scale must be"),
        (lambda X: random_affine(X, scale=1.0), "scale must be below 1"),
        (lambda X: color_jitter(X, brightness=-1.0), "brightness must be"),
        (lambda X: color_jitter(X, contrast=float("inf")), "contrast must be"),
        (lambda X: color_jitter(X, saturation=float("nan")), "saturation must be"),
    ],
)
def test_bad_strengths_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(_images())


@pytest.mark.parametrize(
    "field, value",
    [
        ("flip", 1.5),
        ("flip", True),
        ("flip", "always"),
        ("degrees", -1.0),
        ("degrees", 181.0),
        ("translate", -0.1),
        ("translate", "always"),
        ("scale", 1.0),
        ("scale", "off"),
        ("choose_one", 1),
        ("clean", 1.5),
        ("brightness", -0.1),
        ("contrast", "0.4"),
        ("saturation", float("nan")),
    ],
)
def test_self_augmentation_validates_its_fields(field, value):
    with pytest.raises(ValueError, match=field):
        SelfAugmentation(**{field: value})


def test_default_flip_spares_single_channel_images():
    """Digits are orientation-sensitive: the default flips RGB images only."""
    flip_only = SelfAugmentation(
        degrees=0, translate=0, scale=0, brightness=0, contrast=0, saturation=0
    )
    assert SelfAugmentation().flip == flip_only.flip == "auto"
    grey = torch.rand(400, 1, 6, 6, dtype=torch.float64)
    assert torch.equal(flip_only(grey, generator=_generator(0)), grey)
    rgb = torch.rand(400, 3, 6, 6, dtype=torch.float64)
    Y = flip_only(rgb, generator=_generator(0))
    flipped = (Y == rgb.flip(-1)).flatten(start_dim=1).all(dim=1)
    assert 150 < flipped.sum() < 250
    assert torch.equal(Y, horizontal_flip(rgb, p=0.5, generator=_generator(0)))


def test_default_shifts_and_scales_single_channel_images_only():
    """Digits get shifts and scales by default; RGB images keep their frame."""
    affine_only = SelfAugmentation(degrees=0, brightness=0, contrast=0, saturation=0)
    assert affine_only.strengths(1) == (0.0, 0.1, 0.15)
    assert affine_only.strengths(3) == (0.5, 0.0, 0.0)
    assert SelfAugmentation(translate=0.2, scale=0).strengths(1) == (0.0, 0.2, 0)
    grey = torch.rand(16, 1, 12, 12, dtype=torch.float64)
    expected = random_affine(
        grey, degrees=0, translate=0.1, scale=0.15, generator=_generator(0)
    )
    shifted = affine_only(grey, generator=_generator(0))
    assert torch.equal(shifted, expected)
    assert not torch.equal(shifted, grey)
    rgb = torch.rand(16, 3, 12, 12, dtype=torch.float64)
    unflipped = SelfAugmentation(
        flip=0, degrees=0, brightness=0, contrast=0, saturation=0
    )
    assert torch.equal(unflipped(rgb, generator=_generator(0)), rgb)


def test_choose_one_applies_one_transformation_per_image():
    """Each image flipped or brightened, never both; about half each."""
    X = torch.rand(400, 1, 6, 6, dtype=torch.float64) + 0.1
    augment = SelfAugmentation(
        flip=1.0,
        degrees=0,
        translate=0,
        scale=0,
        brightness=0.5,
        contrast=0,
        saturation=0,
        choose_one=True,
    )
    Y = augment(X, generator=_generator(0))
    flipped = (Y == X.flip(-1)).flatten(start_dim=1).all(dim=1)
    ratio = Y / X  # brightness: one factor per image
    brightened = (ratio - ratio[:, :1, :1, :1]).abs().flatten(start_dim=1).amax(
        dim=1
    ) < 1e-12
    brightened &= (ratio[:, 0, 0, 0] - 1).abs() > 1e-9
    assert not (flipped & brightened).any()
    assert (flipped | brightened).all()
    assert 150 < flipped.sum() < 250
    assert torch.equal(augment(X, generator=_generator(0)), Y)


def test_clean_leaves_that_share_of_the_images_untouched():
    X = torch.rand(400, 1, 6, 6, dtype=torch.float64)
    Y = SelfAugmentation(clean=0.3)(X, generator=_generator(0))
    untouched = (Y == X).flatten(start_dim=1).all(dim=1)
    assert 80 < untouched.sum() < 160
    assert not torch.equal(Y, X)
    always = SelfAugmentation(clean=1.0)
    assert torch.equal(always(X, generator=_generator(0)), X)


def test_choose_one_without_transformations_is_the_identity():
    X = _images()
    off = SelfAugmentation(
        flip=0, degrees=0, brightness=0, contrast=0, saturation=0, choose_one=True
    )
    assert torch.equal(off(X, generator=_generator(0)), X)


# -- SelfAugmentation as an estimator parameter --------------------------------


def test_self_augmentation_is_a_value():
    augment = SelfAugmentation(flip=0.0, degrees=15.0)
    assert augment == SelfAugmentation(flip=0.0, degrees=15.0)
    assert augment != SelfAugmentation()
    assert copy.deepcopy(augment) == augment
    assert pickle.loads(pickle.dumps(augment)) == augment
    assert hash(augment) == hash(SelfAugmentation(flip=0.0, degrees=15.0))
    assert repr(augment) == (
        "SelfAugmentation(flip=0.0, degrees=15.0, translate='auto', scale='auto', "
        "brightness=0.4, contrast=0.4, saturation=0.4, choose_one=False, "
        "clean=0.0)"
    )
    with pytest.raises(AttributeError):
        augment.degrees = 30.0


def test_self_augmentation_survives_clone():
    holder = _Holder(augment=SelfAugmentation(degrees=10.0))
    cloned = clone(holder)
    assert cloned.augment == holder.augment
    assert cloned.get_params() == holder.get_params()
    assert pickle.loads(pickle.dumps(holder)).augment == holder.augment


def test_self_augmentation_composes_the_three_transforms():
    """Flip, rotation-shift-scale, colour jitter, in this order, one generator."""
    X = _images()
    augment = SelfAugmentation(
        flip=0.5,
        degrees=30.0,
        translate=0.1,
        scale=0.2,
        brightness=0.3,
        contrast=0.2,
        saturation=0.1,
    )
    generator = _generator(0)
    expected = horizontal_flip(X, p=0.5, generator=generator)
    expected = random_affine(
        expected, degrees=30.0, translate=0.1, scale=0.2, generator=generator
    )
    expected = color_jitter(
        expected, brightness=0.3, contrast=0.2, saturation=0.1, generator=generator
    )
    assert torch.equal(augment(X, generator=_generator(0)), expected)


# -- CUDA ----------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"
)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", TRANSFORMS)
def test_cuda_matches_cpu_with_the_same_seed(name):
    X = _images(dtype=torch.float64)
    on_cpu = TRANSFORMS[name](X, _generator(0))
    on_gpu = TRANSFORMS[name](X.cuda(), _generator(0))
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu)


@pytest.mark.gpu
@needs_cuda
def test_generator_must_be_on_the_cpu():
    with pytest.raises(ValueError, match="CPU"):
        horizontal_flip(_images().cuda(), generator=torch.Generator(device="cuda"))
