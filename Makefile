# The two commands of the README. Both create .venv and install everything on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NEUROBRIDGE_DATA ?= $(abspath ../shared/data)
export NEUROBRIDGE_DATA
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: setup demo test test-slow lint lock clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch first: the pinned CPU build installs from the local index in seconds (an unpinned torch pulls CUDA).
$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[dev,models,gpu]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/neurobridge benchmark

# Default tier: everything but `slow` tests (tests/test_docstrings.py runs every docstring example), plus
# every tutorial notebook (executed, figures drawn).
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow" --nbmake tests tutorials

test-slow: setup
	$(BIN)/python -m pytest -m slow tests

lint: setup
	$(BIN)/ruff check .

# The last set known green, for `.ci/run --locked` (pip -c): refresh it after a green `make test`.
lock: setup
	{ echo "# Versions of the last green \`make test\` ($$(date -u +%Y-%m-%d), Python $$($(BIN)/python -c 'import platform; print(platform.python_version())'))."; \
	  echo "# Used by \`.ci/run --locked\` (PIP_CONSTRAINT) to tell upstream drift from our own regressions; refresh with \`make lock\`."; \
	  $(BIN)/python -m pip list --format=freeze --exclude-editable --disable-pip-version-check; } > .ci/constraints.txt

clean:
	rm -rf $(VENV) build dist *.egg-info
