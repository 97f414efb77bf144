"""Shared plumbing of the numba_cpu kernels: zero-copy views between torch and NumPy."""

import numpy as np
import torch


def as_array(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU tensor (copied only if it is not contiguous)."""
    return t.detach().contiguous().numpy()


def optional_array(t, shape, dtype=np.float32) -> tuple[np.ndarray, bool]:
    """(array, present): a zero array of ``shape`` stands in for a None tensor."""
    if t is None:
        return np.zeros(shape, dtype=dtype), False
    return as_array(t), True
