# Set-up and checks for a fresh machine that has only python3 (3.11) and make.
#
#   make demo   install the package into .venv and run the digits comparison
#   make test   install everything CI needs into .venv, lint, run the test suite
#   make check  the edit loop: lint and the tests not marked slow (< 4 minutes)
#   make docs   install everything CI needs into .venv, build docs/_build/html
#
# Two installs, each redone only when pyproject.toml is newer than its stamp
# file: the runtime one (torch, then the package and its dependencies), which
# is all that `make demo` needs, and on top of it the test and docs extras.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.skentropy-runtime
DEV_STAMP := $(VENV)/.skentropy-dev
# Installed before the project so that pip never resolves a plain `torch`
# (which would pull the CUDA build); the project only declares torch>=2.4.
TORCH ?= torch==2.13.0
LINT_PATHS := skentropy tests benchmarks examples

.PHONY: venv demo test check lint docs clean distclean

# Everything CI needs: the runtime install plus the test and docs extras.
venv: $(DEV_STAMP)

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --upgrade pip
	$(VENV_PYTHON) -m pip install "$(TORCH)"
	$(VENV_PYTHON) -m pip install -e .
	touch $(RUNTIME_STAMP)

$(DEV_STAMP): $(RUNTIME_STAMP)
	$(VENV_PYTHON) -m pip install -e ".[test,docs]"
	touch $(DEV_STAMP)

demo: $(RUNTIME_STAMP)
	$(VENV_PYTHON) examples/compare_digits.py

lint: venv
	$(VENV_PYTHON) -m ruff check $(LINT_PATHS)
	$(VENV_PYTHON) -m ruff format --check $(LINT_PATHS)

# The suite on every core: one pytest worker per core (each runs torch on one
# thread, see tests/conftest.py); PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto

test: lint
	$(VENV_PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

# The edit loop: the same, without the tests marked slow (the docs build, the
# comparisons with K-means at default settings, the long trainings).
check: lint
	$(VENV_PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow"

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
