"""Devices, dtypes and random generators of torch, as the estimators use them.

Randomness follows one rule (see :ref:`reproducibility`): a numpy
``RandomState`` from ``random_state`` seeds local :class:`torch.Generator`
objects, and where a library draws from torch's global generator (skorch's
module initialization, dropout), that generator is forked and seeded, never
seeded globally.
"""

from contextlib import contextmanager

import numpy as np
import torch


def resolve_device(device):
    """The :class:`torch.device` of a ``device`` parameter ("auto", "cpu", "cuda")."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available.")
    return torch.device(device)


def torch_dtype(dtype):
    """The torch dtype that data of numpy dtype ``dtype`` trains in."""
    return torch.float32 if dtype == np.float32 else torch.float64


def torch_generator(random_state):
    """A CPU torch generator seeded from a numpy RandomState."""
    seed = random_state.randint(np.iinfo(np.int32).max)
    return torch.Generator().manual_seed(seed)


@contextmanager
def seeded_rng(seed, device):
    """Fork torch's global RNG and seed it, for what skorch and modules draw.

    skorch initializes the module's parameters, and dropout draws its masks,
    from torch's global generators: forking them (the CUDA one of ``device``
    too) and seeding the fork keeps training reproducible without seeding
    them globally.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def without_negative_strides(array):
    """``array``, copied in C order if one of its strides is negative.

    torch cannot wrap numpy views such as ``X[::-1]``; every other array,
    memory maps included, is returned as it is (no copy).
    """
    if isinstance(array, np.ndarray) and any(s < 0 for s in array.strides):
        return np.ascontiguousarray(array)
    return array
