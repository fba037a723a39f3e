"""Feature networks f_w for deep entropy clustering.

The estimators' deep mode trains a feature network f_w jointly with the
clustering head, σ(vᵀ f_w(X)) (entropy-clustering-kmeans-svm §4.2). A feature
network here maps a batch of images to flat features of shape
(n_samples, out_features); the estimator adds the head (the final
``Linear(out_features, K)``) itself.

The networks take plain ``__init__`` arguments, so that skorch can build them
from a class and prefixed parameters, e.g. ``module=VGG4,
module__input_shape=(1, 16, 16)``.
"""

import operator

from torch import nn
from torch.nn import functional as F

__all__ = ["VGG4"]

# One entry per column of Table 1 of the entropy supplement: the side of the
# square input the variant expects, the stride of its 5×5 convolutions (padding
# 2 everywhere) and the widths of its four convolutions. A 2×2 max-pool of
# stride 2 follows each convolution but the last.
_VARIANTS = {
    "28x28x1": {"side": 28, "stride": 1, "widths": (64, 128, 256, 512)},
    "32x32x3": {"side": 32, "stride": 1, "widths": (32, 64, 128, 256)},
    "96x96x3": {"side": 96, "stride": 2, "widths": (128, 256, 512, 1024)},
}

_RESIZE_OPTIONS = ("interpolate", "pad")


def _check_input_shape(input_shape):
    """(C, H, W) of ``input_shape``, given as (C, H, W) or (H, W) for grey."""
    try:
        shape = tuple(operator.index(size) for size in input_shape)
    except TypeError:
        raise ValueError(
            "input_shape must be a tuple of integers (C, H, W) or (H, W), "
            f"got {input_shape!r}."
        ) from None
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or any(isinstance(size, bool) for size in input_shape):
        raise ValueError(
            "input_shape must be a tuple of integers (C, H, W) or (H, W), "
            f"got {input_shape!r}."
        )
    if min(shape) < 1:
        raise ValueError(
            f"input_shape must have positive sizes, got {tuple(input_shape)!r}."
        )
    return shape


def _choose_variant(channels, height, width):
    """Name of the Table 1 variant for images of shape (channels, height, width)."""
    if channels == 1:
        return "28x28x1"
    if channels == 3:
        return "32x32x3" if max(height, width) <= 32 else "96x96x3"
    raise ValueError(
        "VGG4 has variants for 1-channel (grey) and 3-channel (RGB) images only, "
        f"got input_shape with {channels} channels."
    )


def _vgg4_layers(in_channels, stride, widths):
    """Conv(5×5, p=2) → BatchNorm → ReLU blocks, a 2×2 max-pool between them."""
    layers = []
    for i, width in enumerate(widths):
        if i > 0:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        layers += [
            # No bias: the batch norm that follows removes any constant shift.
            nn.Conv2d(in_channels, width, 5, stride=stride, padding=2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        in_channels = width
    return nn.Sequential(*layers)


def _output_side(side, stride, n_convs):
    """Side of the last feature map of a square ``side`` × ``side`` input."""
    for i in range(n_convs):
        if i > 0:
            side //= 2  # max-pool 2×2, stride 2, floor
        side = (side + 2 * 2 - 5) // stride + 1  # conv 5×5, padding 2
    return side


class VGG4(nn.Module):
    """VGG4 feature network of the entropy clustering papers' deep experiments.

    Four 5×5 convolutions, each followed by batch normalization and a ReLU,
    with a 2×2 max-pool of stride 2 between them (entropy-clustering-kmeans-svm
    supplement, Table 1; collision-cross-entropy supplement, Table 7; adapted
    from the VGG trunks of IIC, Ji et al. 2019). The variant follows from
    ``input_shape``:

    ========= ===================== =================== ===================
    variant   convolutions          widths              output features
    ========= ===================== =================== ===================
    28x28x1   5×5, stride 1, pad 2  64, 128, 256, 512   512 × 3 × 3 = 4608
    32x32x3   5×5, stride 1, pad 2  32, 64, 128, 256    256 × 4 × 4 = 4096
    96x96x3   5×5, stride 2, pad 2  128, 256, 512, 1024 1024 × 1 × 1 = 1024
    ========= ===================== =================== ===================

    Grey images (1 channel) of any size use the 28x28x1 variant; RGB images
    (3 channels) use the 32x32x3 variant up to 32 pixels a side, the 96x96x3
    variant above. Images of another size are brought to the variant's square
    input in ``forward``, see ``resize``.

    The final ``Linear(out_features, K)`` of the table is the clustering head,
    which the estimators add: ``forward`` returns the flattened features of
    the last ReLU, of shape (n_samples, out_features).

    Parameters
    ----------
    input_shape : tuple of int, default=(1, 28, 28)
        Shape (C, H, W) of one input image, or (H, W) for a grey image. Only
        1 (grey) and 3 (RGB) channels are supported.

    resize : {"interpolate", "pad"}, default="interpolate"
        How images whose H × W differ from the variant's input are brought to
        it:

        - ``"interpolate"``: bilinear interpolation to the variant's size
          (``torch.nn.functional.interpolate`` with ``align_corners=False``,
          antialiased when an image is shrunk). A non-square image is
          stretched to the square input.
        - ``"pad"``: zero padding around the image, which stays in the centre
          (one pixel more to the bottom and right when the difference is
          odd). Only for images no larger than the variant's input; it
          assumes a zero background, e.g. raw pixels of digits.

    width : float, default=1.0
        Multiplier of the number of channels of every convolution (rounded,
        at least 1), in (0, 16]: 1 is Table 1; ``width=0.25`` gives the
        28x28x1 variant 16, 32, 64 and 128 channels, about 1/16 of its
        multiply-adds, for runs on a CPU.

    Attributes
    ----------
    input_shape : tuple of int
        Shape (C, H, W) of one input image, with C = 1 added for (H, W).

    resize : str
        The ``resize`` argument.

    width : float
        The ``width`` argument.

    variant : str
        The column of Table 1 in use: ``"28x28x1"``, ``"32x32x3"`` or
        ``"96x96x3"``.

    out_features : int
        Number of output features: 4608, 4096 or 1024 at ``width=1``.

    features : torch.nn.Sequential
        The convolution, batch-norm, ReLU and max-pool layers.

    See Also
    --------
    skentropy.augment.SelfAugmentation : The papers' self-augmentation, used
        with VGG4 in their deep experiments.

    Notes
    -----
    The convolutions have no bias: the batch normalization that follows each
    of them subtracts the per-channel mean, which would cancel any bias, as in
    the VGG trunks of IIC. The batch norms keep running statistics, so put the
    network in ``eval()`` mode for deterministic features.

    The papers train VGG4 from random initialization with Adam (learning rate
    1e-4, weight decay 0.01), batches of 250 images and two augmentations per
    image (entropy-clustering-kmeans-svm supplement E.3).

    References
    ----------
    Zhang, Z., Boykov, Y. et al., "Discriminative Entropy Clustering and its
    Relation to K-means and SVM", supplement E.1, Table 1.

    Zhang, Z. and Boykov, Y., "Collision Cross-entropy and EM Algorithm for
    Self-labeled Classification", supplement D, Table 7.

    Ji, X., Henriques, J. F. and Vedaldi, A., "Invariant Information
    Clustering for Unsupervised Image Classification and Segmentation",
    ICCV 2019.

    Examples
    --------
    >>> import torch
    >>> from skentropy.nets import VGG4
    >>> net = VGG4(input_shape=(1, 16, 16), resize="pad").eval()
    >>> net.variant, net.out_features
    ('28x28x1', 4608)
    >>> images = torch.rand(2, 16, 16)  # USPS-sized, padded to 28 × 28
    >>> net(images).shape
    torch.Size([2, 4608])
    """

    def __init__(self, input_shape=(1, 28, 28), resize="interpolate", width=1.0):
        super().__init__()
        if resize not in _RESIZE_OPTIONS:
            raise ValueError(
                f"resize must be one of {_RESIZE_OPTIONS}, got {resize!r}."
            )
        if (
            isinstance(width, bool)
            or not isinstance(width, int | float)
            or not 0 < width <= 16
        ):
            raise ValueError(f"width must be a number in (0, 16], got {width!r}.")
        channels, height, image_width = _check_input_shape(input_shape)
        variant = _choose_variant(channels, height, image_width)
        spec = _VARIANTS[variant]
        side = spec["side"]
        if resize == "pad" and max(height, image_width) > side:
            raise ValueError(
                f"resize='pad' cannot fit {height}×{image_width} images into the "
                f"{side}×{side} input of the VGG4 {variant} variant; use "
                "resize='interpolate'."
            )
        self.input_shape = (channels, height, image_width)
        self.resize = resize
        self.width = width
        self.variant = variant
        widths = [max(1, round(width * n)) for n in spec["widths"]]
        self.features = _vgg4_layers(channels, spec["stride"], widths)
        last_side = _output_side(side, spec["stride"], len(widths))
        self.out_features = widths[-1] * last_side**2

    def extra_repr(self):
        """The settings shown in the module's ``repr``.

        Returns
        -------
        extra : str
            ``input_shape``, ``resize``, ``width``, ``variant`` and
            ``out_features``.
        """
        return (
            f"input_shape={self.input_shape}, resize={self.resize!r}, "
            f"width={self.width!r}, variant={self.variant!r}, "
            f"out_features={self.out_features}"
        )

    def forward(self, X):
        """Flattened features of a batch of images.

        Parameters
        ----------
        X : torch.Tensor of shape (n_samples, C, H, W) or (n_samples, H, W)
            Floating-point images of the module's ``input_shape`` (C, H, W);
            (n_samples, H, W) for grey images.

        Returns
        -------
        features : torch.Tensor of shape (n_samples, out_features)
            The output of the last convolution block, flattened.
        """
        X = self._check_images(X)
        return self.features(self._to_variant_size(X)).flatten(start_dim=1)

    def _check_images(self, X):
        channels, height, width = self.input_shape
        if X.ndim == 3 and channels == 1:
            X = X.unsqueeze(1)
        if X.ndim != 4 or tuple(X.shape[1:]) != self.input_shape:
            expected = f"(n_samples, {channels}, {height}, {width})"
            if channels == 1:
                expected += f" or (n_samples, {height}, {width})"
            raise ValueError(
                f"VGG4 built for input_shape={self.input_shape} expects images "
                f"of shape {expected}, got shape {tuple(X.shape)}."
            )
        return X

    def _to_variant_size(self, X):
        """Resize or centre-pad (n, C, H, W) images to the variant's input."""
        side = _VARIANTS[self.variant]["side"]
        height, width = X.shape[-2:]
        if (height, width) == (side, side):
            return X
        if self.resize == "pad":
            top, left = (side - height) // 2, (side - width) // 2
            bottom, right = side - height - top, side - width - left
            return F.pad(X, (left, right, top, bottom))
        shrinks = max(height, width) > side
        return F.interpolate(
            X,
            size=(side, side),
            mode="bilinear",
            align_corners=False,
            antialias=shrinks,
        )
