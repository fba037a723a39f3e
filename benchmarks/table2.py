"""Every clusterer of skentropy on fixed features, in the papers' Table 2 layout.

Runs each skentropy estimator at its default parameters, scikit-learn's
``KMeans(n_init=10)`` and, when ``faiss`` is importable, faiss's k-means
(``faiss KMeans(nredo=10)``: 25 iterations, best of 10 restarts), on
fixed-feature files of ``../shared/data`` (default
``cifar10-test-effnetlite0.npz``, ``--files all`` for every
``*-effnetlite0.npz``; see that folder's README: EfficientNet-Lite0 features,
not the papers' ResNet-50 ones, so absolute figures are not comparable with
the papers') over several seeds, and prints a markdown table per file and
preprocessing: mean (std) Hungarian clustering accuracy, NMI and ARI, and the
mean fit seconds. The number of clusters is the number of classes in the file.

``--prep`` chooses the preprocessings, a comma-separated list of ``raw`` (the
features as stored, cast to float32), ``std`` (``StandardScaler``) and ``l2``
(rows scaled to unit L2 norm, ``sklearn.preprocessing.normalize``); each is
applied once per file, before all methods, so every method sees the same
input. When more than one (file, preprocessing) cell is run, a summary table
follows: the mean ACC and NMI of each method in each cell, their means over
the cells, and each method's mean ACC lead over ``KMeans(n_init=10)``.

``--n-neighbors K [K ...]`` adds, after each softmax estimator, a row
``Name(n_neighbors=K)`` for each K (neighbour views, see the user guide's
"Neighbour views on fixed features"), and prints for each cell the seconds of
mining the K nearest neighbours once (exact, blocked, in torch); a fit with
``n_neighbors`` mines them itself, so its fit seconds include that time.

The faiss row needs ``faiss-cpu`` (``pip install faiss-cpu``, or the
``bench`` extra); without it the row is skipped with a message. It keeps
faiss's defaults besides ``nredo``, so each restart trains on a random subset
of at most 256 points per cluster when the file has more (faiss's
``max_points_per_centroid``), and the labels are the nearest centroids of all
points.

The papers' Table 2 ranks, on fixed ResNet-50 features, the self-labeling
losses (reverse cross-entropy and collision cross-entropy with EM) above
MI-GD, and MI-GD above K-means. This script measures whether that ranking
holds on the given features.

Usage, from the repository root::

    .venv/bin/python benchmarks/table2.py
    .venv/bin/python benchmarks/table2.py --files all --seeds 3 \
        --only "KMeans(n_init=10)" EntropyClustering
    .venv/bin/python benchmarks/table2.py --files all --prep raw,std,l2 \
        --only "KMeans(n_init=10)" "faiss KMeans(nredo=10)" EntropyClustering
    .venv/bin/python benchmarks/table2.py --n-neighbors 5 10 20 50 \
        --only "KMeans(n_init=10)" EntropyClustering \
        "EntropyClustering(n_neighbors=20)"
    .venv/bin/python benchmarks/table2.py --files all --prep raw,std,l2 \
        --params '{"n_iter_no_change": 5}' --only EntropyClustering
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler, normalize

import skentropy
from skentropy._estimators._neighbors import nearest_neighbors
from skentropy.metrics import clustering_accuracy

try:
    import faiss
except ImportError:
    faiss = None

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KMEANS = "KMeans(n_init=10)"
FAISS = "faiss KMeans(nredo=10)"
FAISS_MISSING = (
    "faiss-cpu not installed: pip install faiss-cpu (or .[bench]); skipping its row"
)

# Name → (description, function of the float32 features).
PREPS = {
    "raw": ("as stored (float32)", lambda X: X),
    "std": ("standardized (StandardScaler)", StandardScaler().fit_transform),
    "l2": ("rows L2-normalized", normalize),
}


def add_json_options(parser, what="cells"):
    """``--json`` (save ``what`` as they are measured) and ``--summarize``
    (only summarize ``what`` saved by ``--json``): the options of the
    benchmarks that print a summary over cells."""
    parser.add_argument("--json", type=Path, help=f"save the {what} here")
    parser.add_argument(
        "--summarize",
        nargs="+",
        type=Path,
        help=f"only summarize {what} saved by --json",
    )


def saved_cells(paths):
    """The cells that ``--json`` saved in each of ``paths``, in order."""
    return [cell for path in paths for cell in json.loads(path.read_text())]


class FaissKMeans:
    """faiss's k-means behind the ``fit(X).labels_`` interface of the others.

    Parameters
    ----------
    n_clusters : int
        Number of centroids.
    random_state : int
        Seed of faiss's initialisations and subsampling.
    nredo : int, default=10
        Number of restarts; faiss keeps the centroids of the lowest objective.
    niter : int, default=25
        Lloyd iterations per restart (faiss's default).
    """

    def __init__(self, n_clusters, random_state, nredo=10, niter=25):
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.nredo = nredo
        self.niter = niter

    def fit(self, X):
        """Train on a C-contiguous float32 copy of X; label by nearest centroid."""
        X = np.array(X, dtype=np.float32, order="C")
        kmeans = faiss.Kmeans(
            X.shape[1],
            self.n_clusters,
            niter=self.niter,
            nredo=self.nredo,
            seed=self.random_state,
            verbose=False,
        )
        kmeans.train(X)
        _, nearest = kmeans.index.search(X, 1)
        self.labels_ = nearest.ravel()
        return self


def methods(n_clusters, n_neighbors=(), params=None):
    """Name → factory(seed) of every clusterer compared, KMeans first.

    The faiss row follows KMeans when ``faiss`` is importable; each estimator
    that takes ``n_neighbors`` is followed by a row per value in
    ``n_neighbors``. ``params`` (a dict) are set on every skentropy
    estimator that has them.
    """
    factories = {KMEANS: lambda seed: KMeans(n_clusters, n_init=10, random_state=seed)}
    if faiss is not None:
        factories[FAISS] = lambda seed: FaissKMeans(n_clusters, random_state=seed)
    for name in skentropy.__all__:
        estimator = getattr(skentropy, name)
        if isinstance(estimator, type) and name.endswith("Clustering"):
            known = estimator().get_params()
            extra = {
                key: value for key, value in (params or {}).items() if key in known
            }
            factories[name] = lambda seed, estimator=estimator, extra=extra: estimator(
                n_clusters, random_state=seed, **extra
            )
            if "n_neighbors" not in estimator().get_params():
                continue
            for k in n_neighbors:
                factories[f"{name}(n_neighbors={k})"] = (
                    lambda seed, estimator=estimator, k=k, extra=extra: estimator(
                        n_clusters, **{**extra, "n_neighbors": k}, random_state=seed
                    )
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
        "--prep",
        metavar="LIST",
        help="comma-separated preprocessings, each of "
        f"{', '.join(PREPS)} (default raw); one table per file and preprocessing",
    )
    parser.add_argument(
        "--standardize",
        action="store_true",
        help="same as --prep std (added to --prep when both are given)",
    )
    parser.add_argument(
        "--n-neighbors",
        type=int,
        nargs="+",
        default=[],
        metavar="K",
        help="add a row Name(n_neighbors=K) after each softmax estimator",
    )
    parser.add_argument("--threads", type=int, help="torch and faiss threads")
    parser.add_argument(
        "--params",
        type=json.loads,
        default={},
        metavar="JSON",
        help="parameters of every skentropy estimator that has them, e.g. "
        "'{\"n_iter_no_change\": 5}'",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help=f"run only these methods, e.g. '{KMEANS}' '{FAISS}' EntropyClustering",
    )
    args = parser.parse_args(argv)

    preps = args.prep.split(",") if args.prep else []
    preps = [prep.strip() for prep in preps if prep.strip()]
    unknown = [prep for prep in preps if prep not in PREPS]
    if unknown:
        parser.error(f"unknown --prep {unknown}; choose among {list(PREPS)}")
    if args.standardize and "std" not in preps:
        preps.append("std")
    args.preps = list(dict.fromkeys(preps or ["raw"]))

    known = set(methods(2, args.n_neighbors)) | {FAISS}
    unknown = [name for name in args.only or () if name not in known]
    if unknown:
        parser.error(f"unknown --only {unknown}; choose among {sorted(known)}")
    if faiss is None and (not args.only or FAISS in args.only):
        print(FAISS_MISSING)

    if args.threads:
        torch.set_num_threads(args.threads)
        if faiss is not None:
            faiss.omp_set_num_threads(args.threads)
    if args.files == ["all"]:
        paths = sorted(args.data_dir.glob("*-effnetlite0.npz"))
    else:
        paths = [args.data_dir / name for name in args.files]
    for path in paths:
        if not path.exists():
            parser.error(f"{path} not found (see ../shared/data/README.md)")
    cells = {}
    for path in paths:
        cells.update(run_file(path, args))
    if len(cells) > 1:
        print_summary(cells)


def run_file(path, args):
    """Print the table of each preprocessing of one feature file.

    Returns
    -------
    dict
        ``"<file stem> (<prep>)"`` → {method name → (mean ACC, mean NMI)}.
    """
    data = np.load(path)
    X_raw, y = data["X"].astype(np.float32), data["y"]
    n_clusters = len(np.unique(y))
    cells = {}
    for prep in args.preps:
        description, transform = PREPS[prep]
        X = np.asarray(transform(X_raw), dtype=np.float32)
        print(f"\n### {path.name}, prep {prep}")
        print(
            f"\n{X.shape[0]} × {X.shape[1]} features {description}, "
            f"{n_clusters} clusters, default parameters, "
            f"seeds 0..{args.seeds - 1}, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads\n"
        )
        for k in args.n_neighbors:
            start = time.perf_counter()
            nearest_neighbors(X, k)
            print(
                f"mining the {k} nearest neighbours: "
                f"{time.perf_counter() - start:.2f} s"
            )
        print("| method | ACC mean (std) | NMI | ARI | fit s |")
        print("| --- | --- | --- | --- | --- |")
        scores_of = {}
        for name, make_estimator in methods(
            n_clusters, args.n_neighbors, args.params
        ).items():
            if args.only and name not in args.only:
                continue
            scores = evaluate(make_estimator, X, y, range(args.seeds))
            mean, std = scores.mean(axis=0), scores.std(axis=0)
            scores_of[name] = (mean[0], mean[1])
            print(
                f"| {name} | {mean[0]:.3f} ({std[0]:.3f}) "
                f"| {mean[1]:.3f} ({std[1]:.3f}) | {mean[2]:.3f} ({std[2]:.3f}) "
                f"| {mean[3]:.1f} |",
                flush=True,
            )
        cells[f"{path.stem} ({prep})"] = scores_of
    return cells


def print_summary(cells):
    """Print mean ACC / NMI per cell and method, their means, leads over KMeans.

    Parameters
    ----------
    cells : dict
        ``"<file stem> (<prep>)"`` → {method name → (mean ACC, mean NMI)}, as
        returned by :func:`run_file`.
    """
    names = list(dict.fromkeys(name for cell in cells.values() for name in cell))
    print(f"\n### Summary over {len(cells)} cells (mean ACC / NMI over seeds)\n")
    print("| cell | " + " | ".join(f"{name} ACC / NMI" for name in names) + " |")
    print("| --- " * (len(names) + 1) + "|")

    def pair(scores):
        return "–" if scores is None else f"{scores[0]:.3f} / {scores[1]:.3f}"

    for label, cell in cells.items():
        row = " | ".join(pair(cell.get(name)) for name in names)
        print(f"| {label} | {row} |")
    means = {
        name: np.mean([cell[name] for cell in cells.values() if name in cell], 0)
        for name in names
    }
    print("| mean | " + " | ".join(pair(means[name]) for name in names) + " |\n")

    for name in names:
        line = f"- {name}: mean over cells: ACC {means[name][0]:.3f}, "
        line += f"NMI {means[name][1]:.3f}"
        shared = [
            (label, cell[name], cell[KMEANS])
            for label, cell in cells.items()
            if name in cell and KMEANS in cell
        ]
        if name == KMEANS:
            pass
        elif shared:
            lead = 100 * np.mean([ours[0] - base[0] for _, ours, base in shared])
            below = [
                label
                for label, ours, base in shared
                if ours[0] < base[0] or ours[1] < base[1]
            ]
            line += (
                f", ACC lead over {KMEANS} {lead:+.1f} points; "
                f"cells where ACC or NMI < {KMEANS}: [{', '.join(below)}]"
            )
        else:
            line += f"; {KMEANS} not run, no lead"
        print(line)


if __name__ == "__main__":
    main()
