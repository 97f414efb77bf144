"""Shared by the torch backend: bf16 inputs are computed in float32 (the contract:
bf16 loads, float32 arithmetic and state); float64 stays float64."""

import torch

ALL_DTYPES = (torch.float64, torch.float32, torch.bfloat16)


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def upcast(*tensors):
    """Each tensor (or None) in its working dtype."""
    return tuple(None if t is None else t.to(working_dtype(t.dtype)) for t in tensors)
