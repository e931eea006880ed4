# Each target sets itself up from nothing: a virtual environment, torch first (pinned, so that nothing pulls a
# multi-GB CUDA wheel), then this package with that torch held as a constraint. `make train` installs the core
# package only; `make test` adds what the test suite imports (pytest, TensorBoard, Ray, Optuna, wandb); `make lint`
# adds ruff. Each set-up is stamped separately and reruns only when pyproject.toml or the torch choice changes, so the
# targets share one environment in any order.
#
# The torch build is a choice, not an edit. TORCH_INDEX is an extra index that pip prefers for torch (its builds
# carry a local version, +cpu or +cuXXX, which ranks above PyPI's plain one); by default PyTorch's CPU index, since
# PyPI's Linux wheel is a CUDA build of several GB. Where that index cannot be reached, pip warns and takes torch
# from its other sources. A new choice reinstalls torch:
#   make train TORCH_INDEX=https://download.pytorch.org/whl/cuXXX   # a CUDA build (pytorch.org lists the XXX)
#   make train TORCH_INDEX=                                         # whatever PyPI (or pip's configuration) gives
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PY := $(VENV)/bin/python
TORCH_CHOICE := $(VENV)/.torch-choice
CONSTRAINTS := $(VENV)/constraints.txt
BASE := $(VENV)/.ready-base
CORE := $(VENV)/.ready-core
TEST := $(VENV)/.ready-test
DEV := $(VENV)/.ready-dev

.PHONY: train test bench lint clean FORCE

# Rewritten only when TORCH or TORCH_INDEX differ from the last set-up, so that a new choice reinstalls torch.
$(TORCH_CHOICE): FORCE
	@mkdir -p $(VENV)
	@echo '$(TORCH) $(TORCH_INDEX)' | cmp -s - $@ || echo '$(TORCH) $(TORCH_INDEX)' > $@

$(BASE): $(TORCH_CHOICE)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes torch 2>/dev/null || true
	$(PY) -m pip install --quiet --no-deps $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) "$(TORCH)"
	$(PY) -m pip install --quiet "$(TORCH)"  # torch's own dependencies, from the usual index
	$(PY) -c "import torch; print('torch==' + torch.__version__)" 2>/dev/null > $(CONSTRAINTS)
	@echo "installed $$(cat $(CONSTRAINTS)) (a CUDA build carries +cuXXX)"
	touch $@

$(CORE): $(BASE) pyproject.toml
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(TEST): $(BASE) pyproject.toml
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	touch $@

$(DEV): $(BASE) pyproject.toml
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

train: $(CORE)  ## the main job: routing at 10% oversight with the default settings
	$(PY) scripts/train_policy.py $(ARGS)

test: $(TEST)  ## the full test suite
	$(PY) -m pytest -n 2 $(ARGS)

bench: $(CORE)
	$(PY) benchmarks/env_throughput.py

lint: $(DEV)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs
