# Set-up and checks for a fresh machine that has only python3 (3.11) and make.
#
#   make demo   install into .venv and run the digits comparison
#   make test   install into .venv, lint, and run the test suite
#   make docs   install into .venv and build docs/_build/html
#
# The install is redone only when pyproject.toml is newer than the stamp file.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.skentropy-installed
# Installed before the project so that pip never resolves a plain `torch`
# (which would pull the CUDA build); the project only declares torch>=2.4.
TORCH ?= torch==2.13.0
LINT_PATHS := skentropy tests benchmarks examples

.PHONY: venv demo test lint docs clean distclean

venv: $(STAMP)

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --upgrade pip
	$(VENV_PYTHON) -m pip install "$(TORCH)"
	$(VENV_PYTHON) -m pip install -e ".[test,docs]"
	touch $(STAMP)

demo: venv
	$(VENV_PYTHON) examples/compare_digits.py

lint: venv
	$(VENV_PYTHON) -m ruff check $(LINT_PATHS)

test: lint
	$(VENV_PYTHON) -m pytest

clean:
	rm -rf build dist *.egg-info skentropy.egg-info .pytest_cache .ruff_cache \
		.hypothesis docs/_build docs/auto_examples docs/gen_modules
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# The documentation: runs every gallery example and fails on any warning,
# including a broken reference to skentropy's own API. Offline: no
# intersphinx, no downloads. Output in docs/_build/html. (The test suite also
# builds it, in tests/test_docs.py.)
docs: venv
	OMP_NUM_THREADS=1 MPLBACKEND=Agg $(VENV_PYTHON) -m sphinx -W --keep-going \
		-b html docs docs/_build/html
