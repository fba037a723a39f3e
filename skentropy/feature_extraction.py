"""Fixed features of images from a torch network, as a scikit-learn transformer.

The papers cluster the embeddings of a pretrained network (ResNet-50 on
ImageNet) with a clustering head. :class:`FeatureExtractor` computes such
embeddings inside a scikit-learn pipeline: it runs any :class:`torch.nn.Module`
in evaluation mode, without gradients, over mini-batches of images, after an
optional rescaling, resizing and per-channel normalization, and returns the
flattened outputs as a numpy array, so that
``make_pipeline(FeatureExtractor(backbone), EntropyClustering(10))`` clusters
images end to end.

:data:`IMAGENET_MEAN` and :data:`IMAGENET_STD` are the per-channel statistics
with which torchvision's (and most other) ImageNet-pretrained networks expect
their RGB inputs in [0, 1] to be normalized.
"""

import copy
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn
from tqdm.auto import tqdm

from skentropy._torch_utils import resolve_device, seeded_rng

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "FeatureExtractor"]

#: Per-channel (R, G, B) mean of the ImageNet training images in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)

#: Per-channel (R, G, B) standard deviation of the ImageNet training images.
IMAGENET_STD = (0.229, 0.224, 0.225)

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

# Errors of a forward pass on inputs of the wrong shape (torch raises
# RuntimeError for most of them); anything else, out of memory included, is
# left alone.
_SHAPE_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


class FeatureExtractor(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Turn images into fixed features with a torch network.

    Runs ``module`` in evaluation mode and without gradients over mini-batches
    of ``X`` and returns its outputs, flattened to one row per sample. Each
    mini-batch is copied from ``X`` on its own, moved to ``device`` and
    preprocessed there, in this order: move the channels first
    (``channels_last``), multiply by ``scale``, resize to ``input_size``,
    repeat a single channel to ``n_channels``, subtract ``mean`` and divide by
    ``std``. ``fit`` learns nothing from the data: it copies the module and
    checks, with one forward pass on the first sample, that the module accepts
    the preprocessed images.

    Read more in the :ref:`User Guide <feature_extraction>`.

    Parameters
    ----------
    module : torch.nn.Module instance or class
        The network, e.g. a pretrained backbone whose classification head is
        replaced by :class:`torch.nn.Identity`. An instance is deep-copied
        (the caller's module is never changed); a class is instantiated with
        no arguments, its initial weights drawn from ``random_state``. Its
        output for a batch of ``m`` samples must be a tensor with ``m`` rows;
        every other axis is flattened into the features.

    batch_size : int, default=256
        Number of samples per forward pass. It bounds the memory used, and
        does not change the features (up to rounding).

    device : {"auto", "cpu", "cuda"}, default="auto"
        Where ``transform`` runs the module: ``"auto"`` means CUDA if it is
        available, else the CPU. The fitted module is kept on the CPU, so the
        fitted transformer pickles and loads on a machine without a GPU; it
        is copied to the device in each call of ``transform``. ``"cuda"``
        without CUDA raises a ValueError.

    dtype : {"float32", "float64", "bfloat16", "float16"}, default="float32"
        Floating-point type of the module's parameters and inputs. The
        preprocessing runs in float64 for ``"float64"`` and in float32
        otherwise, and so do the returned features: half precisions
        (``"bfloat16"``, ``"float16"``) speed up GPUs, not the output.

    channels_last : "auto" or bool, default="auto"
        Layout of 4-D input. True: images of shape (n_samples, height, width,
        channels), as stored by most image libraries; they are transposed to
        channels first. False: (n_samples, channels, height, width), as taken
        by torch. ``"auto"``: channels last if the last axis has 1 or 3
        entries and the second axis has not, else channels first. Ignored for
        2-D and 3-D input.

    scale : float, default=None
        Factor applied to the input values first, e.g. ``1 / 255`` to bring
        8-bit images to [0, 1]. None leaves the values as they are.

    input_size : int or tuple of (int, int), default=None
        Height and width to resize the images to, with bilinear interpolation
        (:func:`torch.nn.functional.interpolate`, ``align_corners=False``),
        antialiased where an image is made smaller. An int means a square.
        None keeps the images' size. Must be None for 2-D input.

    n_channels : int, default=None
        Number of channels the module takes. Images with one channel (such as
        greyscale images) are repeated along the channel axis to this number,
        e.g. 3 for an RGB network; images with another number of channels
        raise a ValueError. None passes the channels as they are.

    mean : float or array-like of shape (n_channels,), default=None
        Subtracted from each channel after scaling and resizing, e.g.
        :data:`IMAGENET_MEAN` for inputs scaled to [0, 1]. One value for all
        channels or one per channel. For 2-D input the features play the
        part of the channels. None subtracts nothing.

    std : float or array-like of shape (n_channels,), default=None
        Positive values that each channel is divided by after subtracting
        ``mean``, e.g. :data:`IMAGENET_STD`. None divides by nothing.

    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights when ``module`` is a class, and the lazy
        parameters (such as those of :class:`torch.nn.LazyLinear`) that the
        first forward pass creates. Torch's global random generator is never
        used nor changed. Unused for an initialized module instance.
        See :term:`Glossary <random_state>`.

    verbose : int, default=0
        If positive, ``transform`` shows a progress bar over the mini-batches.

    Attributes
    ----------
    module_ : torch.nn.Module
        The network used by ``transform``: a copy of ``module`` (or a new
        instance of it), in evaluation mode, on the CPU, with ``dtype``
        parameters.

    module_input_shape_ : tuple of int
        Shape of one sample as the module received it in ``fit``, after the
        preprocessing, e.g. ``(3, 224, 224)``, or ``(n_features_in_,)`` for
        2-D input. ``transform`` needs the same number of channels; images
        of another height and width are passed on if ``input_size`` is None.

    n_features_out_ : int
        Number of features that ``transform`` returns per sample.

    n_features_in_ : int
        Number of features seen during :term:`fit`. Only defined when ``X``
        is 2-D (vectors): for images it would be a count of channels or rows.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.pipeline.make_pipeline : Chain the extractor with a clusterer.
    skentropy.EntropyClustering : Cluster the extracted features.

    Notes
    -----
    All the preprocessing steps are linear, so the order of rescaling,
    resizing and normalizing changes only the rounding; they run on the
    device, on the copied mini-batch, so that ``uint8`` images travel to the
    GPU at a quarter of the size of float32 ones. The input is never
    converted as a whole: a read-only :class:`numpy.memmap` stays on disk
    except for the mini-batch being processed.

    Any other preprocessing (cropping, another interpolation, a different
    colour space) can be made part of the network, e.g.
    ``nn.Sequential(my_preprocessing, backbone)``.

    Non-finite module outputs raise a ValueError rather than flow into the
    features; in half precision, that usually means an overflow.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from skentropy.feature_extraction import FeatureExtractor
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, size=(10, 16, 16, 3), dtype=np.uint8)
    >>> net = nn.Sequential(
    ...     nn.Conv2d(3, 8, kernel_size=3), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
    ... )
    >>> extractor = FeatureExtractor(
    ...     net, scale=1 / 255, input_size=32, mean=0.5, std=0.25, device="cpu"
    ... )
    >>> features = extractor.fit_transform(images)
    >>> features.shape, features.dtype
    ((10, 8), dtype('float32'))
    >>> extractor.module_input_shape_
    (3, 32, 32)
    >>> extractor.get_feature_names_out()[:3]
    array(['featureextractor0', 'featureextractor1', 'featureextractor2'],
          dtype=object)
    """

    _parameter_constraints: dict = {
        "module": [nn.Module, type],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "dtype": [StrOptions(set(_DTYPES))],
        "channels_last": ["boolean", StrOptions({"auto"})],
        "scale": [Interval(Real, 0, None, closed="neither"), None],
        "input_size": [Interval(Integral, 1, None, closed="left"), tuple, list, None],
        "n_channels": [Interval(Integral, 1, None, closed="left"), None],
        "mean": [Real, "array-like", None],
        "std": [Real, "array-like", None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        module,
        *,
        batch_size=256,
        device="auto",
        dtype="float32",
        channels_last="auto",
        scale=None,
        input_size=None,
        n_channels=None,
        mean=None,
        std=None,
        random_state=None,
        verbose=0,
    ):
        self.module = module
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.scale = scale
        self.input_size = input_size
        self.n_channels = n_channels
        self.mean = mean
        self.std = std
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Copy the module and check it on the first sample of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width), \
                (n_samples, channels, height, width), \
                (n_samples, height, width, channels) or (n_samples, n_features)
            Images (greyscale if 3-D), or vectors for a module on vectors.
            Any real dtype, e.g. ``uint8``.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        X = validate_data(
            self, X, allow_nd=True, dtype="numeric", ensure_min_features=1
        )
        if X.ndim > 2:
            # n_features_in_ would count channels or rows of pixels.
            del self.n_features_in_
        _check_rank(X)
        if X.ndim == 2 and (self.input_size is not None or self.n_channels):
            raise ValueError(
                "input_size and n_channels apply to images; X is 2-D (vectors) "
                f"of shape {X.shape}. Leave them as None."
            )
        _input_size(self.input_size)  # raises on a malformed size

        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        module = self._new_module(seed)
        batch = self._preprocess(_to_tensor(X[:1]), torch.device("cpu"))
        with seeded_rng(seed, torch.device("cpu")):
            # Lazy modules draw their parameters in the first forward pass.
            out = self._probe(module, batch, X.shape[1:], n_features=None)
        self.module_ = module
        self.module_input_shape_ = tuple(batch.shape[1:])
        self.n_features_out_ = out.shape[1]
        return self

    def transform(self, X):
        """Compute the module's features of X, one mini-batch at a time.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width), \
                (n_samples, channels, height, width), \
                (n_samples, height, width, channels) or (n_samples, n_features)
            Images or vectors of the same kind as in ``fit`` (the same number
            of channels; images may have another size).

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out)
            The flattened module outputs, ``n_features_out_`` per sample:
            float64 if ``dtype="float64"``, float32 otherwise.
        """
        check_is_fitted(self)
        X = validate_data(
            self, X, allow_nd=True, dtype="numeric", ensure_min_features=1, reset=False
        )
        _check_rank(X)
        if (X.ndim == 2) != (len(self.module_input_shape_) == 1):
            kind = "vectors" if len(self.module_input_shape_) == 1 else "images"
            raise ValueError(
                f"{type(self).__name__} was fitted on {kind} (samples of shape "
                f"{self.module_input_shape_} after preprocessing), got X of shape "
                f"{X.shape}."
            )
        device = self._device()
        dtype = _DTYPES[self.dtype]
        module = self.module_
        if module.training:
            module.eval()
        if device.type != "cpu" or _module_dtype(module) not in (None, dtype):
            module = copy.deepcopy(module).to(device=device, dtype=dtype)

        n_samples = X.shape[0]
        out_dtype = np.float64 if self.dtype == "float64" else np.float32
        X_new = np.empty((n_samples, self.n_features_out_), dtype=out_dtype)
        starts = range(0, n_samples, self.batch_size)
        for start in tqdm(
            starts,
            desc=type(self).__name__,
            unit="batch",
            disable=not self.verbose,
        ):
            stop = min(start + self.batch_size, n_samples)
            batch = self._preprocess(_to_tensor(X[start:stop]), device)
            if start == 0 and batch.shape[1:] != self.module_input_shape_:
                # Another image size than in fit: report a failure as in fit.
                self._check_same_channels(batch.shape[1:])
                self._probe(module, batch[:1], X.shape[1:], self.n_features_out_)
            with torch.no_grad():
                out = module(batch.to(dtype))
            X_new[start:stop] = self._check_output(
                out, start, stop - start, self.n_features_out_
            )
        return X_new

    @property
    def _n_features_out(self):
        """Number of output features, for ``get_feature_names_out``."""
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = (
            ["float64"] if self.dtype == "float64" else ["float32"]
        )
        return tags

    # -- helpers ---------------------------------------------------------------

    def _new_module(self, seed):
        """A CPU copy (or a new instance) of ``module`` in eval mode and dtype."""
        if isinstance(self.module, type):
            if not issubclass(self.module, nn.Module):
                raise TypeError(
                    "module must be a torch.nn.Module instance or subclass, got "
                    f"the class {self.module.__qualname__}."
                )
            with seeded_rng(seed, torch.device("cpu")):
                module = self.module()
        else:
            module = copy.deepcopy(self.module)
        return module.to(device="cpu", dtype=_DTYPES[self.dtype]).eval()

    def _device(self):
        """The torch device of ``transform``, from the ``device`` parameter."""
        return resolve_device(self.device)

    def _preprocess(self, batch, device):
        """Move a batch to ``device`` and apply the preprocessing steps.

        Returns a float32 (float64 for ``dtype="float64"``) tensor of shape
        (m, channels, height, width) for images or (m, n_features) for vectors.
        """
        work_dtype = torch.float64 if self.dtype == "float64" else torch.float32
        batch = batch.to(device).to(work_dtype)
        if batch.ndim == 3:
            batch = batch.unsqueeze(1)
        elif batch.ndim == 4 and self._is_channels_last(batch.shape):
            batch = batch.permute(0, 3, 1, 2)
        if self.scale is not None:
            batch = batch * self.scale
        size = _input_size(self.input_size)
        if size is not None and tuple(batch.shape[2:]) != size:
            shrink = size[0] < batch.shape[2] or size[1] < batch.shape[3]
            batch = F.interpolate(
                batch, size=size, mode="bilinear", align_corners=False, antialias=shrink
            )
        if self.n_channels is not None and batch.shape[1] != self.n_channels:
            if batch.shape[1] != 1:
                raise ValueError(
                    f"n_channels={self.n_channels} but the images have "
                    f"{batch.shape[1]} channels (shape {tuple(batch.shape[1:])} "
                    "after moving the channels first); only images with 1 "
                    "channel are repeated. Check channels_last."
                )
            batch = batch.expand(-1, self.n_channels, *batch.shape[2:])
        n_channels = batch.shape[1]
        for name, value in (("mean", self.mean), ("std", self.std)):
            if value is None:
                continue
            value = _per_channel(name, value, n_channels, batch.ndim)
            value = value.to(device=device, dtype=work_dtype)
            batch = batch - value if name == "mean" else batch / value
        return batch.contiguous()

    def _is_channels_last(self, shape):
        """Whether a 4-D batch of this shape has its channels last."""
        if self.channels_last == "auto":
            return shape[3] in (1, 3) and shape[1] not in (1, 3)
        return bool(self.channels_last)

    def _check_same_channels(self, sample_shape):
        """Raise if images have another number of channels than in ``fit``."""
        if sample_shape[0] != self.module_input_shape_[0]:
            raise ValueError(
                f"X has images with {sample_shape[0]} channels (samples of shape "
                f"{tuple(sample_shape)} after preprocessing), but "
                f"{type(self).__name__} was fitted on images of shape "
                f"{self.module_input_shape_}. Check channels_last."
            )

    def _probe(self, module, batch, raw_shape, n_features):
        """Run ``module`` on a batch; re-raise a failure as a clear ValueError."""
        try:
            with torch.no_grad():
                out = module(batch.to(_DTYPES[self.dtype]))
        except _SHAPE_ERRORS as err:
            kind = "vector" if batch.ndim == 2 else "image"
            raise ValueError(
                f"The module failed on a batch of shape {tuple(batch.shape)}: one "
                f"{kind} of X (shape {tuple(raw_shape)} as given) after "
                "preprocessing."
                f"{_expected_input_hint(module)} Check channels_last, "
                f"n_channels and input_size. The module said: {err}"
            ) from err
        return self._check_output(out, 0, batch.shape[0], n_features)

    def _check_output(self, out, start, n_rows, n_features):
        """The module output of a batch, checked, as a numpy array of n_rows rows.

        ``start`` is the index in X of the batch's first sample; ``n_features``
        the expected number of features, or None in ``fit``.
        """
        if not isinstance(out, torch.Tensor):
            raise ValueError(
                f"The module must return a tensor, it returned {type(out).__name__}; "
                "wrap it in a module that returns the features."
            )
        if out.ndim == 0 or out.shape[0] != n_rows:
            raise ValueError(
                f"The module returned shape {tuple(out.shape)} for a batch of "
                f"{n_rows} samples; it must return one row per sample."
            )
        out = out.reshape(n_rows, -1)
        if n_features is not None and out.shape[1] != n_features:
            raise ValueError(
                f"The module returned {out.shape[1]} features per sample, but "
                f"{n_features} in fit: its output depends on the image size, so "
                "set input_size."
            )
        if not torch.isfinite(out).all():
            bad = (~torch.isfinite(out)).any(dim=1).nonzero()[0, 0].item()
            raise ValueError(
                "The module returned non-finite values (NaN or inf) for sample "
                f"{start + bad} of X. Check the input values and the "
                f"normalization; with dtype={self.dtype!r}, an overflow is "
                "possible."
            )
        out_dtype = torch.float64 if self.dtype == "float64" else torch.float32
        return out.to(out_dtype).cpu().numpy()


def _check_rank(X):
    """Raise unless X holds vectors (2-D) or images (3-D or 4-D)."""
    if X.ndim > 4:
        raise ValueError(
            "X must be 2-D (vectors), 3-D (greyscale images) or 4-D (images with "
            f"channels), got an array of shape {X.shape}."
        )


def _to_tensor(X_slice):
    """A torch copy of a numpy slice, e.g. of a read-only memmap."""
    return torch.from_numpy(np.array(X_slice, order="C"))


def _input_size(input_size):
    """``input_size`` as a (height, width) tuple, or None."""
    if input_size is None:
        return None
    if isinstance(input_size, Integral):
        return (int(input_size), int(input_size))
    size = tuple(input_size)
    if len(size) != 2 or not all(
        isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in size
    ):
        raise ValueError(
            "input_size must be a positive int or a pair (height, width) of "
            f"positive ints, got {input_size!r}."
        )
    return tuple(int(s) for s in size)


def _per_channel(name, value, n_channels, ndim):
    """``mean`` or ``std`` as a tensor broadcasting over a batch's channels."""
    value = torch.as_tensor(np.asarray(value, dtype=np.float64).ravel())
    if value.shape[0] not in (1, n_channels):
        what = "features" if ndim == 2 else "channels"
        raise ValueError(
            f"{name} must have 1 value or one per channel; got {value.shape[0]} "
            f"values for inputs with {n_channels} {what}."
        )
    if name == "std" and not bool((value > 0).all()):
        raise ValueError(f"std must be positive, got {value.tolist()}.")
    return value.reshape(1, -1, *([1] * (ndim - 2)))


def _module_dtype(module):
    """The floating dtype of the module's first parameter, or None if it has none."""
    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def _expected_input_hint(module):
    """A sentence on the input the module's first layer takes, if known."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.conv._ConvNd):
            return f" Its first layer {layer} takes {layer.in_channels} channels."
        if isinstance(layer, nn.Linear) and not isinstance(
            layer, nn.modules.lazy.LazyModuleMixin
        ):
            return f" Its first layer {layer} takes {layer.in_features} features."
    return ""
