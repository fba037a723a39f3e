"""Adam's step on fixed features: fixed ``lr`` values next to ``lr="auto"``.

``lr="auto"`` steps by 0.01 · √(1280 / d), at most 0.04, on d features (see
``skentropy._estimators._training.learning_rate``). The 1,280-d feature files
keep 0.01, so this benchmark measures inputs of other dimensions: scikit-learn's
digits (64 features) and the ``*-effnetlite0.npz`` feature files of
``../shared/data`` reduced to their first k principal components. An input is
named ``SOURCE[:k]/PREP``: SOURCE is ``digits`` or a feature file's stem
before ``-effnetlite0`` (e.g. ``usps``), k the number of principal components
(PCA fitted with ``random_state=0``; none: all features), PREP ``raw``,
``std`` (``StandardScaler``) or ``l2`` (rows at unit norm), applied after the
PCA.

For each input and seed s, ``KMeans(n_init=10, random_state=s)`` and each
estimator with each ``--lrs`` value (``random_state=s``, defaults otherwise)
are fitted on one thread (``--params``: other parameters, JSON); one row
per input and method gives the mean over seeds of ACC / NMI, epochs
(``n_iter_``), CPU seconds of the fit (after an untimed first fit, which
pays the one-time costs of the process) and the fewest clusters used. A summary
compares every ``--lrs`` value with the first one: mean change of ACC and
NMI over the (input, estimator) pairs, pairs within half a point of ACC or
better, median ratio of CPU time.

Usage, from the repository root::

    .venv/bin/python benchmarks/learning_rate.py --inputs digits/std \
        digits/raw mnist5k:64/std cifar10-test:32/std --seeds 0 1 2
    .venv/bin/python benchmarks/learning_rate.py --summarize a.json b.json
"""

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from long_tail import ESTIMATORS, KMEANS
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score
from table2 import DATA_DIR, PREPS, add_json_options, saved_cells

import skentropy
from skentropy.metrics import clustering_accuracy


def load_input(name, data_dir):
    """(X, y) of an input named ``SOURCE[:k]/PREP`` (see the module docstring)."""
    source, _, prep = name.partition("/")
    source, _, components = source.partition(":")
    if source == "digits":
        X, y = load_digits(return_X_y=True)
    else:
        data = np.load(Path(data_dir) / f"{source}-effnetlite0.npz")
        X, y = data["X"], data["y"]
    X = X.astype(np.float32)
    if components:
        X = PCA(int(components), random_state=0).fit_transform(X)
    return np.ascontiguousarray(PREPS[prep or "raw"][1](X), dtype=np.float32), y


def fit_scores(estimator, X, y):
    """[ACC, NMI, clusters used, epochs, CPU seconds] of one fit."""
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = estimator.fit(X).labels_
    seconds = time.process_time() - start
    return [
        clustering_accuracy(y, labels),
        normalized_mutual_info_score(y, labels),
        len(np.unique(labels)),
        getattr(estimator, "n_iter_", 0),
        seconds,
    ]


def run_input(name, args):
    """Every method on one input, over the seeds; print and return its rows."""
    X, y = load_input(name, args.data_dir)
    n_clusters = len(np.unique(y))
    methods = {KMEANS: lambda s: KMeans(n_clusters, n_init=10, random_state=s)}
    for estimator_name in args.estimators:
        for lr in args.lrs:
            value = lr if lr == "auto" else float(lr)
            methods[f"{estimator_name}/{lr}"] = lambda s, e=estimator_name, v=value: (
                getattr(skentropy, e)(n_clusters, lr=v, random_state=s, **args.params)
            )
    rows = {}
    print(f"\n### {name}: {X.shape[0]} × {X.shape[1]}, seeds {args.seeds}\n")
    print(
        "| method | ACC / NMI | epochs (K-means: iterations) | CPU s | clusters used |"
    )
    print("| --- | --- | --- | --- | --- |")
    for method, make in methods.items():
        fits = np.array([fit_scores(make(s), X, y) for s in args.seeds])
        acc, nmi, _, epochs, seconds = fits.mean(axis=0)
        rows[method] = [acc, nmi, int(fits[:, 2].min()), epochs, seconds]
        print(
            f"| {method} | {acc:.3f} / {nmi:.3f} | {epochs:.0f} | {seconds:.2f} "
            f"| {int(fits[:, 2].min())} |",
            flush=True,
        )
    return {"name": name, "d": X.shape[1], "seeds": args.seeds, "rows": rows}


def summarize(cells):
    """Each lr next to the first one, over the (input, estimator) pairs."""
    methods = [m for m in cells[0]["rows"] if m != KMEANS]
    lrs = list(dict.fromkeys(m.rsplit("/", 1)[1] for m in methods))
    estimators = list(dict.fromkeys(m.rsplit("/", 1)[0] for m in methods))
    print(f"\nsummary over {len(cells)} inputs, against lr={lrs[0]}:")
    for lr in lrs[1:]:
        acc, nmi, ratio = [], [], []
        for cell in cells:
            for estimator in estimators:
                base = cell["rows"].get(f"{estimator}/{lrs[0]}")
                new = cell["rows"].get(f"{estimator}/{lr}")
                if base and new:
                    acc.append(new[0] - base[0])
                    nmi.append(new[1] - base[1])
                    ratio.append(new[4] / base[4])
        print(
            f"lr={lr}: {len(acc)} pairs, mean ΔACC {100 * statistics.mean(acc):+.1f}"
            f" points, mean ΔNMI {100 * statistics.mean(nmi):+.1f} points, "
            f"{sum(a >= -0.005 for a in acc)} pairs within -0.5 point of ACC or "
            f"better, median CPU time ratio {statistics.median(ratio):.2f}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", nargs="+", default=["digits/std"])
    parser.add_argument("--lrs", nargs="+", default=["0.01", "auto"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    parser.add_argument(
        "--params", default="{}", help="JSON of other parameters of the estimators"
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    add_json_options(parser, "inputs' rows")
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(saved_cells(args.summarize))
        return
    args.params = json.loads(args.params)
    torch.set_num_threads(1)
    # the first fit of a process pays its one-time costs: not timed
    fit_scores(skentropy.EntropyClustering(2, max_iter=1), *load_input("digits", None))
    cells = []
    for name in args.inputs:
        cells.append(run_input(name, args))
        if args.json:
            args.json.write_text(json.dumps(cells, indent=1))
    summarize(cells)


if __name__ == "__main__":
    main()
