"""Deep mode: a feature network trained with the heads, through skorch.

Kept apart from the estimators, as imbalanced-learn keeps keras apart: the
estimators import this package only when they are given a ``module`` (or
predict with a fitted network), and skorch stays an optional dependency
(``pip install "skentropy[deep]"``). Without skorch, :class:`DeepTrainer`
is a placeholder that raises an ImportError with the install hint.

- ``skentropy._deep._net``: the skorch net, its module and its criterion;
- ``skentropy._deep._trainer``: :class:`DeepTrainer`, the trainer of deep
  mode (see ``skentropy._estimators._training`` for the interface).
"""

try:
    import skorch  # noqa: F401
except ImportError:

    class DeepTrainer:
        """Placeholder of the deep trainer: skorch is not installed."""

        def __init__(self, estimator):
            raise ImportError(
                "Deep mode (module=...) trains the network with skorch, which "
                'is not installed: pip install "skentropy[deep]" (or pip '
                "install skorch)."
            )

else:
    from skentropy._deep._trainer import DeepTrainer

__all__ = ["DeepTrainer"]
