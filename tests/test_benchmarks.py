"""The benchmark scripts run: a small configuration of each one that is cheap.

Benchmarks measure; they are not timed here. This only guards the scripts
against breaking when the library changes (a benchmark that crashes after an
hour of fitting is found late), on data that needs no file of ``../shared``.
"""

import contextlib
import importlib
import io
import sys
import warnings
from pathlib import Path

import pytest
import torch

# Each test runs a benchmark script end to end: outside make check.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script, *arguments):
    """The standard output of ``benchmarks/<script>`` run with ``arguments``.

    The script's ``main`` runs in this process, as ``python <script>
    arguments`` would run it: a subprocess would import torch and
    scikit-learn again, 4 to 5 s of a 2-core machine each time. The scripts
    import each other by name (``from table2 import ...``), so their folder
    goes on ``sys.path`` for the import; their warning filters and torch's
    thread count are restored afterwards.
    """
    folder = str(ROOT / "benchmarks")
    sys.path.insert(0, folder)
    n_threads = torch.get_num_threads()
    output = io.StringIO()
    try:
        module = importlib.import_module(Path(script).stem)
        with warnings.catch_warnings(), contextlib.redirect_stdout(output):
            module.main(list(arguments))
    finally:
        sys.path.remove(folder)
        torch.set_num_threads(n_threads)
    return output.getvalue()


def test_model_selection_benchmark_prints_its_summary():
    output = run_benchmark(
        "model_selection.py",
        *("--data", "digits", "--max-samples", "300", "--candidates", "3", "4"),
        *("--gammas", "1e-4", "1e-3", "--n-repeats", "1", "--seeds", "1"),
        *("--param", "max_iter=10", "--n-classes", "4"),
    )
    assert "| K | score: stability − reference" in output
    summary = output.split("### Summary")[1]
    assert "| digits |" in summary
    assert "stability − reference" in summary and "stability alone" in summary


def test_gamma_units_benchmark_prints_its_summary(tmp_path):
    saved = tmp_path / "cells.json"
    output = run_benchmark(
        "gamma_units.py",
        *("--files", "none", "--digits", "--gammas", "0.02", "0.3"),
        *("--estimators", "MaxMarginEntropyClustering"),
        *("--params", '{"max_iter": 5, "n_heads": 1}', "--json", str(saved)),
    )
    assert "| MaxMarginEntropyClustering |" in output
    summary = output.split("### Spread across cells")[1]
    for unit in ("reference-norm", "rms-norm", "per-feature", "effective-dim"):
        assert f"| {unit} |" in summary
    again = run_benchmark("gamma_units.py", "--summarize", str(saved))
    assert "| digits (std) | 64 |" in again


def test_learning_rate_benchmark_prints_its_summary(tmp_path):
    saved = tmp_path / "cells.json"
    output = run_benchmark(
        "learning_rate.py",
        *("--inputs", "digits:16/std", "--estimators", "MaxMarginEntropyClustering"),
        *("--params", '{"max_iter": 5, "n_heads": 1}', "--json", str(saved)),
    )
    assert "### digits:16/std: 1797 × 16" in output
    assert "| MaxMarginEntropyClustering/auto |" in output
    again = run_benchmark("learning_rate.py", "--summarize", str(saved))
    assert "lr=auto: 1 pairs" in again


def test_long_tail_benchmark_prints_its_summary(tmp_path):
    saved = tmp_path / "cells.json"
    output = run_benchmark(
        "long_tail.py",
        *("--files", "none", "--digits", "--prep", "std", "--ratios", "10"),
        *("--seeds", "0", "--estimators", "MaxMarginEntropyClustering"),
        *("--params", '{"max_iter": 5, "n_heads": 1, "prior": "auto"}'),
        *("--json", str(saved)),
    )
    assert "| digits (std) r=10 |" in output
    assert "### Summary over 1 cells" in output
    assert "| MaxMarginEntropyClustering |" in output.split("### Summary")[1]
    again = run_benchmark("long_tail.py", "--summarize", str(saved))
    assert "[±" in again  # the error of the estimated proportions


def test_head_selection_benchmark_replays_the_fits():
    # the script itself checks that replaying all heads gives the fit's labels
    output = run_benchmark(
        "head_selection.py",
        *("--files", "none", "--digits", "--prep", "std", "--seeds", "0"),
        *("--estimators", "MaxMarginEntropyClustering", "--race-epochs", "2"),
        *("--params", '{"max_iter": 12}'),
    )
    assert "### 1 fits: change against five heads kept to the end" in output
    assert "| five heads | +0.0 / +0.0, " in output
    for rule in ("one head", "race 2", "halve 2@5,1@15"):
        assert f"| {rule} | " in output


def test_profile_benchmark_finds_every_part():
    output = run_benchmark(
        "profile_fit.py",
        *("--only", "EntropyClustering", "--params", '{"max_iter": 3}'),
    )
    header, _, *rows = [line for line in output.splitlines() if line.startswith("|")]
    parts = [cell.strip() for cell in header.strip("|").split("|")][5:]
    assert parts[0] == "pseudo-labels" and parts[-1] == "other"
    for row in rows:
        shares = [float(cell.strip(" %")) for cell in row.strip("|").split("|")[5:]]
        assert sum(shares) == pytest.approx(100, abs=len(shares))  # rounding
        # each named part was found in the profile (a renamed function reads 0)
        assert all(share > 0 for share in shares[:-2])


def test_augmentations_benchmark_ranks_the_flip_below_no_flip():
    if not (ROOT.parent / "shared" / "data" / "usps.npz").exists():
        pytest.skip("needs ../shared/data/usps.npz")
    output = run_benchmark(
        "augmentations.py", "--files", "usps", "--max-images", "500", "--seeds", "1"
    )
    rows = {
        line.split("|")[1].strip(): float(line.split("|")[2])
        for line in output.splitlines()
        if line.startswith("| ") and not line.startswith("| augmentation")
    }
    default = rows["SelfAugmentation() (no flip, shift 0.1, scale 0.15)"]
    assert rows["clean"] > default > rows["SelfAugmentation(flip=0.5)"]
    assert (
        rows["SelfAugmentation(translate=0, scale=0)"]
        > rows["SelfAugmentation(flip=0.5, translate=0, scale=0)"]
    )
    assert rows["always flipped"] < rows["rotation ±20°"]


def test_fit_times_benchmark_prints_its_table():
    output = run_benchmark(
        "fit_times.py",
        *("--only", "digits", "--repeats", "1", "--params", '{"max_iter": 2}'),
        *("--methods", "Entropy", "Entropy(n_heads=1)"),
    )
    assert "| digits (standardized), 1797 × 64 |" in output
    assert "n_heads=5 / n_heads=1" in output
