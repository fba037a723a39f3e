"""Sphinx configuration for the skentropy documentation."""

import skentropy

project = "skentropy"
author = "skentropy developers"
release = getattr(skentropy, "__version__", "0.1.0.dev0")

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

autosummary_generate = True
numpydoc_show_class_members = False
exclude_patterns = ["_build"]

html_theme = "pydata_sphinx_theme"
