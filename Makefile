# Two commands do all the set-up on a fresh machine with Python >= 3.11 and pip:
#   make run    the main job (creates .venv and installs on first use)
#   make test   the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arsenal-installed

.PHONY: run test install bench-ci clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -c constraints.txt torch
	$(PY) -m pip install -c constraints.txt -e ".[all]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/arsenal run

test: $(STAMP)
	$(PY) -m pytest

# CI's benchmark steps: the asv suite once as a smoke test (stable subset, CPU backends),
# then this commit against its parent (bench/regression.py: exit 1 when a pair is more
# than 1.5x slower, significantly, in every round and again in new processes).
bench-ci: $(STAMP)
	$(VENV)/bin/asv machine --yes
	ARSENAL_SUITE=stable ARSENAL_NAMES=torch,numba_cpu $(VENV)/bin/asv run --python=same --quick --dry-run --show-stderr
	$(PY) -m bench.regression --base HEAD~1

clean:
	rm -rf $(VENV) out .asv .hypothesis
