"""Label-free choice of K and γ (issue 14): stability next to silhouette and labels.

For scikit-learn's digits (standardized) and the ``*-effnetlite0.npz`` feature
files of ``../shared/data`` (as stored, cast to float32; ``--prep`` as in
``table2.py``), each subsampled to ``--max-samples`` rows, prints:

* the number of clusters chosen among ``--candidates`` (default 5…16; every
  set has 10 classes) by :func:`skentropy.model_selection.select_n_clusters`
  (stability of the estimator over every pair of fits on ``--n-repeats``
  splits into halves, minus the same on a Gaussian reference with the mean and
  covariance of the set), by the stability alone (the same fits, without the
  reference: ``reference=None``), and by the silhouette score of
  ``KMeans(n_init=10)``, the usual label-free answer;
* for ``gamma`` in ``--gammas`` at K = 10: the γ chosen label-free by
  ``GridSearchCV(..., scoring=unsupervised_scorer, cv=RepeatedKFold(2,
  n_repeats))``, the γ chosen by the silhouette of the held-out predictions
  in the same search, and the label-tuned γ: the one of the best mean
  Hungarian accuracy (ACC) of full fits over ``--seeds`` seeds. The ACC and
  NMI of each chosen γ are those mean full-fit scores, so the columns compare
  what each choice would have given.

A markdown table per set (scores of every candidate and γ) and a summary
table follow, with the load average of the machine at the start and the end
and the seconds taken. With ``--compare`` a second search over K and over γ
scores the same held-out labelings with the other label-free candidates the
design of issue 14 was chosen among: Lange et al.'s Hungarian stability,
the adjusted Rand index of the two labelings, Tibshirani and Walther's
prediction strength, the held-out mutual information I(X; cluster) / ln K of
``predict_proba`` (the part of the loss free of γ and λ) and the silhouette
of the held-out predictions (that search fits twice per split and half).

Usage, from the repository root::

    .venv/bin/python benchmarks/model_selection.py
    .venv/bin/python benchmarks/model_selection.py --data digits --n-repeats 2
    .venv/bin/python benchmarks/model_selection.py --data mnist5k usps \
        --max-samples 4000 --prep std --compare
"""

import argparse
import ast
import os
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.model_selection import GridSearchCV, RepeatedKFold
from sklearn.preprocessing import StandardScaler, normalize

import skentropy
from skentropy.metrics import clustering_accuracy, stability_score
from skentropy.model_selection import (  # the scorer's clone, for --compare
    _reseeded_clone,
    select_n_clusters,
    unsupervised_scorer,
)

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FILES = ["mnist5k", "usps", "fashion-mnist-test", "cifar10-test"]
PREPS = {
    "raw": lambda X: X,
    "std": StandardScaler().fit_transform,
    "l2": normalize,
}


def load(name, args):
    """(X float32, y, description) of one set, subsampled to --max-samples rows."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X, description = StandardScaler().fit_transform(X), "standardized"
    else:
        data = np.load(args.data_dir / f"{name}-effnetlite0.npz")
        X = PREPS[args.prep](data["X"].astype(np.float32))
        y, description = data["y"], f"prep {args.prep}"
    rows = np.random.default_rng(0).permutation(len(y))[: args.max_samples]
    return np.asarray(X[rows], dtype=np.float32), y[rows], description


def silhouette_scorer(estimator, X, y=None):
    """Silhouette of the held-out fold's predicted labels (-1 for one cluster)."""
    labels = estimator.predict(X)
    return silhouette_score(X, labels) if len(np.unique(labels)) > 1 else -1.0


def choose_k(estimator, X, args):
    """Stability of every candidate K, and the silhouette of KMeans's labels."""
    result = select_n_clusters(
        estimator,
        X,
        args.candidates,
        n_repeats=args.n_repeats,
        random_state=0,
        n_jobs=args.n_jobs,
    )
    silhouettes = np.array(
        [
            silhouette_score(X, KMeans(k, n_init=10, random_state=0).fit_predict(X))
            for k in result.candidates
        ]
    )
    return result, silhouettes


def choose_gamma(estimator, X, y, args):
    """Label-free scores of every γ by GridSearchCV, and full-fit ACC / NMI."""
    estimator = clone(estimator).set_params(n_clusters=args.n_classes)
    search = GridSearchCV(
        estimator,
        {"gamma": args.gammas},
        scoring={"stability": unsupervised_scorer, "silhouette": silhouette_scorer},
        refit=False,
        cv=RepeatedKFold(n_splits=2, n_repeats=args.n_repeats, random_state=0),
        n_jobs=args.n_jobs,
    ).fit(X)
    full = np.array(
        [
            [
                [
                    clustering_accuracy(y, labels),
                    normalized_mutual_info_score(y, labels),
                ]
                for labels in (
                    clone(estimator)
                    .set_params(gamma=gamma, random_state=seed)
                    .fit_predict(X)
                    for seed in range(args.seeds)
                )
            ]
            for gamma in args.gammas
        ]
    )  # (gamma, seed, [ACC, NMI])
    return search.cv_results_, full.mean(axis=1)


# -- --compare: the other candidates, from the same two labelings ------------------


def _hungarian_stability(labels_a, labels_b, n_clusters, n_permutations=20):
    """Lange et al.'s stability: matched share of samples, chance-normalized."""
    rng = np.random.default_rng(0)

    def agreement(b):
        counts = np.zeros((n_clusters, n_clusters))
        np.add.at(counts, (labels_a, b), 1)
        rows, cols = linear_sum_assignment(counts, maximize=True)
        return counts[rows, cols].sum() / len(b)

    chance = np.mean(
        [agreement(rng.permutation(labels_b)) for _ in range(n_permutations)]
    )
    return (agreement(labels_b) - chance) / (1 - chance)


def _prediction_strength(labels_carried, labels_refitted):
    """Tibshirani and Walther's prediction strength: min over refitted clusters."""
    strengths = []
    for cluster in np.unique(labels_refitted):
        members = labels_carried[labels_refitted == cluster]
        if members.size > 1:
            counts = np.bincount(members)
            strengths.append(
                (counts * (counts - 1)).sum() / members.size / (members.size - 1)
            )
    return min(strengths)


def _held_out_information(probs):
    """I(X; cluster) / ln K of predict_proba on the held-out fold."""
    probs = np.clip(probs, 1e-12, 1.0)
    mean = probs.mean(axis=0)
    entropy_of_mean = -(mean * np.log(mean)).sum()
    mean_entropy = -(probs * np.log(probs)).sum(axis=1).mean()
    return (entropy_of_mean - mean_entropy) / np.log(probs.shape[1])


def candidate_scores(estimator, X, y=None):
    """Every label-free candidate on one split, from one refit of the clone."""
    n_clusters = estimator.get_params()["n_clusters"]
    carried = estimator.predict(X)
    refitted = _reseeded_clone(estimator).fit(X).predict(X)
    return {
        "stability": stability_score(carried, refitted, n_clusters=n_clusters),
        "lange": _hungarian_stability(carried, refitted, n_clusters),
        "ari": adjusted_rand_score(carried, refitted),
        "strength": _prediction_strength(carried, refitted),
        "information": _held_out_information(estimator.predict_proba(X)),
        "silhouette": silhouette_scorer(estimator, X),
    }


def compare(estimator, X, args):
    """Print the mean of every candidate per K and per γ, and what each picks."""
    names = ["stability", "lange", "ari", "strength", "information", "silhouette"]
    grids = [
        ("n_clusters", {"n_clusters": list(args.candidates)}),
        ("gamma", {"n_clusters": [args.n_classes], "gamma": list(args.gammas)}),
    ]
    for param, grid in grids:
        results = (
            GridSearchCV(
                estimator,
                grid,
                scoring=candidate_scores,
                refit=False,
                cv=RepeatedKFold(n_splits=2, n_repeats=args.n_repeats, random_state=0),
                n_jobs=args.n_jobs,
            )
            .fit(X)
            .cv_results_
        )
        values = results[f"param_{param}"]
        print(f"\nCandidates by {param} (mean over {2 * args.n_repeats} splits):\n")
        print(f"| {param} | " + " | ".join(names) + " |")
        print("| --- " * (len(names) + 1) + "|")
        for i, value in enumerate(values):
            row = " | ".join(f"{results[f'mean_test_{n}'][i]:.3f}" for n in names)
            print(f"| {value:g} | {row} |")
        picks = ", ".join(
            f"{n} → {values[np.argmax(results[f'mean_test_{n}'])]:g}" for n in names
        )
        print(f"\nArgmax: {picks}", flush=True)


# -- main ---------------------------------------------------------------------------


def run_set(name, args):
    """Print the tables of one set; return its summary row."""
    start = time.perf_counter()
    X, y, description = load(name, args)
    estimator = getattr(skentropy, args.estimator)(random_state=0, **args.params)
    print(
        f"\n### {name}: {X.shape[0]} × {X.shape[1]}, {description}, "
        f"{args.estimator}({args.params_text}), {len(np.unique(y))} classes\n",
        flush=True,
    )
    result, silhouettes = choose_k(estimator, X, args)
    print(
        "| K | score: stability − reference, mean (std) | stability on X "
        "| on the reference | KMeans silhouette |"
    )
    print("| --- | --- | --- | --- | --- |")
    stability = result.stability.mean(axis=1)
    on_reference = result.reference_stability.mean(axis=1)
    for i, k in enumerate(result.candidates):
        print(
            f"| {k} | {result.mean_score[i]:.3f} ({result.std_score[i]:.3f}) "
            f"| {stability[i]:.3f} | {on_reference[i]:.3f} | {silhouettes[i]:.3f} |"
        )
    k_silhouette = int(result.candidates[np.argmax(silhouettes)])
    k_alone = int(result.candidates[np.argmax(stability)])

    cv_results, full = choose_gamma(estimator, X, y, args)
    stability = cv_results["mean_test_stability"]
    silhouette = cv_results["mean_test_silhouette"]
    print("\n| γ | stability mean (std) | held-out silhouette | full-fit ACC | NMI |")
    print("| --- | --- | --- | --- | --- |")
    spread = cv_results["std_test_stability"]
    for i, gamma in enumerate(args.gammas):
        print(
            f"| {gamma:g} | {stability[i]:.3f} ({spread[i]:.3f})"
            f" | {silhouette[i]:.3f} | {full[i, 0]:.3f} | {full[i, 1]:.3f} |"
        )
    free, tuned, by_silhouette = (
        int(np.argmax(stability)),
        int(np.argmax(full[:, 0])),
        int(np.argmax(silhouette)),
    )
    if args.compare:
        compare(estimator, X, args)
    seconds = time.perf_counter() - start
    print(f"\n{name}: {seconds:.0f} s", flush=True)
    return {
        "name": name,
        "k": result.n_clusters,
        "k_alone": k_alone,
        "k_silhouette": k_silhouette,
        "free": (args.gammas[free], *full[free]),
        "tuned": (args.gammas[tuned], *full[tuned]),
        "silhouette": (args.gammas[by_silhouette], *full[by_silhouette]),
        "seconds": seconds,
    }


def print_summary(rows, args):
    print(
        f"\n### Summary ({args.estimator}({args.params_text}); K among "
        f"{args.candidates[0]}…{args.candidates[-1]}, truth {args.n_classes}; "
        f"ACC / NMI of full fits, mean over {args.seeds} seeds)\n"
    )
    print(
        "| set | K stability − reference | K stability alone "
        "| K silhouette (KMeans) | γ label-free | ACC / NMI "
        "| γ label-tuned | ACC / NMI | Δ ACC (points) | γ silhouette | ACC / NMI "
        "| s |"
    )
    print("| --- " * 12 + "|")
    for row in rows:
        free, tuned, silhouette = row["free"], row["tuned"], row["silhouette"]
        print(
            f"| {row['name']} | {row['k']} | {row['k_alone']} "
            f"| {row['k_silhouette']} "
            f"| {free[0]:g} | {free[1]:.3f} / {free[2]:.3f} "
            f"| {tuned[0]:g} | {tuned[1]:.3f} / {tuned[2]:.3f} "
            f"| {100 * (free[1] - tuned[1]):+.1f} "
            f"| {silhouette[0]:g} | {silhouette[1]:.3f} / {silhouette[2]:.3f} "
            f"| {row['seconds']:.0f} |"
        )
    low, high = args.n_classes - 2, args.n_classes + 2
    hits = sum(low <= row["k"] <= high for row in rows)
    hits_alone = sum(low <= row["k_alone"] <= high for row in rows)
    hits_silhouette = sum(low <= row["k_silhouette"] <= high for row in rows)
    close = sum(row["free"][1] >= row["tuned"][1] - 0.03 for row in rows)
    print(
        f"\nK within {low}…{high}: stability − reference {hits} of {len(rows)}, "
        f"stability alone {hits_alone} of {len(rows)}, KMeans silhouette "
        f"{hits_silhouette} of {len(rows)}. Label-free γ within 3 "
        f"points ACC of the label-tuned γ: {close} of {len(rows)}."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        nargs="+",
        default=["digits", *FILES],
        help=f"sets among digits, {', '.join(FILES)}",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--prep", choices=list(PREPS), default="raw")
    parser.add_argument("--max-samples", type=int, default=2000, metavar="N")
    parser.add_argument("--estimator", default="EntropyClustering")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an estimator parameter (Python literal), e.g. --param n_heads=4",
    )
    parser.add_argument(
        "--candidates", type=int, nargs="+", default=list(range(5, 17)), metavar="K"
    )
    parser.add_argument(
        "--gammas",
        type=float,
        nargs="+",
        default=[1e-3, 1e-2, 3e-2, 1e-1, 3e-1],
        metavar="G",
    )
    parser.add_argument("--n-repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3, help="full fits per γ")
    parser.add_argument("--n-classes", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args(argv)
    unknown = [name for name in args.data if name not in ["digits", *FILES]]
    if unknown:
        parser.error(f"unknown --data {unknown}")
    if not hasattr(skentropy, args.estimator):
        parser.error(f"unknown --estimator {args.estimator}")
    args.candidates = sorted(args.candidates)
    args.params = {}
    for item in args.param:
        name, _, value = item.partition("=")
        try:
            args.params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            args.params[name] = value
    args.params_text = ", ".join(f"{k}={v!r}" for k, v in args.params.items())

    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"load average at the start: {os.getloadavg()}; {os.cpu_count()} CPUs")
    rows = [run_set(name, args) for name in args.data]
    print_summary(rows, args)
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
