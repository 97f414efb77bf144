"""Helpers shared by the op contracts: seeded inputs and tolerance tables."""

from __future__ import annotations

import torch

from backends.registry import Tolerance, no_options  # noqa: F401  (no_options: the ops' check_options)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def randn(gen: torch.Generator, *shape) -> torch.Tensor:
    """Standard normal float64 on the CPU (inputs are drawn in float64, then cast)."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def uniform(gen: torch.Generator, lo: float, hi: float, *shape) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=torch.float64)


def place(tensors: dict, dtype: torch.dtype, device) -> dict:
    """Cast float tensors to ``dtype`` and move every tensor to ``device``."""
    out = {}
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor):
            t = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
        out[name] = t
    return out


def tolerances(f32: tuple, f32_grad: tuple, bf16: tuple = (3e-2, 3e-2), bf16_grad: tuple = (6e-2, 6e-2)) -> dict:
    """{dtype: (forward, gradient)} with float64 fixed tight; arguments are (rtol, atol)."""
    return {
        torch.float64: (Tolerance(1e-9, 1e-9), Tolerance(1e-8, 1e-8)),
        torch.float32: (Tolerance(*f32), Tolerance(*f32_grad)),
        torch.bfloat16: (Tolerance(*bf16), Tolerance(*bf16_grad)),
    }


def itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def by_mode(mode: str, forward: float, backward: float) -> float:
    """A figure for forward, backward or forward_backward (the sum)."""
    if mode == "forward":
        return forward
    if mode == "backward":
        return backward
    if mode == "forward_backward":
        return forward + backward
    raise ValueError(f"mode expected one of forward, backward, forward_backward, got {mode!r}")
