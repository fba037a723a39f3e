"""The optimizer of the shallow trainer: torch's Adam and SGD, called directly.

:class:`HeadsOptimizer` makes the steps of ``torch.optim.Adam(fused=True)``
and ``torch.optim.SGD(fused=True)`` through their functional forms
(``torch.optim.adam.adam``, ``torch.optim.sgd.sgd``: the same kernels, the
same values) and keeps the per-parameter state itself. The classes'
methods are wrapped by ``torch._disable_dynamo``, which imports
``torch._dynamo`` the first time one of them runs in a process: 1.2 to
2.5 s on a 2-core machine, more than a whole fit of the digits data, paid
by the first fit of every script, notebook and joblib worker. The
functional forms do not import it.

Deep mode keeps the classes: skorch builds its optimizer from them.
"""

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

# torch.optim.Adam's defaults.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class HeadsOptimizer:
    """Adam or plain SGD over ``parameters``, as ``torch.optim``'s fused classes.

    Parameters
    ----------
    parameters : iterable of torch.Tensor
        The trained tensors (the heads' parameters), in a fixed order: the
        saved state is keyed by position, as ``Optimizer.state_dict`` keys it.

    name : {"adam", "sgd"}
        ``torch.optim.Adam`` (betas 0.9 / 0.999, eps 1e-8, L2 weight decay
        added to the gradient) or ``torch.optim.SGD`` without momentum.

    lr : float
        The learning rate.

    weight_decay : float
        The L2 penalty's weight, as in the classes.
    """

    def __init__(self, parameters, name, lr, weight_decay):
        if name not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {name!r}.")
        self.parameters = list(parameters)
        self.name = name
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.state = {}
        """Position of a parameter → its Adam state: ``step`` (a float32
        scalar on the parameter's device, as the fused class keeps it),
        ``exp_avg`` and ``exp_avg_sq``. SGD without momentum has none."""

    def zero_grad(self):
        """Drop the gradients (``Optimizer.zero_grad(set_to_none=True)``)."""
        for parameter in self.parameters:
            parameter.grad = None

    @torch.no_grad()
    def step(self):
        """One step on the parameters that have a gradient, as the classes' step."""
        indices = [i for i, p in enumerate(self.parameters) if p.grad is not None]
        if not indices:
            return
        parameters = [self.parameters[i] for i in indices]
        gradients = [parameter.grad for parameter in parameters]
        if self.name == "sgd":
            sgd(
                parameters,
                gradients,
                [None] * len(parameters),
                fused=True,
                weight_decay=self.weight_decay,
                momentum=0.0,
                lr=self.lr,
                dampening=0.0,
                nesterov=False,
                maximize=False,
            )
            return
        states = [self._adam_state(i) for i in indices]
        adam(
            parameters,
            gradients,
            [state["exp_avg"] for state in states],
            [state["exp_avg_sq"] for state in states],
            [],
            [state["step"] for state in states],
            fused=True,
            amsgrad=False,
            beta1=ADAM_BETAS[0],
            beta2=ADAM_BETAS[1],
            lr=self.lr,
            weight_decay=self.weight_decay,
            eps=ADAM_EPS,
            maximize=False,
        )

    def _adam_state(self, index):
        """The Adam state of parameter ``index``, zeros before its first step."""
        if index not in self.state:
            parameter = self.parameters[index]
            self.state[index] = {
                "step": torch.zeros((), dtype=torch.float32, device=parameter.device),
                "exp_avg": torch.zeros_like(parameter),
                "exp_avg_sq": torch.zeros_like(parameter),
            }
        return self.state[index]

    def state_arrays(self):
        """The per-parameter state as numpy arrays, keyed by position."""
        return {
            index: {key: value.cpu().numpy() for key, value in state.items()}
            for index, state in self.state.items()
        }

    def load_state_arrays(self, saved):
        """Continue from :meth:`state_arrays` of an optimizer of the same name.

        Each tensor goes to its parameter's device; the moments take its
        dtype, the step count stays float32.
        """
        self.state = {}
        for index, arrays in saved.items():
            parameter = self.parameters[index]
            self.state[index] = {
                key: torch.tensor(
                    value,
                    dtype=torch.float32 if key == "step" else parameter.dtype,
                    device=parameter.device,
                )
                for key, value in arrays.items()
            }
