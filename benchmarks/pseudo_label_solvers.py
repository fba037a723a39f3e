"""Benchmark of the pseudo-label solvers, after the entropy paper's Table 1.

For K ∈ {2, 20, 200} classes, N ∈ {250, 10 000} rows, fairness weight λ = 100
and predictions σ = softmax(3 · standard normal) (seeded), every solver of
both pseudo-label problems (reverse and collision cross-entropy) is run to the
same relative KKT tolerance (:func:`skentropy.pseudo_labels.kkt_residual`,
1e-6 by default):

* ``library``: :func:`~skentropy.pseudo_labels.reverse_ce_labels` and
  :func:`~skentropy.pseudo_labels.collision_ce_labels`, with their defaults
  (``method="auto"``: SQUAREM-EM, dual Newton and, past kinks of the dual, the
  library's primal-dual Newton fallback for the reverse loss; dual Newton,
  interior point and the same fallback for the collision one);
* ``library em``: the same functions with ``method="em"``, the papers' EM
  algorithm accelerated by SQUAREM (what the estimators run per mini-batch,
  there with a loose tolerance);
* ``newton``: structured Newton (primal-dual interior point, one K×K solve per
  step), ``skentropy._reference_solvers.structured_newton``;
* ``projected gradient``: FISTA with backtracking and restarts,
  ``skentropy._reference_solvers.projected_gradient``.

Reported per solver: iterations (each solver's own unit: library iterations
as its ``n_iter``, Newton steps, gradient steps), the median wall-clock time
of up to ``--repeats`` runs (fewer where the runs would exceed the cap), the
final KKT residual, the objective gap to the best objective any solver found
on the cell (relative to max(1, |best|)) and a status: ``converged``,
``capped (time)`` or ``capped (max_iter)`` for a solver that stopped at its
cap with a residual above the tolerance. The baselines are capped at
``--cap-seconds`` per run; the library solvers are not capped in time (they
stop at their own ``max_iter`` with a ``RuntimeWarning``).

``--batch-em`` instead times what the self-labeling estimators run on every
mini-batch: ``method="em"`` with ``tol=1e-2`` (their ``em_tol``),
``check_input=False``, on ``--batches`` float32 batches of 250 × 10
predictions σ = softmax(``--scale`` · standard normal), one torch thread:
the median over 3 passes of the time per batch, the mean number of
iterations and the largest KKT residual of the labels.

Run from the repository root::

    .venv/bin/python benchmarks/pseudo_label_solvers.py            # full grid
    .venv/bin/python benchmarks/pseudo_label_solvers.py --quick    # N = 250
    .venv/bin/python benchmarks/pseudo_label_solvers.py --batch-em --scale 3 10
"""

import argparse
import statistics
import time
import warnings

import torch

from skentropy._reference_solvers import projected_gradient, structured_newton
from skentropy.pseudo_labels import (
    collision_ce_labels,
    collision_ce_objective,
    kkt_residual,
    reverse_ce_labels,
    reverse_ce_objective,
)

LIBRARY = {"reverse": reverse_ce_labels, "collision": collision_ce_labels}
OBJECTIVE = {"reverse": reverse_ce_objective, "collision": collision_ce_objective}
NEWTON_MAX_ITER = 500
GRADIENT_MAX_ITER = 1_000_000


def make_problem(n_samples, n_classes, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(
        n_samples, n_classes, generator=generator, dtype=torch.float64
    )
    return torch.softmax(logits, dim=1)


def run_library(method):
    def run(loss, probs, fairness_weight, tol, cap_seconds, max_iter=1000):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            labels, n_iter = LIBRARY[loss](
                probs,
                fairness_weight=fairness_weight,
                tol=tol,
                method=method,
                max_iter=max_iter,
                return_n_iter=True,
            )
        capped = any(issubclass(w.category, RuntimeWarning) for w in caught)
        return labels, n_iter, "max_iter" if capped else None

    return run


def run_baseline(solver, max_iter):
    def run(loss, probs, fairness_weight, tol, cap_seconds, max_iter=max_iter):
        n_samples, n_classes = probs.shape
        weights = torch.ones(n_samples, dtype=torch.float64)
        prior = torch.full((n_classes,), 1.0 / n_classes, dtype=torch.float64)
        start = time.perf_counter()
        labels, n_iter = solver(
            probs,
            weights,
            prior,
            fairness_weight,
            loss=loss,
            tol=tol,
            max_iter=max_iter,
            max_seconds=cap_seconds,
        )
        if time.perf_counter() - start > cap_seconds:
            cap = "time"
        else:
            cap = "max_iter" if n_iter >= max_iter else None
        return labels, n_iter, cap

    return run


SOLVERS = {
    "library": run_library("auto"),
    "library em": run_library("em"),
    "newton": run_baseline(structured_newton, NEWTON_MAX_ITER),
    "projected gradient": run_baseline(projected_gradient, GRADIENT_MAX_ITER),
}


def time_solver(
    run, loss, probs, fairness_weight, tol, repeats, cap_seconds, **options
):
    """Median time of up to ``repeats`` runs; repeats stop once past the cap."""
    times = []
    while len(times) < repeats and sum(times) < cap_seconds:
        start = time.perf_counter()
        labels, n_iter, cap = run(
            loss, probs, fairness_weight, tol, cap_seconds, **options
        )
        times.append(time.perf_counter() - start)
    return labels, n_iter, cap, statistics.median(times), len(times)


def benchmark_cell(n_samples, n_classes, loss, args, seed):
    probs = make_problem(n_samples, n_classes, seed)
    results = []
    for name, run in SOLVERS.items():
        options = {"max_iter": args.em_max_iter} if name == "library em" else {}
        labels, n_iter, cap, seconds, runs = time_solver(
            run,
            loss,
            probs,
            args.fairness_weight,
            args.tol,
            args.repeats,
            args.cap_seconds,
            **options,
        )
        residual = kkt_residual(
            probs, labels, loss=loss, fairness_weight=args.fairness_weight
        )
        value = OBJECTIVE[loss](probs, labels, fairness_weight=args.fairness_weight)
        if residual <= args.tol:
            status = "converged"
        elif cap is not None:
            status = f"capped ({cap})"
        else:
            status = "not converged"
        results.append(
            dict(
                solver=name,
                n_iter=n_iter,
                seconds=seconds,
                runs=runs,
                residual=residual,
                value=value,
                status=status,
            )
        )
    best = min(result["value"] for result in results)
    for result in results:
        result["gap"] = (result["value"] - best) / max(1.0, abs(best))
    return results


def batch_em(args):
    """Per-batch cost of the estimators' pseudo-label EM (see the docstring)."""
    torch.set_num_threads(1)
    print("| loss | σ scale | µs per batch | mean iterations | largest KKT residual |")
    print("|---|---:|---:|---:|---:|")
    for loss in args.losses:
        for scale in args.scale:
            generator = torch.Generator().manual_seed(args.seed)
            batches = [
                torch.softmax(scale * torch.randn(250, 10, generator=generator), dim=1)
                for _ in range(args.batches)
            ]

            def solve(probs, solver=LIBRARY[loss]):
                return solver(
                    probs,
                    fairness_weight=args.fairness_weight,
                    tol=1e-2,
                    method="em",
                    check_input=False,
                    return_n_iter=True,
                )

            for probs in batches[:10]:  # warm-up
                solve(probs)
            passes = []
            for _ in range(3):
                start = time.perf_counter()
                results = [solve(probs) for probs in batches]
                passes.append((time.perf_counter() - start) / len(batches))
            iterations = statistics.mean(n_iter for _, n_iter in results)
            residual = max(
                kkt_residual(
                    probs, labels, loss=loss, fairness_weight=args.fairness_weight
                )
                for probs, (labels, _) in zip(batches, results, strict=True)
            )
            print(
                f"| {loss} | {scale:g} | {statistics.median(passes) * 1e6:.0f} "
                f"| {iterations:.2f} | {residual:.1e} |",
                flush=True,
            )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="only N = 250, one run per solver"
    )
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 20, 200])
    parser.add_argument("--samples", type=int, nargs="+", default=[250, 10_000])
    parser.add_argument("--fairness-weight", type=float, default=100.0)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cap-seconds",
        type=float,
        default=20.0,
        help="time cap per run of a baseline solver",
    )
    parser.add_argument(
        "--losses",
        nargs="+",
        default=["reverse", "collision"],
        choices=["reverse", "collision"],
    )
    parser.add_argument(
        "--em-max-iter",
        type=int,
        default=1000,
        help="max_iter of the 'library em' solver (it has no "
        "time cap; the collision EM creeps at K = 200)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batch-em",
        action="store_true",
        help="time the estimators' per-batch EM instead",
    )
    parser.add_argument(
        "--scale",
        type=float,
        nargs="+",
        default=[3.0],
        help="logit scale of σ for --batch-em",
    )
    parser.add_argument(
        "--batches", type=int, default=200, help="number of batches for --batch-em"
    )
    args = parser.parse_args(argv)
    if args.batch_em:
        batch_em(args)
        return
    if args.quick:
        args.samples, args.repeats = [250], 1
    torch.set_num_threads(args.threads)

    print(
        f"# Pseudo-label solvers: λ = {args.fairness_weight:g}, "
        f"σ = softmax(3·randn), KKT tolerance {args.tol:g}\n"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"median of up to {args.repeats} runs, baselines capped at "
        f"{args.cap_seconds:g} s per run. Iterations: library = its n_iter "
        "(SQUAREM cycles of three EM updates, and dual Newton or interior "
        "point iterations), newton = "
        "Newton steps, projected gradient = gradient steps. Gap = "
        "(E − E_best) / max(1, |E_best|), E_best the best objective on the "
        "cell.\n"
    )
    print(
        "| loss | K | N | solver | iterations | seconds | runs | KKT residual "
        "| objective gap | status |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for loss in args.losses:
        for n_classes in args.classes:
            for n_samples in args.samples:
                seed = args.seed + 1000 * n_classes + n_samples
                for r in benchmark_cell(n_samples, n_classes, loss, args, seed):
                    print(
                        f"| {loss} | {n_classes} | {n_samples} | {r['solver']} "
                        f"| {r['n_iter']} | {r['seconds']:.3g} | {r['runs']} "
                        f"| {r['residual']:.1e} | {r['gap']:.1e} "
                        f"| {r['status']} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
