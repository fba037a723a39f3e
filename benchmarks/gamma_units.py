"""Clustering quality against the margin weight γ, and the unit γ is given in.

For each input cell (a feature file of ``../shared/data`` under a
preprocessing, optionally PCA-reduced, and scikit-learn's digits), prints
the mean Hungarian accuracy (ACC), NMI and the fewest clusters used over the
seeds, for each estimator and each γ of ``--gammas``, next to
``KMeans(n_init=10)`` on the same input.

γ is given in the library's unit: the margin term is γ‖v‖² on the weights v
of the rows centered and scaled to a mean squared norm of 100 (see the user
guide's "Choosing gamma"). The summary compares candidate units by where
the best γ of each cell, and the smallest γ that empties a cluster, land
when the same fits are expressed in them (γ' = γ · factor of the cell):

- ``reference-norm`` (the library's): factor 1;
- ``rms-norm`` (the unit before it: rows of unit mean squared norm):
  factor 1/100, the same spread;
- ``per-feature`` (rows scaled to unit mean squared entry, the overall scale
  of a ``StandardScaler`` output): factor d/100;
- ``effective-dim``: factor d_eff/100, with d_eff = (Σλ)²/Σλ² the
  participation ratio of the covariance spectrum of the input.

A unit is better the less its best γ moves across the cells (std of
log10 of the best γ) and the more cells have the papers' values (0.001 …
0.02) inside their good range (ACC and NMI ≥ K-means, all clusters used).

Usage, from the repository root::

    .venv/bin/python benchmarks/gamma_units.py --files all --prep raw,std,l2
    .venv/bin/python benchmarks/gamma_units.py --files none --digits \\
        --pca-files all --pca 32 128 512
    .venv/bin/python benchmarks/gamma_units.py --json out.json ...   # save cells
    .venv/bin/python benchmarks/gamma_units.py --summarize a.json b.json
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler
from table2 import (  # the same files and preparations
    DATA_DIR,
    PREPS,
    add_json_options,
    saved_cells,
)

import skentropy
from skentropy.metrics import clustering_accuracy

ESTIMATORS = (
    "EntropyClustering",
    "CollisionCEClustering",
    "MaxMarginEntropyClustering",
)
GAMMAS = (1e-5, 1e-4, 1e-3, 1e-2, 2e-2, 5e-2, 1e-1, 3e-1)
PAPERS = (1e-3, 9e-3, 2e-2)


def effective_dimension(X):
    """Participation ratio (Σλ)²/Σλ² of the covariance eigenvalues λ of X."""
    X = np.asarray(X, np.float64)
    X = X - X.mean(axis=0)
    gram = X.T @ X if X.shape[1] <= X.shape[0] else X @ X.T
    eigenvalues = np.clip(np.linalg.eigvalsh(gram), 0, None)
    return float(eigenvalues.sum() ** 2 / np.square(eigenvalues).sum())


def scores(labels, y):
    """ACC, NMI and the number of clusters used of one labeling."""
    return (
        clustering_accuracy(y, labels),
        normalized_mutual_info_score(y, labels),
        len(np.unique(labels)),
    )


def run_cell(name, X, y, args):
    """Fit K-means and every (estimator, γ) on one input; print and return."""
    n_clusters = len(np.unique(y))
    X = np.ascontiguousarray(X, dtype=np.float32)
    d_eff = effective_dimension(X)
    print(
        f"\n### {name}: {X.shape[0]} × {X.shape[1]}, d_eff {d_eff:.1f}, "
        f"seeds {list(args.seeds)}\n",
        flush=True,
    )
    cell = {"name": name, "d": X.shape[1], "d_eff": d_eff, "rows": {}}
    kmeans = [
        scores(KMeans(n_clusters, n_init=10, random_state=s).fit(X).labels_, y)
        for s in args.seeds
    ]
    cell["kmeans"] = np.mean(kmeans, axis=0)[:2].tolist()
    print(
        f"KMeans(n_init=10): ACC / NMI {cell['kmeans'][0]:.3f} / "
        f"{cell['kmeans'][1]:.3f}\n"
    )
    print("| estimator | " + " | ".join(f"γ={g:g}" for g in args.gammas) + " |")
    print("| --- " * (len(args.gammas) + 1) + "|")
    for estimator_name in args.estimators:
        estimator = getattr(skentropy, estimator_name)
        entries, row = [], {}
        for gamma in args.gammas:
            start = time.perf_counter()
            fits = [
                scores(
                    estimator(n_clusters, gamma=gamma, random_state=s, **args.params)
                    .fit(X)
                    .labels_,
                    y,
                )
                for s in args.seeds
            ]
            acc, nmi = np.mean(fits, axis=0)[:2]
            used = int(min(fit[2] for fit in fits))
            row[repr(gamma)] = [acc, nmi, used, time.perf_counter() - start]
            mark = "" if used == n_clusters else f" ({used} used)"
            entries.append(f"{acc:.3f} / {nmi:.3f}{mark}")
        cell["rows"][estimator_name] = row
        print(f"| {estimator_name} | " + " | ".join(entries) + " |", flush=True)
    return cell


def good(cell, entry):
    """Whether a (ACC, NMI, used) entry is ≥ K-means and uses every cluster."""
    acc, nmi, used = entry[:3]
    return acc >= cell["kmeans"][0] and nmi >= cell["kmeans"][1] and used == 10


def summarize(cells):
    """Print, per candidate unit and estimator, where the best γ lands."""
    units = {
        "reference-norm": lambda cell: 1.0,
        "rms-norm": lambda cell: 1.0 / 100,
        "per-feature": lambda cell: cell["d"] / 100,
        "effective-dim": lambda cell: cell["d_eff"] / 100,
    }
    estimators = list(dict.fromkeys(e for c in cells for e in c["rows"]))
    print(f"\n### Best γ per cell (library unit), {len(cells)} cells\n")
    print(
        "| cell | d | d_eff | K-means ACC / NMI | "
        + " | ".join(f"{e}: best γ (ACC / NMI); good range" for e in estimators)
        + " |"
    )
    print("| --- " * (len(estimators) + 4) + "|")
    best = {e: [] for e in estimators}
    emptying = {e: [] for e in estimators}
    papers_good = {e: [] for e in estimators}
    for cell in cells:
        entries = []
        for e in estimators:
            row = {float(g): v for g, v in cell["rows"].get(e, {}).items()}
            if not row:
                entries.append("–")
                continue
            gamma = max(row, key=lambda g: row[g][0])
            best[e].append((cell, gamma))
            empties = [g for g in sorted(row) if row[g][2] < 10]
            emptying[e].append((cell, empties[0] if empties else None))
            goods = sorted(g for g, v in row.items() if good(cell, v))
            papers_good[e].append(all(good(cell, row[g]) for g in PAPERS if g in row))
            span = f"{goods[0]:g} … {goods[-1]:g}" if goods else "none"
            entries.append(
                f"{gamma:g} ({row[gamma][0]:.3f} / {row[gamma][1]:.3f}); {span}"
            )
        print(
            f"| {cell['name']} | {cell['d']} | {cell['d_eff']:.0f} | "
            f"{cell['kmeans'][0]:.3f} / {cell['kmeans'][1]:.3f} | "
            + " | ".join(entries)
            + " |"
        )
    print(
        "\n### Spread across cells, by unit: std of log10 of the best γ, "
        "and of the smallest γ that empties a cluster (lower moves less; "
        "medians in brackets)\n"
    )
    print("| unit | " + " | ".join(f"{e}: best; emptying" for e in estimators) + " |")
    print("| --- " * (len(estimators) + 1) + "|")
    for unit, factor in units.items():
        spreads = []
        for e in estimators:
            logs = [np.log10(g * factor(c)) for c, g in best[e]]
            limits = [np.log10(g * factor(c)) for c, g in emptying[e] if g is not None]
            spreads.append(
                f"{np.std(logs):.2f} ({10 ** np.median(logs):.2g}); "
                + (
                    f"{np.std(limits):.2f} ({10 ** np.median(limits):.2g}, "
                    f"{len(limits)} cells)"
                    if limits
                    else "none empties"
                )
            )
        print(f"| {unit} | " + " | ".join(spreads) + " |")
    print(
        "\nCells where every paper value measured ("
        + ", ".join(f"{g:g}" for g in PAPERS)
        + ") is good (ACC and NMI ≥ K-means, all clusters), library unit: "
        + ", ".join(f"{e} {sum(v)}/{len(v)}" for e, v in papers_good.items())
    )


def subsample(X, y, max_rows):
    """At most ``max_rows`` rows drawn at random (seed 0), in random order."""
    if max_rows is None or max_rows >= len(X):
        return X, y
    rows = np.random.default_rng(0).permutation(len(X))[:max_rows]
    return X[rows], y[rows]


def load_cells(args):
    """(name, X, y) of every input cell asked for."""
    files = []
    if args.files == ["all"]:
        files = sorted(args.data_dir.glob("*-effnetlite0.npz"))
    elif args.files != ["none"]:
        files = [args.data_dir / f for f in args.files]
    for path in files:
        data = np.load(path)
        X, y = subsample(data["X"].astype(np.float32), data["y"], args.max_rows)
        for prep in args.prep.split(","):
            yield f"{path.stem.split('-effnet')[0]} ({prep})", PREPS[prep][1](X), y
    pca_files = []
    if args.pca_files == ["all"]:
        pca_files = sorted(args.data_dir.glob("*-effnetlite0.npz"))
    elif args.pca_files:
        pca_files = [args.data_dir / f for f in args.pca_files]
    for path in pca_files:
        data = np.load(path)
        X, y = subsample(data["X"].astype(np.float32), data["y"], args.max_rows)
        for n in args.pca:
            reduced = PCA(n, random_state=0).fit_transform(X)
            yield f"{path.stem.split('-effnet')[0]} (pca{n})", reduced, y
    if args.digits:
        digits = load_digits()
        yield "digits (std)", StandardScaler().fit_transform(digits.data), digits.target
        yield "digits (raw)", digits.data, digits.target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files",
        nargs="+",
        default=["all"],
        help="feature files in --data-dir, 'all' or 'none'",
    )
    parser.add_argument("--prep", default="raw,std,l2")
    parser.add_argument(
        "--pca-files",
        nargs="+",
        default=[],
        help="feature files to PCA-reduce (raw), or 'all'",
    )
    parser.add_argument("--pca", nargs="+", type=int, default=[32, 128, 512])
    parser.add_argument(
        "--digits",
        action="store_true",
        help="add scikit-learn's digits, standardized and raw",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--max-rows", type=int, help="a random subset of rows of each file (seed 0)"
    )
    parser.add_argument("--gammas", nargs="+", type=float, default=list(GAMMAS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    parser.add_argument(
        "--params",
        default="{}",
        help="JSON of other parameters, e.g. '{\"n_heads\": 1}'",
    )
    parser.add_argument("--threads", type=int, default=1)
    add_json_options(parser)
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(saved_cells(args.summarize))
        return
    args.params = json.loads(args.params)
    torch.set_num_threads(args.threads)
    cells = []
    for name, X, y in load_cells(args):
        cells.append(run_cell(name, X, y, args))
        if args.json:
            args.json.write_text(json.dumps(cells, indent=1))
    summarize(cells)


if __name__ == "__main__":
    main()
