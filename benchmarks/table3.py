"""Deep clustering from raw pixels, in the papers' Table 3 protocol.

Trains the VGG4 feature network of the entropy clustering supplement (Table 1)
from scratch together with the clustering head, on the raw images of
``../shared/data`` (``mnist5k.npz``, ``usps.npz``, ``fashion-mnist.npz``,
``cifar10-test-images.npz``; see that folder's README), with the protocol of
the entropy clustering supplement E.3 and collision cross-entropy §5.2:

- Adam, learning rate 1e-4, weight decay 0.01 (on the weights of the
  convolutions and linear maps, not on biases and batch-norm parameters: deep
  mode's rule; the margin term γ‖v‖² is left at 0, the decay already shrinks
  v), batches of 250;
- fairness weight λ = 100;
- self-augmentation: σ_i is the mean of σ over 2 augmented views of image i,
  each a random rotation (±20°) and colour jitter (0.4), and a horizontal
  flip for RGB images only, shifts (±10 %) and scales (±15 %) for grey
  images only (:class:`skentropy.augment.SelfAugmentation`'s default: flips
  make digits look like other digits; shifts and scales let digits of one
  class written in different sizes and places cluster together);
- 50 epochs, without early stopping.

It prints the Hungarian accuracy of every epoch (computed by a skorch
callback, the estimators' ``callbacks=``), next to ``KMeans(n_init=10)`` on
the same pixels. Pixels are scaled to [0, 1]; USPS (16×16) is resized to 28×28
by VGG4; CIFAR-10 images (channels last on disk) are transposed to (3, 32, 32).

The full protocol is heavy on a CPU (about a GFLOP per 28×28 image and view,
forward and backward): run it on a CUDA GPU (``--device cuda``), or in the
background. ``--quick`` runs MNIST-5k for 5 epochs, about 10 minutes on
2 CPU cores. ``--cpu`` is a reduced protocol that shows on 2 CPU cores
whether deep mode learns: MNIST-5k (about 25 minutes), EntropyClustering
and CollisionCEClustering, VGG4 at a quarter of its width (``--width 0.25``,
1/16 of its multiply-adds), 3,000 steps (``--steps``: 150 epochs of
MNIST-5k, 81 of USPS) at learning rate 1e-3 annealed to 0 by a cosine
schedule (``--schedule``); ``--cpu --datasets usps`` runs it on USPS (about
25 minutes a fit). ``--params``
sets other estimator parameters (JSON), ``--augment`` the fields of
:class:`~skentropy.augment.SelfAugmentation` (JSON).

Usage, from the repository root::

    .venv/bin/python benchmarks/table3.py --quick
    .venv/bin/python benchmarks/table3.py --cpu --seeds 3
    .venv/bin/python benchmarks/table3.py --datasets mnist5k usps --epochs 50 \
        --estimators EntropyClustering CollisionCEClustering --device cuda
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from skorch.callbacks import Callback, LRScheduler
from torch.optim.lr_scheduler import CosineAnnealingLR

import skentropy
from skentropy.augment import SelfAugmentation
from skentropy.metrics import clustering_accuracy
from skentropy.nets import VGG4

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS = {
    "mnist5k": "mnist5k.npz",
    "usps": "usps.npz",
    "fashion-mnist": "fashion-mnist.npz",
    "cifar10": "cifar10-test-images.npz",
}
ESTIMATORS = [
    "EntropyClustering",
    "CollisionCEClustering",
    "MaxMarginEntropyClustering",
    "MIGDClustering",
    "SeLaClustering",
    "MIADMClustering",
]
PROTOCOL = {
    "optimizer": "adam",
    "lr": 1e-4,
    "weight_decay": 0.01,
    "batch_size": 250,
    "fairness_weight": 100.0,
    "gamma": 0.0,
    "n_augmentations": 2,
    "tol": 0.0,
}


def load_images(name):
    """Images as float32 (N, C, H, W) in [0, 1], and their labels."""
    data = np.load(DATA_DIR / DATASETS[name])
    X = data["X"].astype(np.float32) / 255.0
    X = X[:, None] if X.ndim == 3 else X.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(X), data["y"]


class EpochAccuracy(Callback):
    """Print and record the Hungarian accuracy of the best head after each epoch."""

    def __init__(self, X, y, label):
        self.X = X
        self.y = y
        self.label = label

    def initialize(self):
        self.accuracies_ = []
        self.start_ = time.perf_counter()
        return self

    def on_epoch_end(self, net, **kwargs):
        log_probs = torch.cat(
            [out for out in net.forward_iter(self.X, training=False, device="cpu")]
        )
        head_losses = np.asarray(net.history[-1, "batches", -1, "head_losses"])
        labels = log_probs[:, int(np.argmin(head_losses))].argmax(dim=1).numpy()
        accuracy = clustering_accuracy(self.y, labels)
        self.accuracies_.append(accuracy)
        elapsed = time.perf_counter() - self.start_
        print(
            f"  {self.label} epoch {len(net.history):3d}  accuracy {accuracy:.4f}  "
            f"loss {net.history[-1, 'train_loss']:.4f}  {elapsed:7.1f} s",
            flush=True,
        )


def _schedule_callbacks(schedule, epochs):
    """skorch callbacks of the learning-rate schedule: none, or cosine to 0."""
    if schedule == "constant":
        return []
    return [("schedule", LRScheduler(CosineAnnealingLR, T_max=epochs))]


def run_kmeans(X, y, seed):
    start = time.perf_counter()
    flat = X.reshape(len(X), -1)
    labels = KMeans(n_clusters=10, n_init=10, random_state=seed).fit_predict(flat)
    return clustering_accuracy(y, labels), time.perf_counter() - start


def run_deep(
    name,
    X,
    y,
    epochs,
    seed,
    device,
    lr,
    width=1.0,
    params=None,
    augment=None,
    schedule="constant",
):
    label = f"{name}[seed {seed}]"
    estimator = getattr(skentropy, name)(
        n_clusters=10,
        module=VGG4,
        module__width=width,
        augment=SelfAugmentation(**(augment or {})),
        max_iter=epochs,
        n_iter_no_change=epochs,
        random_state=seed,
        device=device,
        callbacks=[("accuracy", EpochAccuracy(X, y, label))]
        + _schedule_callbacks(schedule, epochs),
        **{**PROTOCOL, "lr": lr, **(params or {})},
    )
    start = time.perf_counter()
    estimator.fit(X)
    seconds = time.perf_counter() - start
    curve = dict(estimator.net_.callbacks_)["accuracy"].accuracies_
    return clustering_accuracy(y, estimator.labels_), curve, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="MNIST-5k, 5 epochs, EntropyClustering, one seed",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=list(DATASETS),
        default=None,
        help="default: all four; MNIST-5k with --cpu",
    )
    parser.add_argument(
        "--estimators",
        nargs="+",
        choices=ESTIMATORS,
        default=None,
        help="default: all six; Entropy and CollisionCE with --cpu",
    )
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=(
            "optimizer steps instead of --epochs: the epochs of each data set "
            "are ceil(steps × 250 / images) (3,000 with --cpu)"
        ),
    )
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--lr",
        type=float,
        default=PROTOCOL["lr"],
        help="Adam's learning rate (the protocol's: 1e-4)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help=(
            "the reduced protocol for 2 CPU cores: MNIST-5k (or --datasets), "
            "EntropyClustering and CollisionCEClustering, VGG4 at width 0.25, "
            "3,000 steps (150 epochs of MNIST-5k) at lr 1e-3, 2 threads"
        ),
    )
    parser.add_argument(
        "--width", type=float, default=1.0, help="VGG4's width multiplier"
    )
    parser.add_argument(
        "--params",
        type=json.loads,
        default={},
        help="JSON of other estimator parameters, e.g. '{\"n_heads\": 1}'",
    )
    parser.add_argument(
        "--schedule",
        choices=["constant", "cosine"],
        default=None,
        help=(
            "learning rate over the epochs: constant (the protocol's), or "
            "cosine annealing to 0 (--cpu's default)"
        ),
    )
    parser.add_argument(
        "--augment",
        type=json.loads,
        default={},
        help="JSON of SelfAugmentation fields, e.g. '{\"choose_one\": true}'",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice)",
    )
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.estimators = ["mnist5k"], ["EntropyClustering"]
        args.epochs, args.seeds = 5, 1
    if args.cpu:
        args.datasets = args.datasets or ["mnist5k"]
        args.estimators = args.estimators or [
            "EntropyClustering",
            "CollisionCEClustering",
        ]
        args.width, args.lr = 0.25, 1e-3
        args.steps = args.steps or 3000
        args.threads = args.threads or 2
        args.schedule = args.schedule or "cosine"
    args.schedule = args.schedule or "constant"
    args.datasets = args.datasets or list(DATASETS)
    args.estimators = args.estimators or ESTIMATORS
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {args.device}, CUDA available: {torch.cuda.is_available()}"
    )
    protocol = {**PROTOCOL, "lr": args.lr, **args.params}
    print(
        f"protocol: VGG4(width={args.width:g}), {protocol}, "
        f"{SelfAugmentation(**args.augment)}, {args.schedule} learning rate, "
        + (f"{args.steps} steps" if args.steps else f"{args.epochs} epochs")
    )

    rows = []
    for dataset in args.datasets:
        X, y = load_images(dataset)
        epochs = args.epochs
        if args.steps:
            batch_size = protocol["batch_size"]
            epochs = -(-args.steps * batch_size // len(X))
        print(
            f"\n{dataset}: {X.shape[0]} images of shape {X.shape[1:]}, {epochs} epochs",
            flush=True,
        )
        for seed in range(args.seeds):
            accuracy, seconds = run_kmeans(X, y, seed)
            print(
                f"  KMeans(n_init=10) on pixels [seed {seed}]: accuracy "
                f"{accuracy:.4f} ({seconds:.1f} s)",
                flush=True,
            )
            rows.append(
                (dataset, "KMeans(n_init=10), pixels", seed, accuracy, None, seconds)
            )
            for name in args.estimators:
                accuracy, curve, seconds = run_deep(
                    name,
                    X,
                    y,
                    epochs,
                    seed,
                    args.device,
                    args.lr,
                    width=args.width,
                    params=args.params,
                    augment=args.augment,
                    schedule=args.schedule,
                )
                rows.append((dataset, f"{name} + VGG4", seed, accuracy, curve, seconds))

    print(
        "\n| data | method | seed | final accuracy | best epoch (accuracy) | seconds |"
    )
    print("|---|---|---|---|---|---|")
    for dataset, method, seed, accuracy, curve, seconds in rows:
        best = (
            "" if curve is None else (f"{int(np.argmax(curve)) + 1} ({max(curve):.4f})")
        )
        print(
            f"| {dataset} | {method} | {seed} | {accuracy:.4f} | {best} "
            f"| {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
