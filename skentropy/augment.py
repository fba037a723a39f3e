"""Self-augmentation of image batches, in torch.

The deep experiments of the entropy clustering papers average the
predictions over random transformations t of each image,

    σ_i = mean_t σ(vᵀ f_w(t(X_i))),

with two augmentations per image "sampled from horizontal flip, rotation and
colour distortion" (entropy-clustering-kmeans-svm supplement E.3;
collision-cross-entropy §5.2; following Hu et al. 2017 and Ji et al. 2019).
This module gives those transformations for batches of images of shape
(n_samples, C, H, W), on any device and floating-point dtype, each image with
its own random parameters, and :class:`SelfAugmentation`, their composition,
which the estimators take as their ``augment`` parameter.

Conventions shared by every function:

- Random numbers are drawn from ``generator``, a CPU
  :class:`torch.Generator` (``None`` means torch's default CPU generator),
  in float64 on the CPU, and only then moved to ``X``'s device and dtype: a
  generator seeded the same gives the same transformations on CPU and CUDA,
  in float32 and float64. A transformation with strength zero returns ``X``
  itself and draws nothing.
- Outputs are differentiable functions of ``X`` and keep its shape, device
  and dtype.
- Nothing is clamped: flip, rotation and colour jitter are linear in the
  pixel values, so they apply unchanged to any scale, e.g. raw 0–255 values
  or standardized images.
"""

import functools
import math
import numbers
from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = [
    "SelfAugmentation",
    "color_jitter",
    "horizontal_flip",
    "random_affine",
    "random_rotation",
]

# ITU-R BT.601 luma weights of R, G, B, as torchvision's rgb_to_grayscale.
_GREY_WEIGHTS = (0.299, 0.587, 0.114)

# SelfAugmentation's "auto" translate and scale of 1-channel images (digits).
GREY_AFFINE = (0.1, 0.15)


# --------------------------------------------------------------------------
# Validation and random numbers
# --------------------------------------------------------------------------


def _check_images(X):
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a torch.Tensor, got {type(X).__name__}.")
    if X.ndim != 4:
        raise ValueError(
            "X must be a batch of images of shape (n_samples, C, H, W), got shape "
            f"{tuple(X.shape)}; add the channel axis of grey images, e.g. X[:, None]."
        )
    if not X.is_floating_point():
        raise TypeError(f"X must have a floating-point dtype, got {X.dtype}.")


def _check_strength(value, name, *, high=math.inf):
    """Check that ``value`` is a real number in [0, high]; ``name`` in errors."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not 0 <= value <= high
    ):
        interval = f"[0, {high:g}]" if math.isfinite(high) else "[0, inf)"
        raise ValueError(
            f"{name} must be a finite real number in {interval}, got {value!r}."
        )


def _check_affine(degrees, translate, scale):
    """Check the strengths of :func:`random_affine`."""
    _check_strength(degrees, "degrees", high=180.0)
    _check_strength(translate, "translate", high=1.0)
    _check_strength(scale, "scale", high=1.0)
    if scale == 1.0:
        raise ValueError("scale must be below 1 (a factor of 0 empties the image).")


def _uniform(n, low, high, generator):
    """n float64 numbers uniform in [low, high), drawn on the CPU."""
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator, got one on {generator.device}."
        )
    u = torch.rand(n, generator=generator, dtype=torch.float64, device="cpu")
    return low + (high - low) * u


def _like(values, X):
    """``values`` moved to the device and dtype of ``X``."""
    return values.to(device=X.device, dtype=X.dtype)


def _per_image(values):
    """Shape (n,) → (n, 1, 1, 1), to broadcast over (n, C, H, W)."""
    return values[:, None, None, None]


# --------------------------------------------------------------------------
# Transformations
# --------------------------------------------------------------------------


def horizontal_flip(X, *, p=0.5, generator=None):
    """Flip each image left to right with probability ``p``.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, C, H, W)
        Batch of floating-point images.

    p : float, default=0.5
        Probability in [0, 1] that an image is flipped. ``p=0`` returns ``X``.

    generator : torch.Generator, default=None
        CPU generator of the random numbers, one per image; ``None`` uses torch's
        default generator.

    Returns
    -------
    X_flipped : torch.Tensor of shape (n_samples, C, H, W)
        The images, some of them mirrored along the width axis.

    See Also
    --------
    SelfAugmentation : Flip, rotation and colour jitter composed.

    Examples
    --------
    >>> import torch
    >>> from skentropy.augment import horizontal_flip
    >>> X = torch.arange(6.0).reshape(1, 1, 2, 3)
    >>> horizontal_flip(X, p=1.0)
    tensor([[[[2., 1., 0.],
              [5., 4., 3.]]]])
    """
    _check_images(X)
    _check_strength(p, "p", high=1.0)
    if p == 0:
        return X
    flipped = (_uniform(len(X), 0.0, 1.0, generator) < p).to(X.device)
    return torch.where(_per_image(flipped), X.flip(-1), X)


def _affine(X, angles, shifts=None, scales=None):
    """Rotate, scale and shift each image about its centre.

    ``angles`` in degrees; positive angles turn the image counter-clockwise
    as displayed (row 0 at the top), as ``torch.rot90(X, 1, dims=(-2, -1))``
    and torchvision's ``rotate`` do. ``shifts`` (n, 2) move the content by
    those fractions of the width (right) and of the height (down);
    ``scales`` (n,) enlarge it about the centre (> 1) or shrink it (< 1).
    Bilinear sampling; points that come from outside the image are zero.

    ``align_corners=False``: the normalized coordinates ±1 of ``affine_grid``
    are the outer edges of the border pixels, so the rotation is about the
    geometric centre of the image, pixel (H−1)/2, (W−1)/2, and the factors
    H/W and W/H below make it a true rotation in pixel units for non-square
    images.
    """
    height, width = X.shape[-2:]
    radians = torch.deg2rad(torch.as_tensor(angles, dtype=torch.float64))
    cos, sin = torch.cos(radians), torch.sin(radians)
    if scales is not None:
        cos, sin = cos / scales, sin / scales
    # Output pixel p samples the input at R(−θ)(p − t)/s, R(θ) the
    # counter-clockwise turn as displayed (pixel units about the centre,
    # y down), t the shift (2 · fraction in normalized units), s the scale.
    linear = torch.stack(
        [
            torch.stack([cos, -sin * height / width], dim=1),
            torch.stack([sin * width / height, cos], dim=1),
        ],
        dim=1,
    )
    if shifts is None:
        offset = torch.zeros(len(linear), 2, 1, dtype=torch.float64)
    else:
        offset = -linear @ (2.0 * shifts)[:, :, None]
    theta = torch.cat([linear, offset], dim=2).to(device=X.device, dtype=X.dtype)
    grid = F.affine_grid(theta, list(X.shape), align_corners=False)
    return F.grid_sample(
        X, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )


def random_rotation(X, *, degrees=20.0, generator=None):
    """Rotate each image about its centre by a random angle.

    Each angle is uniform in [−degrees, degrees]; positive angles turn the
    image counter-clockwise, as torchvision's ``RandomRotation``.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, C, H, W)
        Batch of floating-point images.

    degrees : float, default=20.0
        Largest rotation angle, in degrees, in [0, 180]. ``degrees=0``
        returns ``X``.

    generator : torch.Generator, default=None
        CPU generator of the random numbers, one per image; ``None`` uses torch's
        default generator.

    Returns
    -------
    X_rotated : torch.Tensor of shape (n_samples, C, H, W)
        The rotated images.

    See Also
    --------
    SelfAugmentation : Flip, rotation and colour jitter composed.

    Notes
    -----
    The images are resampled by ``torch.nn.functional.affine_grid`` and
    ``grid_sample`` (bilinear, ``align_corners=False``, so that the rotation
    is about the geometric centre of the image and in pixel units also for
    non-square images). Points that come from outside the image are zero,
    so the corners of a rotated image show the zero background.

    Examples
    --------
    >>> import torch
    >>> from skentropy.augment import random_rotation
    >>> X = torch.rand(4, 1, 28, 28)
    >>> generator = torch.Generator().manual_seed(0)
    >>> random_rotation(X, degrees=20.0, generator=generator).shape
    torch.Size([4, 1, 28, 28])
    """
    _check_images(X)
    _check_strength(degrees, "degrees", high=180.0)
    if degrees == 0:
        return X
    return _affine(X, _uniform(len(X), -degrees, degrees, generator))


def random_affine(X, *, degrees=20.0, translate=0.1, scale=0.1, generator=None):
    """Rotate, shift and scale each image by random amounts, in one resampling.

    Per image: an angle uniform in [−degrees, degrees], shifts uniform in
    [−translate, translate] times the width and the height, and a scale
    factor uniform in [1 − scale, 1 + scale] about the centre (above 1
    enlarges the content, a random crop resized back to the image; below 1
    shrinks it into a zero border). Digits and other centred objects keep
    their class under small shifts and scales, which a convolutional network
    does not ignore by itself.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, C, H, W)
        Batch of floating-point images.

    degrees : float, default=20.0
        Largest rotation angle, in degrees, in [0, 180].

    translate : float, default=0.1
        Largest shift, as a fraction of the width (horizontal) and of the
        height (vertical), in [0, 1].

    scale : float, default=0.1
        Largest relative change of size, in [0, 1).

    generator : torch.Generator, default=None
        CPU generator of the random numbers; ``None`` uses torch's default
        generator.

    Returns
    -------
    X_moved : torch.Tensor of shape (n_samples, C, H, W)
        The transformed images; all three strengths at 0 return ``X``.

    See Also
    --------
    random_rotation : The rotation alone.
    SelfAugmentation : Flip, rotation, shift, scale and colour jitter composed.

    Notes
    -----
    One bilinear resampling (``affine_grid`` and ``grid_sample``, as
    :func:`random_rotation`) for the three changes: output pixel p samples
    the input at R(−θ)(p − t)/s. The draws, per image and for nonzero
    strengths only, in this order: the angle, the two shifts, the scale.

    Examples
    --------
    >>> import torch
    >>> from skentropy.augment import random_affine
    >>> X = torch.rand(4, 1, 28, 28)
    >>> generator = torch.Generator().manual_seed(0)
    >>> random_affine(X, translate=0.1, scale=0.1, generator=generator).shape
    torch.Size([4, 1, 28, 28])
    """
    _check_images(X)
    _check_affine(degrees, translate, scale)
    if degrees == translate == scale == 0:
        return X
    n = len(X)
    angles = (
        _uniform(n, -degrees, degrees, generator)
        if degrees > 0
        else torch.zeros(n, dtype=torch.float64)
    )
    shifts = (
        _uniform(2 * n, -translate, translate, generator).reshape(n, 2)
        if translate > 0
        else None
    )
    scales = _uniform(n, 1 - scale, 1 + scale, generator) if scale > 0 else None
    return _affine(X, angles, shifts, scales)


def _grey(X):
    """Grey level of (n, C, H, W) images as (n, 1, H, W): ITU-R 601 for RGB."""
    channels = X.shape[1]
    if channels == 1:
        return X
    if channels == 3:
        weights = torch.tensor(_GREY_WEIGHTS, dtype=X.dtype, device=X.device)
        return (X * weights[:, None, None]).sum(dim=1, keepdim=True)
    raise ValueError(
        "contrast and saturation need grey (1-channel) or RGB (3-channel) "
        f"images, got {channels} channels."
    )


def _blend(X, other, factors):
    """factor·X + (1 − factor)·other, one factor per image."""
    factors = _per_image(factors)
    return factors * X + (1 - factors) * other


def color_jitter(X, *, brightness=0.4, contrast=0.4, saturation=0.4, generator=None):
    """Randomly change the brightness, contrast and saturation of each image.

    Each image draws its own factors, uniform in [max(0, 1 − s), 1 + s] for
    the strength s of each change, as torchvision's ``ColorJitter``:

    - brightness multiplies the image by its factor b;
    - contrast blends the image with its mean grey level m (a constant
      image): c·X + (1 − c)·m;
    - saturation blends the image with its grey version g:
      s·X + (1 − s)·g. It changes nothing in a 1-channel image.

    The grey level of an RGB image is 0.299 R + 0.587 G + 0.114 B
    (ITU-R BT.601, as torchvision); a 1-channel image is its own grey level.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, C, H, W)
        Batch of floating-point images, of any scale (e.g. 0–1 or 0–255).
        C must be 1 or 3 for contrast and saturation; brightness works on
        any number of channels.

    brightness : float, default=0.4
        Brightness strength, nonnegative; 0 leaves brightness unchanged.

    contrast : float, default=0.4
        Contrast strength, nonnegative; 0 leaves contrast unchanged.

    saturation : float, default=0.4
        Saturation strength, nonnegative; 0 leaves saturation unchanged.

    generator : torch.Generator, default=None
        CPU generator of the random numbers, one per image and nonzero strength;
        ``None`` uses torch's default generator.

    Returns
    -------
    X_jittered : torch.Tensor of shape (n_samples, C, H, W)
        The transformed images, not clamped.

    See Also
    --------
    SelfAugmentation : Flip, rotation and colour jitter composed.

    Notes
    -----
    Unlike torchvision, the result is not clamped to [0, 1]. Without the
    clamp all three changes are linear in the pixel values, so they apply to
    images of any scale, and they commute (brightness scales the mean and
    the grey image with the image; the grey image of a blend with its grey
    image has the same grey level), so the fixed order brightness, contrast,
    saturation loses nothing against torchvision's random order. Hue, which
    is not linear, is not offered.

    Examples
    --------
    >>> import torch
    >>> from skentropy.augment import color_jitter
    >>> X = torch.full((2, 3, 4, 4), 100.0)  # raw 0-255 scale
    >>> generator = torch.Generator().manual_seed(0)
    >>> Y = color_jitter(X, brightness=0.5, contrast=0, saturation=0,
    ...                  generator=generator)
    >>> factors = Y.mean(dim=(1, 2, 3)) / 100
    >>> bool(((0.5 <= factors) & (factors <= 1.5)).all())
    True
    """
    _check_images(X)
    _check_strength(brightness, "brightness")
    _check_strength(contrast, "contrast")
    _check_strength(saturation, "saturation")
    n = len(X)
    if brightness > 0:
        factors = _uniform(n, max(0, 1 - brightness), 1 + brightness, generator)
        X = _per_image(_like(factors, X)) * X
    if contrast > 0:
        factors = _uniform(n, max(0, 1 - contrast), 1 + contrast, generator)
        X = _blend(X, _grey(X).mean(dim=(1, 2, 3), keepdim=True), _like(factors, X))
    if saturation > 0 and X.shape[1] != 1:
        factors = _uniform(n, max(0, 1 - saturation), 1 + saturation, generator)
        X = _blend(X, _grey(X), _like(factors, X))
    return X


# --------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SelfAugmentation:
    """Random flip, rotation, shift, scale and colour jitter of image batches.

    The self-augmentation of the entropy clustering papers' deep experiments,
    where each image's prediction is averaged over random transformations t,
    σ_i = mean_t σ(vᵀ f_w(t(X_i))), with transformations sampled from
    "horizontal flip, rotation and colour distortion". Calling an instance
    applies :func:`horizontal_flip`, :func:`random_affine` (rotation, shift
    and scale) and :func:`color_jitter` in this order, each image with its
    own random parameters. A zero field disables its transformation.

    It is an immutable value (a frozen dataclass): it compares equal to a
    copy, survives :func:`sklearn.base.clone` and pickles, so it can be an
    estimator's ``augment`` parameter.

    Parameters
    ----------
    flip : float or "auto", default="auto"
        Probability in [0, 1] of a horizontal flip. ``"auto"``: 0.5 for
        3-channel (natural) images, 0 for 1-channel images, which are mostly
        orientation-sensitive (digits, characters): a mirrored digit looks
        like another digit or none. On MNIST-5k pixels, with rotations and
        colour jitter, the nearest other image of an augmented image has its
        class 0.87 of the time without the flip and 0.62 with it (clean
        images: 0.94); see the user guide's deep-mode page.

    degrees : float, default=20.0
        Largest rotation angle in degrees, in [0, 180]; angles are uniform in
        [−degrees, degrees].

    translate : float or "auto", default="auto"
        Largest shift, as a fraction of the width and of the height, in
        [0, 1]; shifts are uniform in [−translate, translate]. ``"auto"``:
        0.1 for 1-channel images, 0 for 3-channel images.

    scale : float or "auto", default="auto"
        Largest relative change of size, in [0, 1); factors are uniform in
        [1 − scale, 1 + scale]. Rotation, shift and scale are one resampling
        (:func:`random_affine`). ``"auto"``: 0.15 for 1-channel images, 0
        for 3-channel images.

        The shifts and scales of 1-channel images, as in IIC's runs on
        digits (random crops and scales), are what let deep mode separate
        digits of one class that are written in different sizes and places
        from other classes: with the ``table3.py --cpu`` protocol on USPS
        pixels, EntropyClustering reached an accuracy of 0.72 without them
        and 0.8 with them (see the user guide's deep-mode page). On
        3-channel images they are not measured, so ``"auto"`` leaves them
        off there.

    brightness : float, default=0.4
        Brightness strength, nonnegative: factors uniform in
        [max(0, 1 − brightness), 1 + brightness].

    contrast : float, default=0.4
        Contrast strength, nonnegative, as ``brightness``.

    saturation : float, default=0.4
        Saturation strength, nonnegative, as ``brightness``; no effect on
        1-channel images.

    choose_one : bool, default=False
        If False, every view applies the flip, the rotation-shift-scale and
        the colour jitter (those with a nonzero strength). If True, every
        image of a view gets one of them, drawn uniformly per image: the
        papers' "two augmentations sampled from horizontal flip, rotation
        and colour distortion", a weaker augmentation.

    clean : float, default=0.0
        Probability in [0, 1] that an image of a view is left clean
        (untransformed), drawn per image and view: with the estimator's
        ``n_augmentations=2`` and ``clean=0.5``, one view in two is the
        image itself on average, so that σ_i also sees x_i as it will be
        predicted.

    See Also
    --------
    horizontal_flip : The flip alone.
    random_affine : The rotation, shift and scale alone.
    color_jitter : The colour changes alone.

    Notes
    -----
    The defaults are common choices, not values of the papers, which do not
    state them. No transformation clamps its output: all are linear in the
    pixel values, so raw 0–255 images and standardized images work alike.
    The call draws, in this order, one number per image for the flip, one
    for the angle, two for the shifts and one for the scale if those are
    nonzero, and one per nonzero colour strength, from ``generator``; with
    ``choose_one``, first one number per image for its transformation;
    with ``clean``, before everything else, one number per image for
    whether it stays clean.

    References
    ----------
    Zhang, Z., Boykov, Y. et al., "Discriminative Entropy Clustering and its
    Relation to K-means and SVM", supplement E.3.

    Zhang, Z. and Boykov, Y., "Collision Cross-entropy and EM Algorithm for
    Self-labeled Classification", §5.2.

    Hu, W., Miyato, T., Tokui, S., Matsumoto, E. and Sugiyama, M., "Learning
    Discrete Representations via Information Maximizing Self-Augmented
    Training", ICML 2017.

    Examples
    --------
    >>> import torch
    >>> from skentropy.augment import SelfAugmentation
    >>> augment = SelfAugmentation(degrees=15.0, saturation=0.0)
    >>> augment  # doctest: +NORMALIZE_WHITESPACE
    SelfAugmentation(flip='auto', degrees=15.0, translate='auto', scale='auto',
                     brightness=0.4, contrast=0.4, saturation=0.0,
                     choose_one=False, clean=0.0)
    >>> X = torch.rand(8, 1, 28, 28)
    >>> generator = torch.Generator().manual_seed(0)
    >>> augment(X, generator=generator).shape
    torch.Size([8, 1, 28, 28])
    """

    flip: float | str = "auto"
    degrees: float = 20.0
    translate: float | str = "auto"
    scale: float | str = "auto"
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    choose_one: bool = False
    clean: float = 0.0

    def __post_init__(self):
        for name in ("flip", "translate", "scale"):
            value = getattr(self, name)
            if isinstance(value, str) and value != "auto":
                raise ValueError(f"{name} must be a number or 'auto', got {value!r}.")
        if self.flip != "auto":
            _check_strength(self.flip, "flip", high=1.0)
        _check_affine(
            self.degrees,
            0.0 if self.translate == "auto" else self.translate,
            0.0 if self.scale == "auto" else self.scale,
        )
        _check_strength(self.brightness, "brightness")
        _check_strength(self.contrast, "contrast")
        _check_strength(self.saturation, "saturation")
        _check_strength(self.clean, "clean", high=1.0)
        if not isinstance(self.choose_one, bool):
            raise ValueError(
                f"choose_one must be True or False, got {self.choose_one!r}."
            )

    def __call__(self, X, generator=None):
        """Augment a batch of images, each with its own random parameters.

        Parameters
        ----------
        X : torch.Tensor of shape (n_samples, C, H, W)
            Batch of floating-point images. C must be 1 or 3 when
            ``contrast`` or ``saturation`` is nonzero.

        generator : torch.Generator, default=None
            CPU generator of the random numbers; ``None`` uses torch's default
            generator.

        Returns
        -------
        X_augmented : torch.Tensor of shape (n_samples, C, H, W)
            The augmented images, on the device and in the dtype of ``X``.
        """
        if self.clean > 0:
            _check_images(X)
            stays = _per_image(_uniform(len(X), 0.0, 1.0, generator) < self.clean)
            augmented = self._transform(X, generator)
            return torch.where(stays.to(X.device), X, augmented)
        return self._transform(X, generator)

    def strengths(self, n_channels):
        """The flip, translate and scale applied to images of ``n_channels``.

        Parameters
        ----------
        n_channels : int
            Number of channels C of the images.

        Returns
        -------
        strengths : tuple of float
            ``(flip, translate, scale)``: the fields themselves where they are
            numbers; for ``"auto"``, a flip of probability 0.5 and no shift
            or scale on 3-channel (natural) images, no flip, shifts up to 0.1
            and scales up to 0.15 on the others (digits, characters).
        """
        natural = n_channels == 3
        auto = (0.5, 0.0, 0.0) if natural else (0.0, *GREY_AFFINE)
        fields = (self.flip, self.translate, self.scale)
        return tuple(
            default if value == "auto" else value
            for value, default in zip(fields, auto, strict=True)
        )

    def _transform(self, X, generator):
        """The flip, rotation-shift-scale and colour jitter of every image."""
        flip, translate, scale = self.strengths(X.shape[1])
        strengths = {
            horizontal_flip: {"p": flip},
            random_affine: {
                "degrees": self.degrees,
                "translate": translate,
                "scale": scale,
            },
            color_jitter: {
                "brightness": self.brightness,
                "contrast": self.contrast,
                "saturation": self.saturation,
            },
        }
        if not self.choose_one:
            for transform, params in strengths.items():
                X = transform(X, **params, generator=generator)
            return X
        enabled = [
            functools.partial(transform, **params)
            for transform, params in strengths.items()
            if any(params.values())
        ]
        if not enabled:
            return X
        _check_images(X)
        choice = (_uniform(len(X), 0.0, len(enabled), generator).floor()).to(X.device)
        augmented = X
        for index, transform in enumerate(enabled):
            chosen = _per_image(choice == index)
            augmented = torch.where(
                chosen, transform(X, generator=generator), augmented
            )
        return augmented
