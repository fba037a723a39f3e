"""Speed and memory of fitting on fixed features, next to the hardware floor.

On X = 60 000 × 2048 float32 (synthetic: 10 equally weighted Gaussian
components, means drawn from N(0, 0.2² I), unit isotropic noise, fixed seed)
and, when present, a real 1280-d feature file of ``../shared/data``, with
K = 10, this script reports in one run:

(a) the hardware floor: the median time of the same number of epochs of a
    bare forward + backward of the same linear layer with a trivial loss over
    the same contiguous batches (the faster of :class:`torch.nn.Linear` and
    the same layer with its logits computed as (V Xᵀ)ᵀ, both shown), and of
    one streaming pass over X;
(b) the ``fit`` time of each skentropy estimator with its defaults and with
    the papers' protocol (10 epochs, batch 250, SGD with lr 0.1);
(c) scikit-learn's ``KMeans`` (``n_init=10`` and ``n_init=1``) and
    ``MiniBatchKMeans`` time and accuracy on the same X;
(d) the peak memory of each fit: the process's maximum resident set size
    minus its resident size after X was loaded, each fit in its own
    subprocess.

Times are medians of ``--repeats`` runs (each in a fresh subprocess), with
ratios to the floor and to one k-means++ run (``KMeans(n_init=1)``): both
wall-clock and CPU (process) seconds are shown; with ``--threads 1`` the
ratios use CPU seconds, which other processes on a shared machine inflate
far less than wall-clock ones (they still compete for memory bandwidth). Each
timed fit follows a fit of the same estimator on 1,000 rows in the same
process, so that one-time costs of a process (lazy imports, first calls)
are not counted, as they are not for the floor. ``--threads`` limits
torch and the BLAS and OpenMP pools (scikit-learn, numpy) alike.
Targets (CPU): ``EntropyClustering`` with the papers' protocol ≤ 1.5 × the
floor (a) and ≤ 0.5 × ``KMeans(n_init=1)``; memory ≤ 1.2 × the size of X plus
a constant.

Usage, from the repository root::

    .venv/bin/python benchmarks/speed.py                 # full run
    .venv/bin/python benchmarks/speed.py --samples 6000  # a quick look
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_FILE = "cifar10-test-effnetlite0.npz"
N_CLUSTERS = 10
PROTOCOL = {
    "max_iter": 10,
    "batch_size": 250,
    "optimizer": "sgd",
    "lr": 0.1,
    "tol": 0.0,
}


def make_synthetic(n_samples, n_features, path, seed=0):
    """The synthetic mixture, written chunk by chunk to ``path`` (.npy)."""
    rng = np.random.default_rng(seed)
    means = 0.2 * rng.standard_normal((N_CLUSTERS, n_features)).astype(np.float32)
    labels = rng.integers(N_CLUSTERS, size=n_samples)
    X = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(n_samples, n_features)
    )
    for start in range(0, n_samples, 5000):
        stop = min(start + 5000, n_samples)
        noise = rng.standard_normal((stop - start, n_features), dtype=np.float32)
        X[start:stop] = means[labels[start:stop]] + noise
    X.flush()
    del X
    return labels


def load_average():
    """The system's 1, 5 and 15 minute load averages, as text."""
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def resident_bytes():
    """Current resident set size of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak():
    """Restart the peak resident set size of this process from its current one.

    Possible since Linux 4.0; where it is not, the peak counts from the start
    of the process.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def peak_bytes():
    """Peak resident set size of this process (VmHWM).

    Not ``getrusage``'s ``ru_maxrss``, which on Linux keeps the peak of the
    parent process that forked this one before ``exec``.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Clock:
    """Wall-clock and CPU (process) seconds of a ``with`` block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


# ---- one measurement, in its own subprocess ---------------------------------------


def floor_streaming(X, batch_size):
    """One pass over X, batch by batch; its :class:`Clock`."""
    import torch

    total = 0.0
    with Clock() as clock:
        for begin in range(0, X.shape[0], batch_size):
            total += float(torch.from_numpy(X[begin : begin + batch_size]).sum())
    return clock


def floor_linear(X, batch_size, epochs, transposed=False):
    """Forward + backward of a linear layer, trivial loss, contiguous batches.

    Returns the :class:`Clock` of the epochs. ``transposed`` computes the
    logits as (V Xᵀ)ᵀ rather than X Vᵀ, a faster orientation of the CPU's
    matrix product, which skentropy's linear head uses in training.
    """
    import torch

    class TransposedLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, features, weight, bias):
            ctx.save_for_backward(features)
            return torch.addmm(bias[:, None], weight, features.T).T

        @staticmethod
        def backward(ctx, grad):
            (features,) = ctx.saved_tensors
            return None, grad.T @ features, grad.sum(dim=0)

    layer = torch.nn.Linear(X.shape[1], N_CLUSTERS)
    forward = (
        (lambda X_batch: TransposedLinear.apply(X_batch, layer.weight, layer.bias))
        if transposed
        else layer
    )
    optimizer = torch.optim.SGD(layer.parameters(), lr=1e-3)
    n_batches = -(-X.shape[0] // batch_size)
    generator = torch.Generator().manual_seed(0)
    with Clock() as clock:
        for _ in range(epochs):
            for batch in torch.randperm(n_batches, generator=generator).tolist():
                rows = slice(batch * batch_size, (batch + 1) * batch_size)
                loss = torch.log_softmax(forward(torch.from_numpy(X[rows])), 1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return clock


def make_estimator(name, protocol, seed):
    from sklearn.cluster import KMeans, MiniBatchKMeans

    import skentropy

    if name == "KMeans(n_init=10)":
        return KMeans(N_CLUSTERS, n_init=10, random_state=seed)
    if name == "KMeans(n_init=1)":
        return KMeans(N_CLUSTERS, n_init=1, random_state=seed)
    if name == "MiniBatchKMeans":
        return MiniBatchKMeans(N_CLUSTERS, n_init=3, random_state=seed)
    params = dict(PROTOCOL) if protocol else {}
    return getattr(skentropy, name)(N_CLUSTERS, random_state=seed, **params)


def worker(spec):
    """Run one measurement described by ``spec``; print a JSON result."""
    import warnings

    import sklearn.cluster  # noqa: F401  (imported before the baseline RSS)
    import torch
    from threadpoolctl import threadpool_limits

    import skentropy  # noqa: F401
    from skentropy.metrics import clustering_accuracy

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
        threadpool_limits(spec["threads"])
    X = np.load(spec["path"])
    if X.dtype != np.float32:
        X = X.astype(np.float32)
    y = np.load(spec["labels"])
    result = {}
    if spec["kind"] == "fit":
        # one-time costs of the process (lazy imports) before the clock
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_estimator(spec["name"], spec["protocol"], spec["seed"]).fit(X[:1000])
    loaded = resident_bytes()
    reset_peak()
    if spec["kind"] == "stream":
        clock = floor_streaming(X, spec["batch_size"])
    elif spec["kind"] == "linear":
        clock = floor_linear(X, spec["batch_size"], spec["epochs"], spec["transposed"])
    else:
        estimator = make_estimator(spec["name"], spec["protocol"], spec["seed"])
        with warnings.catch_warnings(), Clock() as clock:
            warnings.simplefilter("ignore")
            estimator.fit(X)
        result["accuracy"] = clustering_accuracy(y, estimator.labels_)
        result["epochs"] = getattr(estimator, "n_iter_", None)
        if hasattr(estimator, "n_steps_"):
            result["steps"] = int(estimator.n_steps_)
    result["seconds"], result["cpu_seconds"] = clock.wall, clock.cpu
    result["extra_bytes"] = peak_bytes() - loaded
    result["x_bytes"] = X.nbytes
    print(json.dumps(result))


def run_worker(script, spec):
    """Run ``script --worker <spec as JSON>`` in a new process; its last JSON line."""
    out = subprocess.run(
        [sys.executable, str(script), "--worker", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(spec, repeats):
    """Median over ``repeats`` subprocesses of one measurement."""
    results = [
        run_worker(__file__, {**spec, "seed": repeat}) for repeat in range(repeats)
    ]
    merged = {
        key: statistics.median(r[key] for r in results)
        for key in results[0]
        if isinstance(results[0][key], (int, float))
    }
    return merged


# ---- the report -------------------------------------------------------------------


def report(title, path, labels_path, args):
    size = np.load(path, mmap_mode="r")
    print(
        f"\n## {title}: {size.shape[0]} × {size.shape[1]} float32 "
        f"({size.nbytes / 2**20:.0f} MiB), K = {N_CLUSTERS}\n"
    )
    common = {"path": str(path), "labels": str(labels_path), "threads": args.threads}
    basis = "cpu_seconds" if args.threads == 1 else "seconds"
    stream = run({**common, "kind": "stream", "batch_size": 250}, args.repeats)
    floors = {
        transposed: run(
            {
                **common,
                "kind": "linear",
                "batch_size": 250,
                "epochs": PROTOCOL["max_iter"],
                "transposed": transposed,
            },
            args.repeats,
        )
        for transposed in (False, True)
    }
    kmeans_one = run(
        {**common, "kind": "fit", "name": "KMeans(n_init=1)", "protocol": False},
        args.repeats,
    )

    def seconds(result):
        return f"{result['seconds']:.2f} s (CPU {result['cpu_seconds']:.2f} s)"

    print(
        f"floor: one streaming pass {stream['seconds']:.3f} s; "
        f"{PROTOCOL['max_iter']} epochs of a bare linear forward+backward "
        f"(batch 250, contiguous) {seconds(floors[False])} with "
        f"torch.nn.Linear, {seconds(floors[True])} with logits (V Xᵀ)ᵀ\n"
    )
    per_epoch = min(floor[basis] for floor in floors.values()) / PROTOCOL["max_iter"]
    print(
        f"Ratios of {'CPU' if basis == 'cpu_seconds' else 'wall-clock'} "
        "seconds; × floor: over the floor for the fit's own number of epochs "
        f"({per_epoch:.3f} s per epoch).\n"
    )
    print(
        "| method | setting | fit s | CPU s | × floor (a) | × KMeans(n_init=1) "
        "| epochs | ACC | extra peak MiB | × size of X |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [
        ("KMeans(n_init=10)", False),
        ("KMeans(n_init=1)", False),
        ("MiniBatchKMeans", False),
    ]
    for name in args.estimators:
        rows += [(name, True), (name, False)]
    for name, protocol in rows:
        if name == "KMeans(n_init=1)":
            result = kmeans_one
        else:
            result = run(
                {**common, "kind": "fit", "name": name, "protocol": protocol},
                args.repeats,
            )
        setting = "papers' protocol" if protocol else "defaults"
        epochs = result.get("epochs")
        skentropy_fit = name.startswith(("KMeans", "MiniBatch")) is False
        ratio = (
            f"{result[basis] / (epochs * per_epoch):.2f}"
            if skentropy_fit and epochs
            else ""
        )
        print(
            f"| {name} | {setting} | {result['seconds']:.2f} "
            f"| {result['cpu_seconds']:.2f} | {ratio} "
            f"| {result[basis] / kmeans_one[basis]:.2f} "
            f"| {'' if epochs is None else int(epochs)} "
            f"| {result['accuracy']:.3f} "
            f"| {result['extra_bytes'] / 2**20:.0f} "
            f"| {result['extra_bytes'] / result['x_bytes']:.2f} |",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: torch's default)"
    )
    parser.add_argument(
        "--estimators",
        nargs="+",
        default=[
            "EntropyClustering",
            "CollisionCEClustering",
            "MaxMarginEntropyClustering",
        ],
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return
    import torch

    threads = args.threads or torch.get_num_threads()
    print(
        f"# skentropy speed: torch {torch.__version__}, {threads} threads, "
        f"{os.cpu_count()} CPUs, median of {args.repeats} subprocess runs; "
        f"load average {load_average()}"
    )
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        labels = make_synthetic(args.samples, args.features, folder / "X.npy")
        np.save(folder / "y.npy", labels)
        report("synthetic mixture", folder / "X.npy", folder / "y.npy", args)
        real = args.data_dir / REAL_FILE
        if real.exists():
            data = np.load(real)
            np.save(folder / "real.npy", data["X"].astype(np.float32))
            np.save(folder / "real_y.npy", data["y"])
            report(REAL_FILE, folder / "real.npy", folder / "real_y.npy", args)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
