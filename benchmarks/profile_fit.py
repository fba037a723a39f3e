"""Where the time of a default fit goes, by part of the training step.

Profiles (``cProfile``, one torch thread) one ``fit`` of each estimator with
its defaults, and with ``n_heads=1``, on fixed features, and splits its time
into:

- **pseudo-labels**: the pseudo-label solves (``reverse_ce_labels``,
  ``collision_ce_labels``, SeLa's ``sinkhorn_labels``, MI-ADM's
  ``forward_kl_labels``), once per head and mini-batch;
- **loss terms**: the rest of each head's loss on a batch (cross-entropies,
  fairness, margin, the prior's estimate), without the pseudo-labels;
- **head forward**: the heads' logits and log-softmax on the batch;
- **backward**: autograd through all of it;
- **optimizer step**: Adam's (or SGD's) update;
- **seeding**: the k-means++ start of the heads;
- **other**: the rest (batching, the epoch loop, the final predictions).

``--params`` sets other parameters (JSON) of every fit. Each line gives the
fit's seconds (profiled, so slower than unprofiled by about a third; one-time
costs of the process are paid by a small fit first), its epochs and
optimizer steps, the seconds per step, and the shares of the parts. Data:
standardized digits (1797 × 64) by default, or a feature file of
``../shared/data`` (``--file``, as stored, first ``--rows`` rows).

Usage, from the repository root::

    .venv/bin/python benchmarks/profile_fit.py
    .venv/bin/python benchmarks/profile_fit.py --file cifar10-test-effnetlite0.npz
"""

import argparse
import cProfile
import json
import pstats
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

import skentropy

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ESTIMATORS = [
    "EntropyClustering",
    "CollisionCEClustering",
    "MaxMarginEntropyClustering",
]
# (part, module path suffix, function name): a part's time is the summed
# cumulative time of its functions (none of them calls another of its part).
PARTS = [
    ("pseudo-labels", "pseudo_labels/_api.py", "reverse_ce_labels"),
    ("pseudo-labels", "pseudo_labels/_api.py", "collision_ce_labels"),
    ("pseudo-labels", "pseudo_labels/_sinkhorn.py", "sinkhorn_labels"),
    ("pseudo-labels", "pseudo_labels/_forward_kl.py", "forward_kl_labels"),
    ("loss terms", "_estimators/_training.py", "stacked"),
    ("head forward", "_estimators/_shallow.py", "_view_log_probs"),
    ("backward", "torch/_tensor.py", "backward"),
    ("optimizer step", "_estimators/_optim.py", "step"),
    ("seeding", "_estimators/_seeding.py", "seed_heads"),
]
ORDER = [
    "pseudo-labels",
    "loss terms",
    "head forward",
    "backward",
    "optimizer step",
    "seeding",
    "other",
]


def load(args):
    """The features to fit and a description of them."""
    if args.file is None:
        X, _ = load_digits(return_X_y=True)
        return StandardScaler().fit_transform(X), "digits (standardized)"
    path = args.data_dir / args.file
    if not path.exists():
        raise SystemExit(f"{path} not found (see ../shared/data/README.md)")
    with np.load(path) as data:
        X = data["X"][: args.rows]
    return X, f"{args.file} (as stored)"


def parts_of(profile, total):
    """Seconds of each part of a profiled fit (``other``: the rest)."""
    stats = pstats.Stats(profile).stats
    seconds = dict.fromkeys(ORDER, 0.0)
    for (filename, _, function), (_, _, _, cumulative, _) in stats.items():
        for part, suffix, name in PARTS:
            if function == name and filename.replace("\\", "/").endswith(suffix):
                seconds[part] += cumulative
    # the loss terms' time includes the pseudo-label solves they call
    seconds["loss terms"] -= seconds["pseudo-labels"]
    seconds["other"] = total - sum(seconds.values())
    return seconds


def profile_fit(name, X, **params):
    """Seconds of one profiled fit, its parts, epochs and steps."""
    estimator = getattr(skentropy, name)(n_clusters=10, random_state=0, **params)
    profile = cProfile.Profile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # one-time costs of a process (lazy imports, first calls) are paid
        # by a small fit first
        getattr(skentropy, name)(n_clusters=10, max_iter=1).fit(X[:200])
        start = time.perf_counter()
        profile.enable()
        estimator.fit(X)
        profile.disable()
        total = time.perf_counter() - start
    return total, parts_of(profile, total), estimator.n_iter_, estimator.n_steps_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="a feature file of --data-dir")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--only", nargs="+", default=ESTIMATORS)
    parser.add_argument(
        "--params", type=json.loads, default={}, help="JSON of parameters to set"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X, description = load(args)
    print(
        f"{description}: {X.shape[0]} × {X.shape[1]} {X.dtype}, 10 clusters, "
        f"one torch thread, torch {torch.__version__}\n"
    )
    header = ["fit", "s", "epochs", "steps", "ms/step", *ORDER]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.only:
        for params in ({}, {"n_heads": 1}):
            total, seconds, epochs, steps = profile_fit(
                name, X, **{**args.params, **params}
            )
            label = name + ("(n_heads=1)" if params else "")
            shares = [f"{seconds[part] / total:.0%}" for part in ORDER]
            row = [
                label,
                f"{total:.2f}",
                str(epochs),
                str(steps),
                f"{1000 * total / steps:.2f}",
                *shares,
            ]
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
