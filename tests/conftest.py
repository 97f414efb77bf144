"""Test configuration: the GPU backends run on the CPU (Triton's interpreter, Numba's
CUDA simulator) unless a GPU is present. The variables must be set before import."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


def pytest_addoption(parser):
    parser.addoption("--strict-backends", action="store_true", default=os.environ.get("ARSENAL_STRICT") == "1",
                     help="fail, rather than skip, pairs whose backend is unavailable here")
