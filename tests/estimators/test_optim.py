"""The shallow trainer's optimizer: torch's fused Adam and SGD steps, no dynamo."""

import subprocess
import sys
import textwrap

import pytest
import torch

from skentropy._estimators._optim import HeadsOptimizer

from helpers import ESTIMATORS

TORCH_CLASSES = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def make_parameters(dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(5, 10, 64), (5, 10), (3,)]
    return [
        torch.randn(shape, generator=generator, dtype=dtype).requires_grad_()
        for shape in shapes
    ]


def set_gradients(parameters, step, skip=None):
    """Seeded gradients; parameter ``skip`` gets none (it is not stepped)."""
    generator = torch.Generator().manual_seed(100 + step)
    for index, parameter in enumerate(parameters):
        parameter.grad = (
            None
            if index == skip
            else torch.randn(
                parameter.shape, generator=generator, dtype=parameter.dtype
            )
        )


@pytest.mark.parametrize("name", ["adam", "sgd"])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_steps_are_those_of_the_fused_torch_optimizer(name, weight_decay, dtype):
    ours, theirs = make_parameters(dtype), make_parameters(dtype)
    optimizer = HeadsOptimizer(ours, name, lr=0.05, weight_decay=weight_decay)
    reference = TORCH_CLASSES[name](
        theirs, lr=0.05, weight_decay=weight_decay, fused=True
    )
    for step in range(6):
        skip = 2 if step in (1, 2) else None  # the last parameter starts late
        set_gradients(ours, step, skip)
        set_gradients(theirs, step, skip)
        optimizer.step()
        reference.step()
        for mine, its in zip(ours, theirs, strict=True):
            assert torch.equal(mine, its)
        optimizer.zero_grad()
        reference.zero_grad()
        assert all(parameter.grad is None for parameter in ours)
    saved = {
        index: {key: value.numpy() for key, value in state.items()}
        for index, state in reference.state_dict()["state"].items()
    }
    assert saved.keys() == optimizer.state_arrays().keys()
    for index, arrays in optimizer.state_arrays().items():
        assert arrays.keys() == saved[index].keys()
        for key, value in arrays.items():
            assert (value == saved[index][key]).all(), (index, key)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saved_state_resumes_the_same_steps(dtype):
    continued = make_parameters(dtype)
    optimizer = HeadsOptimizer(continued, "adam", lr=0.05, weight_decay=1e-3)
    for step in range(3):
        set_gradients(continued, step)
        optimizer.step()
    resumed = [parameter.detach().clone().requires_grad_() for parameter in continued]
    again = HeadsOptimizer(resumed, "adam", lr=0.05, weight_decay=1e-3)
    again.load_state_arrays(optimizer.state_arrays())
    assert again.state[0]["step"].dtype == torch.float32
    assert again.state[0]["exp_avg"].dtype == dtype
    for step in range(3, 6):
        for parameters, stepper in ((continued, optimizer), (resumed, again)):
            set_gradients(parameters, step)
            stepper.step()
    for mine, its in zip(continued, resumed, strict=True):
        assert torch.equal(mine, its)


def test_a_step_without_gradients_changes_nothing():
    parameters = make_parameters(torch.float32)
    before = [parameter.detach().clone() for parameter in parameters]
    optimizer = HeadsOptimizer(parameters, "adam", lr=0.05, weight_decay=0.0)
    optimizer.step()
    assert optimizer.state == {}
    for parameter, value in zip(parameters, before, strict=True):
        assert torch.equal(parameter, value)


def test_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        HeadsOptimizer(make_parameters(torch.float32), "rmsprop", 0.1, 0.0)


@pytest.mark.slow  # a fresh interpreter
def test_fits_on_features_do_not_import_torch_dynamo():
    # torch.optim's classes import torch._dynamo on their first call (1.2 to
    # 2.5 s); the shallow estimators' fits, steps and predictions do not.
    names = [Estimator.__name__ for Estimator in ESTIMATORS]
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import skentropy

        X = np.random.default_rng(0).normal(size=(300, 8))
        for name in {names!r}:
            for optimizer in ("adam", "sgd"):
                Estimator = getattr(skentropy, name)
                params = dict(n_clusters=3, max_iter=3, random_state=0)
                if name != "SeCuClustering":
                    params["optimizer"] = optimizer
                model = Estimator(**params).fit(X)
                model.partial_fit(X[:100])
                model.predict(X)
                model.score(X)
        assert "torch._dynamo" not in sys.modules, "torch._dynamo was imported"
        """
    )
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
