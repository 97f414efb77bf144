# Two commands do all the set-up on a fresh machine with Python >= 3.11 and pip:
#   make run    the main job (creates .venv and installs on first use)
#   make test   the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arsenal-installed

.PHONY: run test install clean

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

clean:
	rm -rf $(VENV) out .asv .hypothesis
