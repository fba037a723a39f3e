"""Every clusterer of skentropy on fixed features, in the papers' Table 2 layout.

Runs each skentropy estimator at its default parameters, and scikit-learn's
``KMeans(n_init=10)``, on fixed-feature files of ``../shared/data`` (default
``cifar10-test-effnetlite0.npz``, ``--files all`` for every
``*-effnetlite0.npz``; see that folder's README: EfficientNet-Lite0 features,
not the papers' ResNet-50 ones, so absolute figures are not comparable with
the papers') over several seeds, and prints a markdown table per file:
mean (std) Hungarian clustering accuracy, NMI and ARI, and the mean fit
seconds. The number of clusters is the number of classes in the file.

The papers' Table 2 ranks, on fixed ResNet-50 features, the self-labeling
losses (reverse cross-entropy and collision cross-entropy with EM) above
MI-GD, and MI-GD above K-means. This script measures whether that ranking
holds on the given features.

Usage, from the repository root::

    .venv/bin/python benchmarks/table2.py
    .venv/bin/python benchmarks/table2.py --files all --seeds 3 \
        --only "KMeans(n_init=10)" EntropyClustering
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler

import skentropy
from skentropy.metrics import clustering_accuracy

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def methods(n_clusters):
    """Name → factory(seed) of every clusterer compared, KMeans first."""
    factories = {
        "KMeans(n_init=10)": lambda seed: KMeans(
            n_clusters, n_init=10, random_state=seed
        )
    }
    for name in skentropy.__all__:
        estimator = getattr(skentropy, name)
        if isinstance(estimator, type) and name.endswith("Clustering"):
            factories[name] = lambda seed, estimator=estimator: estimator(
                n_clusters, random_state=seed
            )
    return factories


def evaluate(make_estimator, X, y, seeds):
    """(accuracy, NMI, ARI, fit seconds) of one method, one row per seed."""
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
                adjusted_rand_score(y, labels),
                seconds,
            )
        )
    return np.array(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files",
        nargs="+",
        default=["cifar10-test-effnetlite0.npz"],
        help="feature file names in --data-dir, or 'all'",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--seeds", type=int, default=6, metavar="N", help="random_state 0..N-1"
    )
    parser.add_argument(
        "--standardize", action="store_true", help="apply StandardScaler first"
    )
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these methods"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.files == ["all"]:
        paths = sorted(args.data_dir.glob("*-effnetlite0.npz"))
    else:
        paths = [args.data_dir / name for name in args.files]
    for path in paths:
        if not path.exists():
            parser.error(f"{path} not found (see ../shared/data/README.md)")
        run_file(path, args)


def run_file(path, args):
    """Print the table of one feature file."""
    data = np.load(path)
    X, y = data["X"].astype(np.float32), data["y"]
    if args.standardize:
        X = StandardScaler().fit_transform(X)
    n_clusters = len(np.unique(y))

    scaling = "standardized" if args.standardize else "as stored (float32)"
    print(
        f"\n{path.name}: {X.shape[0]} × {X.shape[1]} features {scaling}, "
        f"{n_clusters} clusters, default parameters, seeds 0..{args.seeds - 1}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads\n"
    )
    print("| method | ACC mean (std) | NMI | ARI | fit s |")
    print("| --- | --- | --- | --- | --- |")
    for name, make_estimator in methods(n_clusters).items():
        if args.only and name not in args.only:
            continue
        scores = evaluate(make_estimator, X, y, range(args.seeds))
        mean, std = scores.mean(axis=0), scores.std(axis=0)
        print(
            f"| {name} | {mean[0]:.3f} ({std[0]:.3f}) "
            f"| {mean[1]:.3f} ({std[1]:.3f}) | {mean[2]:.3f} ({std[2]:.3f}) "
            f"| {mean[3]:.1f} |",
            flush=True,
        )

if __name__ == "__main__":
    main()
