"""Sphinx configuration for the skentropy documentation.

Build with ``make docs`` (or ``python -m sphinx -W -n docs docs/_build/html``).
The build is offline: no intersphinx, no downloads. It runs every gallery
example (``examples/**/plot_*.py``) and, in nitpicky mode with warnings as
errors, fails on a broken reference to skentropy's own API. References to
other projects (numpy, scikit-learn, torch, ...) are rendered as plain text.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

import skentropy  # noqa: E402

# The gallery must stay fast on a small shared machine: one torch thread.
torch.set_num_threads(1)

project = "skentropy"
author = "skentropy developers"
copyright = "skentropy developers"
release = getattr(skentropy, "__version__", "0.1.0.dev0")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "gen_modules/*.examples", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/**/*.py"]
default_role = "literal"

# -- API reference ----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": False, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Broken references ------------------------------------------------------
# Nitpicky mode reports every reference that does not resolve. Ours must
# resolve (the build runs with -W); references to other projects cannot without
# intersphinx, which would need the network, so they are ignored by pattern.
nitpicky = True
_EXTERNAL = (
    r"(numpy|np|scipy|sklearn|torch|dask|dask_ml|distributed|joblib|matplotlib"
    r"|skorch)(\..*)?"
)
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL),
    # Type words of numpydoc parameter lines.
    (r"py:.*", r"(array-like|ndarray|tensor|Tensor|estimator instance)"),
]

# -- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "skentropy"
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_prev_next": False,
}
html_static_path = []

# -- Examples gallery ---------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # Command-line scripts (`make demo`, feature extraction) are not gallery ones.
    "ignore_pattern": (
        r"(compare_digits\.py|extract_features_efficientnet\.py|__init__\.py)"
    ),
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skentropy",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skentropy": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": False,
    "show_memory": False,
    "plot_gallery": "True",
    # No sg_execution_times.rst in the source tree.
    "write_computation_times": False,
}

