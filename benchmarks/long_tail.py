"""Clusters of unequal size: the estimators next to K-means on long-tailed data.

Builds long-tailed versions of the ``*-effnetlite0.npz`` feature files of
``../shared/data`` as CIFAR-10-LT is built: the K classes, in an order drawn
at random per seed, keep n_c = n_max · r^(−c/(K−1)) rows each (c = 0 … K−1,
n_max the size of the smallest class of the file, rows drawn at random), so
that the largest class is r times the smallest (``--ratios``, default 10 and
100; ratio 1 means the whole file as stored, its own class sizes). Each
subset is then prepared (``--prep``: ``raw``, ``std``, ``l2`` as in
``table2.py``) and clustered by ``KMeans(n_init=10)`` and the skentropy
estimators (``--estimators``, default the three main ones, with their
defaults plus ``--params``, a JSON dict, e.g. ``'{"prior": null}'``) on the
same rows, one fit per seed (seed s: subset s, ``random_state=s``).
``--digits`` adds scikit-learn's digits (``--files none --digits``: digits
only, no file needed).

Prints one row per cell (file, preparation, ratio): mean ACC / NMI over the
seeds of each method, the fewest clusters any fit used when some are empty,
and, for a fitted ``prior_``, the largest error of the estimated proportions
(each cluster matched to a class by the Hungarian matching of the accuracy).
A summary follows: per estimator, the cells where its ACC and its NMI are
both at least K-means' minus one point, the cells where a fit left a cluster
empty, and the means over the cells.

Usage, from the repository root::

    .venv/bin/python benchmarks/long_tail.py --threads 1
    .venv/bin/python benchmarks/long_tail.py --files usps-effnetlite0.npz \
        --prep l2 --ratios 1 10 --seeds 0 --params '{"prior": null}'
    .venv/bin/python benchmarks/long_tail.py --summarize a.json b.json
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.metrics import confusion_matrix, normalized_mutual_info_score
from table2 import DATA_DIR, PREPS, add_json_options, saved_cells

import skentropy
from skentropy.metrics import clustering_accuracy

ESTIMATORS = (
    "EntropyClustering",
    "CollisionCEClustering",
    "MaxMarginEntropyClustering",
)
KMEANS = "KMeans(n_init=10)"


def long_tailed(y, ratio, seed):
    """Row indices of a long-tailed subset of the labels y (ratio 1: all rows).

    Class number c of a random order (drawn from ``seed``) keeps
    n_max · ratio^(−c/(K−1)) of its rows, n_max the size of the smallest
    class, drawn at random; the rows come back shuffled.
    """
    rng = np.random.default_rng(seed)
    if ratio == 1:
        return rng.permutation(len(y))
    classes, counts = np.unique(y, return_counts=True)
    n_classes, n_max = len(classes), counts.min()
    rows = []
    for rank, label in enumerate(rng.permutation(classes)):
        size = max(1, int(round(n_max * ratio ** (-rank / (n_classes - 1)))))
        rows.append(rng.choice(np.flatnonzero(y == label), size, replace=False))
    return rng.permutation(np.concatenate(rows))


def prior_error(y, labels, prior):
    """Largest |u_k − share of class k| with clusters matched to classes."""
    classes = np.unique(y)
    shares = np.array([np.mean(y == c) for c in classes])
    matrix = confusion_matrix(
        y, labels, labels=np.arange(max(len(classes), len(prior)))
    )
    rows, cols = linear_sum_assignment(-matrix[: len(classes)])
    return float(np.max(np.abs(prior[cols] - shares[rows])))


def fit_scores(model, X, y):
    """ACC, NMI, clusters used, prior error (or NaN) and seconds of one fit."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    seconds = time.perf_counter() - start
    labels = model.labels_
    prior = getattr(model, "prior_", None)
    return (
        clustering_accuracy(y, labels),
        normalized_mutual_info_score(y, labels),
        len(np.unique(labels)),
        np.nan if prior is None else prior_error(y, labels, np.asarray(prior)),
        seconds,
    )


def run_cell(name, X, y, ratio, args):
    """Every method on the long-tailed subsets of one (file, preparation)."""
    fits = {KMEANS: []}
    fits.update({e: [] for e in args.estimators})
    n_clusters = len(np.unique(y))
    for seed in args.seeds:
        rows = long_tailed(y, ratio, seed)
        X_cell = np.ascontiguousarray(PREPS[args.prep_of[name]][1](X[rows]))
        y_cell = y[rows]
        fits[KMEANS].append(
            fit_scores(KMeans(n_clusters, n_init=10, random_state=seed), X_cell, y_cell)
        )
        for estimator_name in args.estimators:
            estimator = getattr(skentropy, estimator_name)
            fits[estimator_name].append(
                fit_scores(
                    estimator(n_clusters=n_clusters, random_state=seed, **args.params),
                    X_cell,
                    y_cell,
                )
            )
    return {
        "name": f"{name} r={ratio:g}",
        "rows": len(rows),
        "methods": {
            method: {
                "acc": float(np.mean([f[0] for f in runs])),
                "nmi": float(np.mean([f[1] for f in runs])),
                "used": int(min(f[2] for f in runs)),
                "prior_error": float(np.mean([f[3] for f in runs])),
                "seconds": float(np.mean([f[4] for f in runs])),
            }
            for method, runs in fits.items()
        },
    }


def entry(result, n_clusters=10):
    """One table entry: ACC / NMI, clusters used if not all, prior error."""
    text = f"{result['acc']:.3f} / {result['nmi']:.3f}"
    if result["used"] < n_clusters:
        text += f" ({result['used']} used)"
    if np.isfinite(result["prior_error"]):
        text += f" [±{result['prior_error']:.3f}]"
    return text


def print_row(cell, methods):
    print(
        f"| {cell['name']} | {cell['rows']} | "
        + " | ".join(
            entry(cell["methods"][m]) if m in cell["methods"] else "–" for m in methods
        )
        + " |",
        flush=True,
    )


def header(methods):
    print("| cell | rows | " + " | ".join(methods) + " |")
    print("| --- " * (len(methods) + 2) + "|", flush=True)


def summarize(cells):
    """Cells within one point of K-means, collapses and means per method."""
    methods = list(dict.fromkeys(m for c in cells for m in c["methods"]))
    print(f"\n### Summary over {len(cells)} cells\n")
    print(
        "| method | ACC and NMI ≥ K-means − 1 pt | cells with an empty "
        "cluster | mean ACC / NMI | mean prior error | mean fit s |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for method in methods:
        mine = [c for c in cells if method in c["methods"]]
        close = [
            c["name"]
            for c in mine
            if c["methods"][method]["acc"] >= c["methods"][KMEANS]["acc"] - 0.01
            and c["methods"][method]["nmi"] >= c["methods"][KMEANS]["nmi"] - 0.01
        ]
        empty = [c["name"] for c in mine if c["methods"][method]["used"] < 10]
        errors = [c["methods"][method]["prior_error"] for c in mine]
        errors = [e for e in errors if np.isfinite(e)]
        missed = sorted(set(c["name"] for c in mine) - set(close))
        print(
            f"| {method} | {len(close)}/{len(mine)}"
            + (f" (not: {', '.join(missed)})" if method != KMEANS and missed else "")
            + f" | {len(empty)}"
            + (f" ({', '.join(empty)})" if empty else "")
            + f" | {np.mean([c['methods'][method]['acc'] for c in mine]):.3f} / "
            f"{np.mean([c['methods'][method]['nmi'] for c in mine]):.3f} | "
            + (f"{np.mean(errors):.3f}" if errors else "–")
            + f" | {np.mean([c['methods'][method]['seconds'] for c in mine]):.1f} |"
        )


def sources(args):
    """(name, X, y) of every data set asked for: feature files, digits."""
    files = []
    if args.files == ["all"]:
        files = sorted(args.data_dir.glob("*-effnetlite0.npz"))
        if not files:
            raise SystemExit(f"no *-effnetlite0.npz feature files in {args.data_dir}")
    elif args.files != ["none"]:
        files = [args.data_dir / f for f in args.files]
    for path in files:
        if not path.exists():
            raise SystemExit(f"feature file not found: {path}")
        data = np.load(path)
        yield path.stem.split("-effnet")[0], data["X"].astype(np.float32), data["y"]
    if args.digits:
        X, y = load_digits(return_X_y=True)
        yield "digits", X.astype(np.float32), y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files",
        nargs="+",
        default=["all"],
        help="feature files in --data-dir, all, or none",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--digits",
        action="store_true",
        help="also scikit-learn's digits (embedded, 64 pixels)",
    )
    parser.add_argument("--prep", default="raw,std,l2")
    parser.add_argument("--ratios", nargs="+", type=float, default=[10, 100])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    parser.add_argument(
        "--params",
        type=json.loads,
        default={},
        help="JSON dict of parameters for every estimator",
    )
    parser.add_argument("--threads", type=int, default=1)
    add_json_options(parser)
    args = parser.parse_args(argv)
    if args.summarize:
        cells = saved_cells(args.summarize)
        methods = list(dict.fromkeys(m for c in cells for m in c["methods"]))
        header(methods)
        for cell in cells:
            print_row(cell, methods)
        summarize(cells)
        return
    torch.set_num_threads(args.threads)
    print(f"seeds {args.seeds}, params {args.params}, ratios {args.ratios}\n")
    methods = [KMEANS, *args.estimators]
    header(methods)
    cells, args.prep_of = [], {}
    for stem, X, y in sources(args):
        for prep in args.prep.split(","):
            name = f"{stem} ({prep})"
            args.prep_of[name] = prep
            for ratio in args.ratios:
                cells.append(run_cell(name, X, y, ratio, args))
                print_row(cells[-1], methods)
                if args.json:
                    args.json.write_text(json.dumps(cells, indent=1))
    summarize(cells)


if __name__ == "__main__":
    main()
