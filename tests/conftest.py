"""Test configuration: the GPU backends run on the CPU (Triton's interpreter, Numba's
CUDA simulator) unless a GPU is present. The variables must be set before import.

OpenMP's idle workers sleep at once here (OMP_WAIT_POLICY=PASSIVE, unless set): the tests
never time anything, and in one long pytest process the spinning workers of torch's and
Numba's OpenMP pools competed for the two cores after the first numba_cpu call, making
small torch calls about 10x slower (a stackformer learning test: 13-18 s alone, 172-192 s
after numba_cpu had run). The benchmarks keep the default policy (bench/timing.py)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after the OpenMP policy, which libgomp reads when it loads)

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


def pytest_addoption(parser):
    parser.addoption("--strict-backends", action="store_true", default=os.environ.get("ARSENAL_STRICT") == "1",
                     help="fail, rather than skip, pairs whose backend is unavailable here")
