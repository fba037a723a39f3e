"""Atomic fits: a fit that does not finish leaves the estimator as it was.

``fit`` and ``partial_fit`` of every estimator run inside :func:`atomic_fit`,
as a database runs a transaction: if anything inside raises — bad input found
late, a failing network, a ``KeyboardInterrupt`` (Ctrl-C) at any point of
the training — every attribute of the estimator is restored to its value
before the call, so an unfitted estimator stays unfitted (``predict`` raises
:class:`~sklearn.exceptions.NotFittedError`) and a fitted one keeps its
previous model bit for bit (``n_features_in_``, ``feature_names_in_``, the
heads, the network, the optimizer's state, the random state of
``partial_fit``).

The fitted state is copied (:func:`copy.deepcopy`) before the call, because
some of it is trained in place (the network ``net_`` of deep mode, the
random state that successive ``partial_fit`` calls draw from). The
parameters of ``__init__`` are not copied: a fit never changes them.
"""

import contextlib
import copy


@contextlib.contextmanager
def atomic_fit(estimator):
    """Restore every attribute of ``estimator`` if the block raises.

    Any exception, ``KeyboardInterrupt`` included, is re-raised after the
    restore.
    """
    parameters = estimator.get_params(deep=False)
    saved = {
        name: value if name in parameters else copy.deepcopy(value)
        for name, value in vars(estimator).items()
    }
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise
