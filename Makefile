# Each target sets itself up from nothing: a virtual environment, torch first (a CPU build, pinned so that nothing
# pulls a multi-GB CUDA wheel), then this package with torch held as a constraint. Set-up reruns only when
# pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0
READY := $(VENV)/.ready

.PHONY: train test bench lint clean

$(READY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(PY) -m pip install --quiet -c $(VENV)/constraints.txt -e ".[test,ray,tensorboard,tune,dev]"
	touch $@

train: $(READY)  ## the main job: routing at 10% oversight with the default settings
	$(PY) scripts/train_policy.py $(ARGS)

test: $(READY)  ## the full test suite
	$(PY) -m pytest -n 2 $(ARGS)

bench: $(READY)
	$(PY) benchmarks/env_throughput.py

lint: $(READY)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs
