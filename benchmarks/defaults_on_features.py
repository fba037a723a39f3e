"""Default parameters of the skentropy clusterers on fixed image features.

Clusters each ``*-effnetlite0.npz`` feature file of ``../shared/data`` (see its
README: EfficientNet-Lite0 features, 1280-d, 10 classes) into 10 clusters with
every skentropy estimator at its default parameters and with
``KMeans(n_init=10)``, the same seeds for all. Prints a markdown table with the
Hungarian clustering accuracy and NMI (mean ± std over the seeds) and the mean
time of a ``fit``. The features are cast from float16 to float32 and used as
stored; ``--standardize`` applies ``StandardScaler`` first.

Usage, from the repository root::

    .venv/bin/python benchmarks/defaults_on_features.py
    .venv/bin/python benchmarks/defaults_on_features.py --seeds 5 --standardize
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler

from skentropy import (
    CollisionCEClustering,
    EntropyClustering,
    MaxMarginEntropyClustering,
)
from skentropy.metrics import clustering_accuracy

N_CLUSTERS = 10
METHODS = {
    "KMeans(n_init=10)": lambda seed: KMeans(N_CLUSTERS, n_init=10, random_state=seed),
    "EntropyClustering": lambda seed: EntropyClustering(N_CLUSTERS, random_state=seed),
    "CollisionCEClustering": lambda seed: CollisionCEClustering(
        N_CLUSTERS, random_state=seed
    ),
    "MaxMarginEntropyClustering": lambda seed: MaxMarginEntropyClustering(
        N_CLUSTERS, random_state=seed
    ),
}


def load_features(path, standardize):
    """Features as float32 (optionally standardized) and class labels."""
    data = np.load(path)
    X = data["X"].astype(np.float32)
    if standardize:
        X = StandardScaler().fit_transform(X)
    return X, data["y"]


def evaluate(make_estimator, X, y, seeds):
    """Accuracy, NMI and fit seconds of one method, one row per seed."""
    rows = []
    for seed in seeds:
        estimator = make_estimator(seed)
        start = time.perf_counter()
        labels = estimator.fit(X).labels_
        seconds = time.perf_counter() - start
        rows.append(
            (
                clustering_accuracy(y, labels),
                normalized_mutual_info_score(y, labels),
                seconds,
            )
        )
    return np.array(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(__file__).resolve().parents[1].parent / "shared" / "data",
        help="folder of the *-effnetlite0.npz files (default: ../shared/data)",
    )
    parser.add_argument(
        "--seeds", type=int, default=3, metavar="N", help="random_state 0..N-1"
    )
    parser.add_argument(
        "--standardize", action="store_true", help="apply StandardScaler first"
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's default)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = sorted(args.data_dir.glob("*-effnetlite0.npz"))
    if not paths:
        parser.error(f"no *-effnetlite0.npz file in {args.data_dir}")

    scaling = "standardized" if args.standardize else "as stored (float32)"
    print(f"features {scaling}; {N_CLUSTERS} clusters; seeds 0..{args.seeds - 1}\n")
    print("| file | method | ACC | NMI | fit s |")
    print("| --- | --- | --- | --- | --- |")
    for path in paths:
        X, y = load_features(path, args.standardize)
        name = path.name.removesuffix("-effnetlite0.npz")
        for method, make_estimator in METHODS.items():
            scores = evaluate(make_estimator, X, y, range(args.seeds))
            accuracy, nmi, seconds = scores.mean(axis=0)
            accuracy_std, nmi_std, _ = scores.std(axis=0)
            print(
                f"| {name} | {method} | {accuracy:.3f} ± {accuracy_std:.3f} "
                f"| {nmi:.3f} ± {nmi_std:.3f} | {seconds:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
