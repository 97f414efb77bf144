# Two commands do all the set-up on a fresh machine with Python >= 3.11 and pip:
#   make run    the main job (creates .venv and installs on first use)
#   make test   the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arsenal-installed

.PHONY: run test install bench-ci gpu gpu-dry gpu-stack-dry gpu-stack-test clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -c constraints.txt torch
	$(PY) -m pip install -c constraints.txt -e ".[all]"
	touch $(STAMP)

# arsenal run ends by writing out/report.html and printing its path
run: $(STAMP)
	$(VENV)/bin/arsenal run

test: $(STAMP)
	$(PY) -m pytest

# CI's benchmark steps: the asv suite once as a smoke test (stable subset, CPU backends),
# then this commit against its parent (bench/regress/__main__.py: exit 1 when a pair is more
# than 1.5x slower, significantly, in every round and again in new processes).
bench-ci: $(STAMP)
	$(VENV)/bin/asv machine --yes
	ARSENAL_SUITE=stable ARSENAL_NAMES=torch,numba_cpu $(VENV)/bin/asv run --python=same --quick --dry-run --show-stderr
	$(PY) -m bench.regress --base HEAD~1

# GPU validation (bench/gpu.py, README "GPU validation"): on a CUDA machine, with that
# machine's own Python, torch and triton and no virtual environment; the wheels carried in
# .whl/ (scripts/fetch_gpu_wheels.sh) that it lacks go to .gpu-site/. Results, log and
# report go to results/gpu/<date>-<gpu>/. GPU_ARGS passes options (--op parallel_scan).
GPU_PYTHON ?= python3
gpu:
	$(GPU_PYTHON) -m bench.gpu $(GPU_ARGS)

# The same driver on the CPU, into out/gpu-dry/: first every triton and numba_cuda kernel
# compiled ahead of time for sm_90 and sm_80 (arsenal gpu-compile, its simulators off: it
# fails on a kernel that does not compile, spills or cannot launch), then Triton's
# interpreter and Numba's CUDA simulator on tiny cases.
gpu-dry: $(STAMP)
	TRITON_INTERPRET=1 NUMBA_ENABLE_CUDASIM=1 $(PY) -m bench.gpu --dry $(GPU_ARGS)

# The same dry run under the lent GPU machines' stack (Python 3.12, torch 2.11, triton 3.6,
# numba-cuda, NumPy 2.5) in .venv-gpu-stack/: scripts/gpu_stack_dry.sh says why and what.
gpu-stack-dry:
	scripts/gpu_stack_dry.sh $(GPU_ARGS)

# The same, then the test suite under that stack (CI runs this one).
gpu-stack-test:
	scripts/gpu_stack_dry.sh --tests $(GPU_ARGS)

clean:
	rm -rf $(VENV) .venv-gpu-stack out .asv .hypothesis
