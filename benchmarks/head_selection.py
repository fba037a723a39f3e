"""Five heads or fewer: selecting the heads early, replayed on recorded fits.

Issue 22 asks that ``n_heads=5`` cost at most 1.5 times ``n_heads=1``. A
step of five heads costs about 2.3 times a step of one on 1,280 features
(the product alone 3.3 times), and one head loses 2.5 to 4.9 points of ACC
(``benchmarks/README.md``). This script asks whether keeping fewer heads as
the training goes, chosen by their training loss (which needs no labels),
keeps the accuracy of the five at a lower cost.

Each estimator is fitted with its defaults (``--params`` adds others) while
every head's epoch loss and labels are recorded at every epoch; the
recording only reads, so the fits are those of the library. From the
records, rules that keep fewer heads are replayed exactly: the heads a rule
keeps train as they did in the recorded fit (the heads share no parameter,
and all see the same mini-batches), the library's stopping rule
(:class:`~skentropy._estimators._training.TrainingPolicy`) reads the
lowest loss of the heads still trained, and the kept head with the lowest
loss at the stop gives the labels. A rule that would train longer than the
recorded fit ends at its last epoch (counted in the ``beyond`` column).
Rules:

- ``one head``: each head alone from the start (the mean over the heads);
- ``race E``: all heads until the warm-up plus E epochs, then the one with
  the lowest loss;
- ``halve k@E1,1@E2``: the best k at the warm-up plus E1 epochs, the best
  one at the warm-up plus E2.

Each rule's mean change of ACC and NMI (points) against the five heads kept
to the end, and its cost in units of a one-head fit: an epoch of n heads
costs 1 + ``--step-cost`` · (n − 1) epochs of one (0.325 measured on the
1,280-d files: 5.5 against 2.4 ms per step).

Usage, from the repository root::

    .venv/bin/python benchmarks/head_selection.py                 # 12 cells
    .venv/bin/python benchmarks/head_selection.py --files none --digits
"""

import argparse
import copy
import json
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from long_tail import ESTIMATORS, sources
from sklearn.metrics import normalized_mutual_info_score
from table2 import DATA_DIR, PREPS

import skentropy
from skentropy._estimators import _shallow
from skentropy._estimators._training import TrainingPolicy
from skentropy.metrics import clustering_accuracy


def record_fit(estimator, X):
    """Fit ``estimator`` on X; the policy and every epoch's head losses and labels."""
    record = {}

    class RecordingPolicy(TrainingPolicy):
        def __init__(self, run, **kwargs):
            super().__init__(run, **kwargs)
            record["policy"] = copy.deepcopy(self)  # as a new training starts
            record["epochs"] = []

    run_epoch = _shallow.ShallowTrainer._run_epoch

    def recording_run_epoch(trainer, model, data, loss, scale):
        losses = run_epoch(trainer, model, data, loss, scale)
        labels = [
            trainer._log_probs(head, data.X).argmax(dim=1).cpu().numpy()
            for head in model.heads
        ]
        record["epochs"].append((np.asarray(losses, dtype=float), np.stack(labels)))
        return losses

    with (
        mock.patch.object(_shallow, "TrainingPolicy", RecordingPolicy),
        mock.patch.object(_shallow.ShallowTrainer, "_run_epoch", recording_run_epoch),
    ):
        estimator.fit(X)
    return record


def replay(record, rule, step_cost):
    """Labels, cost (epochs of one head) and whether it ran out of records.

    ``rule`` is (the heads trained from the start, ``keep``), and
    ``keep(epoch, alive, losses)`` gives the heads kept after an epoch.
    """
    alive, keep = rule
    policy = copy.deepcopy(record["policy"])
    cost = 0.0
    for epoch, (losses, labels) in enumerate(record["epochs"]):
        policy.begin_epoch()
        cost += 1 + step_cost * (len(alive) - 1)
        stopped = policy.end_epoch(min(losses[head] for head in alive))
        best = min(alive, key=lambda head: losses[head])
        if stopped:
            return labels[best], cost, False
        alive = keep(epoch, alive, losses)
    return labels[best], cost, len(alive) < len(record["epochs"][0][0])


def rules(record, race_epochs, halvings):
    """Name → (heads trained from the start, keep function) of each rule."""
    warmup = record["policy"].warmup_epochs
    heads = list(range(len(record["epochs"][0][0])))

    def unchanged(epoch, alive, losses):
        return alive

    def best(alive, losses, k):
        return sorted(alive, key=lambda head: losses[head])[:k]

    found = {f"one head (head {head})": ([head], unchanged) for head in heads}
    found["five heads"] = (heads, unchanged)
    for extra in race_epochs:

        def race(epoch, alive, losses, extra=extra):
            return best(alive, losses, 1) if epoch + 1 == warmup + extra else alive

        found[f"race {extra}"] = (heads, race)
    for k, first, second in halvings:

        def halve(epoch, alive, losses, k=k, first=first, second=second):
            if epoch + 1 == warmup + first:
                return best(alive, losses, k)
            if epoch + 1 == warmup + second:
                return best(alive, losses, 1)
            return alive

        found[f"halve {k}@{first},1@{second}"] = (heads, halve)
    return found


def scores(y, labels):
    return clustering_accuracy(y, labels), normalized_mutual_info_score(y, labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=["all"])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--digits", action="store_true")
    parser.add_argument("--prep", default="raw,std,l2")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    parser.add_argument("--params", type=json.loads, default={})
    parser.add_argument("--race-epochs", nargs="+", type=int, default=[0, 5, 10])
    parser.add_argument(
        "--halvings",
        nargs="+",
        default=["2:5:15", "3:3:12"],
        help="k:E1:E2, the best k heads at the warm-up + E1 epochs, one at + E2",
    )
    parser.add_argument("--step-cost", type=float, default=0.325)
    args = parser.parse_args(argv)
    halvings = [tuple(int(v) for v in spec.split(":")) for spec in args.halvings]
    torch.set_num_threads(1)
    # rule → estimator → list of (ΔACC, ΔNMI, cost over one head's, beyond)
    rows = {}
    n_fits = 0
    for stem, X_raw, y in sources(args):
        for prep in args.prep.split(","):
            X = np.asarray(PREPS[prep][1](X_raw), dtype=np.float32)
            for name in args.estimators:
                for seed in args.seeds:
                    estimator = getattr(skentropy, name)(
                        n_clusters=len(np.unique(y)), random_state=seed, **args.params
                    )
                    record = record_fit(estimator, X)
                    n_fits += 1
                    found = rules(record, args.race_epochs, halvings)
                    results = {
                        rule_name: replay(record, rule, args.step_cost)
                        for rule_name, rule in found.items()
                    }
                    if not np.array_equal(results["five heads"][0], estimator.labels_):
                        raise AssertionError("the replay of the fit lost its labels")
                    acc5, nmi5 = scores(y, results["five heads"][0])
                    singles = [r for rule, r in results.items() if "one head" in rule]
                    one_cost = np.mean([cost for _, cost, _ in singles])
                    merged = {
                        "one head": (
                            np.mean([scores(y, labels) for labels, _, _ in singles], 0),
                            one_cost,
                            any(beyond for _, _, beyond in singles),
                        )
                    }
                    for rule, (labels, cost, beyond) in results.items():
                        if "one head" not in rule:
                            merged[rule] = (scores(y, labels), cost, beyond)
                    for rule, ((acc, nmi), cost, beyond) in merged.items():
                        rows.setdefault(rule, {}).setdefault(name, []).append(
                            (acc - acc5, nmi - nmi5, cost / one_cost, beyond)
                        )
                    print(
                        f"{stem} ({prep}) {name} seed {seed}: ACC {acc5:.3f}",
                        flush=True,
                    )
    print(f"\n### {n_fits} fits: change against five heads kept to the end\n")
    header = ["rule"] + [
        f"{name}: ΔACC / ΔNMI, cost, beyond" for name in args.estimators
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for rule, by_name in rows.items():
        cells = [rule]
        for name in args.estimators:
            values = np.array(by_name[name], dtype=float)
            mean = values.mean(axis=0)
            cells.append(
                f"{100 * mean[0]:+.1f} / {100 * mean[1]:+.1f}, {mean[2]:.2f}, "
                f"{int(values[:, 3].sum())}"
            )
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
