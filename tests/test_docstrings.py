"""Docstrings: every public class and function documents its signature.

As scikit-learn's ``test_docstring_parameters.py``: numpydoc's validation
(:func:`numpydoc.validate.validate`) of every public class (its parameters
against ``__init__``), function and method of skentropy must report no
missing, unknown or misordered parameter and no missing docstring; and where
a parameter's type line gives a default (``default=...``), it must be the
signature's. Public means: listed in a public module's ``__all__`` (or, for
a module without one, a name without a leading underscore), defined in
skentropy; methods are the public ones that skentropy defines (not those a
class inherits from scikit-learn or torch). The docstrings are checked as
the user sees them, with the shared texts of
``skentropy._estimators._docstrings`` filled in.
"""

import ast
import importlib
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")
from numpydoc.docscrape import NumpyDocString  # noqa: E402

PUBLIC_MODULES = [
    "skentropy",
    "skentropy.augment",
    "skentropy.dask",
    "skentropy.feature_extraction",
    "skentropy.losses",
    "skentropy.metrics",
    "skentropy.model_selection",
    "skentropy.nets",
    "skentropy.plotting",
    "skentropy.pseudo_labels",
]
# numpydoc error codes checked: parameters missing from the docstring (PR01),
# documented but not in the signature (PR02), in another order (PR03), and a
# missing docstring (GL08).
CHECKED_ERRORS = {"PR01", "PR02", "PR03", "GL08"}
# Objects exempt from these checks, by import path, each with its reason.
# None so far: fix the docstring rather than add an entry here.
EXEMPT = {}


def _is_ours(obj):
    return getattr(obj, "__module__", "").startswith("skentropy")


def _public_objects():
    """Import path of every public class, function and method, once each."""
    seen, paths = set(), []

    def add(path, obj):
        if id(obj) not in seen:
            seen.add(id(obj))
            paths.append(path)

    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [name for name in vars(module) if not name.startswith("_")]
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not _is_ours(obj):
                continue
            add(f"{module_name}.{name}", obj)
            if inspect.isclass(obj):
                for method_name, method in inspect.getmembers(obj):
                    if method_name.startswith("_") or not inspect.isfunction(method):
                        continue
                    if _is_ours(method):
                        add(f"{module_name}.{name}.{method_name}", method)
    return paths


PUBLIC_OBJECTS = _public_objects()


def _resolve(path):
    module_name, _, rest = path.partition(".")
    obj = importlib.import_module(module_name)
    for part in rest.split("."):
        obj = getattr(obj, part)
    return obj


def test_public_objects_are_found():
    assert "skentropy.EntropyClustering" in PUBLIC_OBJECTS
    # the methods of the shared base, once
    assert sum(path.endswith(".partial_fit") for path in PUBLIC_OBJECTS) == 2
    assert "skentropy.losses.max_margin_entropy" in PUBLIC_OBJECTS
    assert "skentropy.SeCuClustering.score" in PUBLIC_OBJECTS
    assert "skentropy.model_selection.select_n_clusters" in PUBLIC_OBJECTS
    assert set(EXEMPT) <= set(PUBLIC_OBJECTS)


@pytest.mark.parametrize(
    "path", [path for path in PUBLIC_OBJECTS if path not in EXEMPT]
)
def test_docstring_parameters_match_the_signature(path):
    errors = [
        f"{code}: {message}"
        for code, message in numpydoc_validate.validate(path)["errors"]
        if code in CHECKED_ERRORS
    ]
    assert not errors, f"{path}: " + "; ".join(errors)


@pytest.mark.parametrize(
    "path", [path for path in PUBLIC_OBJECTS if path not in EXEMPT]
)
def test_documented_defaults_are_the_signature_defaults(path):
    obj = _resolve(path)
    function = obj.__init__ if inspect.isclass(obj) else obj
    signature = inspect.signature(function)
    for parameter in NumpyDocString(inspect.getdoc(obj) or "")["Parameters"]:
        _, found, default = parameter.type.rpartition("default=")
        if not found or parameter.name not in signature.parameters:
            continue
        try:
            documented = ast.literal_eval(default.strip())
        except (ValueError, SyntaxError):
            continue  # a name, e.g. default=IMAGENET_MEAN: not a literal
        actual = signature.parameters[parameter.name].default
        assert documented == actual, (
            f"{path}: {parameter.name} is documented with default={default}, "
            f"the signature has {actual!r}"
        )
