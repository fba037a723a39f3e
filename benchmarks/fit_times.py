"""Fit times of the default estimators next to faiss and scikit-learn k-means.

Issue 22's table, measured as a new user would: one thread for every method
(``--threads``), each fit in its own subprocess, the median of ``--repeats``
seeds, CPU seconds of the fit alone (a fit on 1,000 rows first absorbs the
one-time costs of the process), and the NMI of each fit. Rows:

- each feature file of ``../shared/data`` (``*-effnetlite0.npz``, 5,000 to
  10,000 rows) as stored, converted to float32;
- the CIFAR-10 features tiled ten times with noise (100,000 × 1280,
  N(0, 0.1² × the features' variance) added);
- standardized digits (1797 × 64, the data of ``make demo``);
- with ``--million``, 100,000 × 256 and 1,000,000 × 256 float32 memory
  maps of one synthetic mixture (that of ``speed.py``, generated, deleted
  afterwards), where the peak growth of each fit's anonymous memory (RssAnon
  sampled every 5 ms: pages of the memory map read into the page cache do
  not count) is shown as a multiple of the size of X, and the time per row
  of the two is compared.

Columns: ``faiss.Kmeans(nredo=10)`` (when ``faiss`` is importable, else
skipped with a note), ``MiniBatchKMeans(n_init=3)``, ``KMeans(n_init=10)``
(rows up to 10,000 only), and the estimators: ``EntropyClustering`` with its
defaults and with ``n_heads=1``, ``CollisionCEClustering``,
``MaxMarginEntropyClustering`` and ``EntropyClustering(n_neighbors=20)``
(the last four on rows up to 10,000 only). A summary follows: each
estimator's time as a multiple of faiss's, five heads over one, the time per
row from 100,000 to 1,000,000 rows, and two threads over one on the tiled
100,000 rows. ``--params`` (JSON) sets parameters of every skentropy
estimator, e.g. a short ``max_iter`` for a quick look.

Usage, from the repository root::

    .venv/bin/python benchmarks/fit_times.py                  # 10k files, tiles
    .venv/bin/python benchmarks/fit_times.py --million         # and 1M × 256
    .venv/bin/python benchmarks/fit_times.py --only digits --repeats 3
"""

import argparse
import json
import os
import statistics
import tempfile
import threading
from pathlib import Path

import numpy as np
from speed import Clock, load_average, make_synthetic, run_worker
from table2 import FaissKMeans

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N_CLUSTERS = 10
FAISS = "faiss.Kmeans(nredo=10)"
# name → (class, parameters); rows of more than SMALL rows fit LARGE_ROW_METHODS
METHODS = {
    FAISS: ("faiss", {}),
    "MiniBatchKMeans(n_init=3)": ("MiniBatchKMeans", {"n_init": 3}),
    "Entropy": ("EntropyClustering", {}),
    "Entropy(n_heads=1)": ("EntropyClustering", {"n_heads": 1}),
    "KMeans(n_init=10)": ("KMeans", {"n_init": 10}),
    "CollisionCE": ("CollisionCEClustering", {}),
    "MaxMargin": ("MaxMarginEntropyClustering", {}),
    "Entropy(n_neighbors=20)": ("EntropyClustering", {"n_neighbors": 20}),
}
LARGE_ROW_METHODS = (
    FAISS,
    "MiniBatchKMeans(n_init=3)",
    "Entropy",
    "Entropy(n_heads=1)",
)
SMALL = 10_000


def make_method(name, seed, extra=None):
    """A new clusterer of ``METHODS[name]`` with random state ``seed``.

    ``extra`` parameters are set on the skentropy estimators.
    """
    from sklearn import cluster

    import skentropy

    kind, params = METHODS[name]
    if kind == "faiss":
        return FaissKMeans(N_CLUSTERS, random_state=seed)
    if kind in ("KMeans", "MiniBatchKMeans"):
        return getattr(cluster, kind)(N_CLUSTERS, random_state=seed, **params)
    params = {**params, **(extra or {})}
    return getattr(skentropy, kind)(N_CLUSTERS, random_state=seed, **params)


def anonymous_bytes():
    """This process's resident anonymous memory (RssAnon), not file pages."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakAnonymous:
    """The peak of :func:`anonymous_bytes` during a ``with`` block (sampled)."""

    def __enter__(self):
        self.peak = anonymous_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, anonymous_bytes())

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anonymous_bytes())


def worker(spec):
    """Fit one method on one data set in this process; print a JSON result."""
    import warnings

    import torch
    from sklearn.metrics import normalized_mutual_info_score
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(spec["threads"])
    threadpool_limits(spec["threads"])
    if METHODS[spec["name"]][0] == "faiss":
        import faiss

        faiss.omp_set_num_threads(spec["threads"])
    X = np.load(spec["path"], mmap_mode="r" if spec["memmap"] else None)
    y = np.load(spec["labels"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_method(spec["name"], spec["seed"], spec["params"]).fit(np.array(X[:1000]))
        loaded = anonymous_bytes()
        estimator = make_method(spec["name"], spec["seed"], spec["params"])
        with PeakAnonymous() as memory, Clock() as clock:
            estimator.fit(X)
    result = {
        "seconds": clock.wall,
        "cpu_seconds": clock.cpu,
        "nmi": normalized_mutual_info_score(y, estimator.labels_),
        "growth": (memory.peak - loaded) / X.nbytes,
    }
    print(json.dumps(result))


def measure(name, path, labels, args, threads=None, memmap=False):
    """Median over ``args.repeats`` subprocess fits (seeds 0, 1, ...)."""
    results = []
    for seed in range(args.repeats):
        spec = {
            "name": name,
            "path": str(path),
            "labels": str(labels),
            "seed": seed,
            "threads": threads or args.threads,
            "memmap": memmap,
            "params": args.params,
        }
        results.append(run_worker(__file__, spec))
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def data_sets(folder, args):
    """(title, file stem, memmap) of every row of the table, saved in ``folder``."""
    sets = []
    if "digits" in args.only:
        from sklearn.datasets import load_digits
        from sklearn.preprocessing import StandardScaler

        X, y = load_digits(return_X_y=True)
        np.save(folder / "digits.npy", StandardScaler().fit_transform(X).astype("f4"))
        np.save(folder / "digits_y.npy", y)
        sets.append(("digits (standardized)", "digits", False))
    for path in sorted(args.data_dir.glob("*-effnetlite0.npz")):
        stem = path.name.removesuffix("-effnetlite0.npz")
        tile = stem.startswith("cifar10") and "tiled" in args.only
        if stem not in args.only and not tile:
            continue
        data = np.load(path)
        X, y = data["X"].astype(np.float32), data["y"]
        if stem in args.only:
            np.save(folder / f"{stem}.npy", X)
            np.save(folder / f"{stem}_y.npy", y)
            sets.append((f"{stem} features", stem, False))
        if tile:
            rng = np.random.default_rng(0)
            noise = 0.1 * X.std(axis=0)
            tiled = np.concatenate(
                [
                    X + noise * rng.standard_normal(X.shape, np.float32)
                    for _ in range(10)
                ]
            )
            np.save(folder / "tiled.npy", tiled.astype(np.float32))
            np.save(folder / "tiled_y.npy", np.tile(y, 10))
            sets.append(("CIFAR-10 features tiled with noise", "tiled", False))
    if args.million:
        for stem, n_rows in (("100k", 100_000), ("million", 1_000_000)):
            labels = make_synthetic(n_rows, 256, folder / f"{stem}.npy")
            np.save(folder / f"{stem}_y.npy", labels)
            sets.append(("synthetic mixture, memory map", stem, True))
    return sets


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--only",
        nargs="+",
        default=["digits", "cifar10-test", "fashion-mnist-test", "usps", "mnist5k"]
        + ["tiled"],
        help="rows: digits, a feature file's stem, tiled",
    )
    parser.add_argument(
        "--million", action="store_true", help="the 100k and 1M × 256 rows"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        help="columns (default: all)",
    )
    parser.add_argument(
        "--params",
        type=json.loads,
        default={},
        metavar="JSON",
        help="parameters of every skentropy estimator",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return
    import torch

    import skentropy

    try:
        import faiss  # noqa: F401
    except ImportError:
        print("faiss-cpu is not installed (pip install faiss-cpu): no faiss column")
        del METHODS[FAISS]
    print(
        f"# fit times: skentropy at {Path(skentropy.__file__).parent}, "
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} "
        f"CPUs, median of {args.repeats} seeds; skentropy parameters "
        f"{args.params or 'default'}; load average {load_average()}\n"
    )
    basis = "cpu_seconds" if args.threads == 1 else "seconds"
    print(f"{'CPU' if basis == 'cpu_seconds' else 'wall-clock'} seconds (NMI)\n")
    names = [name for name in METHODS if name in (args.methods or METHODS)]
    print("| data | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    table = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for title, stem, memmap in data_sets(folder, args):
            X = np.load(folder / f"{stem}.npy", mmap_mode="r")
            small = X.shape[0] <= SMALL
            row = table[stem] = {}
            cells = []
            for name in names:
                if not small and name not in LARGE_ROW_METHODS:
                    cells.append("–")
                    continue
                result = row[name] = measure(
                    name,
                    folder / f"{stem}.npy",
                    folder / f"{stem}_y.npy",
                    args,
                    memmap=memmap,
                )
                cell = f"{result[basis]:.2f} ({result['nmi']:.3f})"
                if memmap:
                    cell += f" {result['growth']:.2f}×X"
                cells.append(cell)
            if stem == "tiled" and "Entropy" in row:
                row["two threads"] = measure(
                    "Entropy",
                    folder / f"{stem}.npy",
                    folder / f"{stem}_y.npy",
                    args,
                    threads=2,
                )
            print(
                f"| {title}, {X.shape[0]} × {X.shape[1]} | " + " | ".join(cells) + " |"
            )
            del X
    summary(table, basis)
    print(f"\nload average at the end: {load_average()}")


def summary(table, basis):
    """Each estimator over faiss, five heads over one, scaling, two threads."""
    print()
    for stem, row in table.items():
        parts = []
        if FAISS in row:
            parts += [
                f"{name} {row[name][basis] / row[FAISS][basis]:.1f}× faiss"
                for name in row
                if name not in (FAISS, "two threads") and "Means" not in name
            ]
        if "Entropy(n_heads=1)" in row:
            ratio = row["Entropy"][basis] / row["Entropy(n_heads=1)"][basis]
            parts.append(f"n_heads=5 / n_heads=1 {ratio:.2f}")
        if "two threads" in row:
            speedup = row["Entropy"]["seconds"] / row["two threads"]["seconds"]
            parts.append(f"two threads {speedup:.2f}× one (wall-clock)")
        print(f"- {stem}: " + "; ".join(parts))
    if "100k" in table and "million" in table:
        for name in table["million"]:
            growth = (table["million"][name][basis] / 1_000_000) / (
                table["100k"][name][basis] / 100_000
            )
            print(f"- {name}: time per row, 1M × 256 over 100k × 256: {growth:.2f}")


if __name__ == "__main__":
    main()
