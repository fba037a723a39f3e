"""Which self-augmentations keep an image's class: 1-NN agreement per choice.

Self-augmentation averages σ of an image over random transformations t of it,
so a transformation that makes images of one class look like another class
teaches the network to merge them. This measures, for each choice of
transformation, how often the nearest clean image (Euclidean distance on the
pixels, the image itself left out) of an augmented image t(x_i) has the class
of x_i: "clean" (t = identity) is the leave-one-out 1-NN accuracy of the
pixels, and a good augmentation stays close to it.

Data: the grey images of ``../shared/data`` (``mnist5k.npz``, 5000 images of
28 × 28; ``usps.npz``, 9298 of 16 × 16), pixels scaled to [0, 1]. Each choice
is drawn with ``--seeds`` seeds; the table gives the mean agreement.

Usage, from the repository root::

    .venv/bin/python benchmarks/augmentations.py
    .venv/bin/python benchmarks/augmentations.py --files mnist5k --max-images 1000
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from skentropy.augment import (
    SelfAugmentation,
    horizontal_flip,
    random_affine,
    random_rotation,
)

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHOICES = {
    "clean": lambda X, generator: X,
    "always flipped": lambda X, generator: horizontal_flip(X, p=1.0),
    "rotation ±20°": lambda X, generator: random_rotation(
        X, degrees=20.0, generator=generator
    ),
    "shift ±10%": lambda X, generator: random_affine(
        X, degrees=0.0, translate=0.1, scale=0.0, generator=generator
    ),
    "scale ±10%": lambda X, generator: random_affine(
        X, degrees=0.0, translate=0.0, scale=0.1, generator=generator
    ),
    "SelfAugmentation() (no flip, shift 0.1, scale 0.15)": SelfAugmentation(),
    "SelfAugmentation(flip=0.5)": SelfAugmentation(flip=0.5),
    "SelfAugmentation(translate=0, scale=0)": SelfAugmentation(translate=0, scale=0),
    "SelfAugmentation(flip=0.5, translate=0, scale=0)": SelfAugmentation(
        flip=0.5, translate=0, scale=0
    ),
    "SelfAugmentation(choose_one=True, translate=0, scale=0)": SelfAugmentation(
        choose_one=True, translate=0, scale=0
    ),
    "SelfAugmentation(clean=0.5, translate=0, scale=0)": SelfAugmentation(
        clean=0.5, translate=0, scale=0
    ),
    "SelfAugmentation(translate=0, scale=0.1)": SelfAugmentation(
        translate=0, scale=0.1
    ),
    "SelfAugmentation(translate=0.1, scale=0.1)": SelfAugmentation(
        translate=0.1, scale=0.1
    ),
}


def agreement(X, y, augmented):
    """Share of augmented images whose nearest other clean image has their class."""
    flat = X.reshape(len(X), -1)
    queries = augmented.reshape(len(X), -1)
    distances = torch.cdist(queries, flat)
    distances.fill_diagonal_(torch.inf)  # the image itself is left out
    nearest = distances.argmin(dim=1).numpy()
    return float(np.mean(y[nearest] == y))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=["mnist5k", "usps"])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-images", type=int, default=None)
    args = parser.parse_args(argv)
    results = {}
    for name in args.files:
        path = args.data_dir / f"{name}.npz"
        if not path.exists():
            raise SystemExit(f"{path} not found (see ../shared/data/README.md)")
        with np.load(path) as data:
            X, y = data["X"][: args.max_images], data["y"][: args.max_images]
        X = torch.as_tensor(X, dtype=torch.float32).unsqueeze(1) / 255.0
        results[name] = {
            choice: np.mean(
                [
                    agreement(X, y, augment(X, torch.Generator().manual_seed(seed)))
                    for seed in range(args.seeds)
                ]
            )
            for choice, augment in CHOICES.items()
        }
        print(f"{name}: {len(X)} images of {tuple(X.shape[1:])}", flush=True)
    print(f"\n1-NN class agreement of augmented images (mean of {args.seeds} seeds)\n")
    print("| augmentation | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for choice in CHOICES:
        cells = [f"{results[name][choice]:.3f}" for name in results]
        print(f"| {choice} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
