"""Shared by the Numba CUDA kernels: tensors to device arrays, launch sizing, the stream,
and the small device functions more than one op uses.

On a GPU a CUDA tensor becomes a device array without a copy through
``__cuda_array_interface__`` and kernels launch on torch's current stream, so they are
ordered with the torch work around them (which also makes it safe to drop a temporary
tensor right after the launch: the caching allocator reuses memory in stream order).
Under NUMBA_ENABLE_CUDASIM=1 the tensors are CPU tensors and their NumPy views stand in:
the simulator copies each array in before a launch and back after it, so a kernel's
writes land in the tensor as they would on a device.

Kernels compute in the tensors' dtype (float32): accumulators start from the typed
constants below, because a bare Python float literal would promote the arithmetic to
float64.
"""

import contextlib
import functools
import math
import warnings

import numpy as np
import torch
from numba import cuda

from backends.numba_cuda import simulated
from backends.numba_cuda._numpy_compat import load_numba_cuda_arrays
from backends.registry import new_output

load_numba_cuda_arrays()  # before the first kernel compiles (NumPy 2.5 with numba-cuda)

SIMULATED = simulated()
BLOCK = 128  # threads per block for one-thread-per-item kernels (four warps)

ZERO = np.float32(0.0)
ONE = np.float32(1.0)


def contiguous(*tensors):
    """Each tensor (or None) detached and contiguous: kernels read raw memory."""
    return tuple(None if t is None else t.detach().contiguous() for t in tensors)


def output(shape, like: torch.Tensor) -> torch.Tensor:
    """An output that kernels fill (NaN-poisoned under tests), on ``like``'s device and dtype."""
    return new_output(shape, like.dtype, like.device)


def zeros(shape, like: torch.Tensor) -> torch.Tensor:
    """A zero-filled scratch or accumulator tensor on ``like``'s device and dtype."""
    return torch.zeros(tuple(shape), dtype=like.dtype, device=like.device)


def optional(t, like: torch.Tensor, ndim: int) -> tuple[torch.Tensor, bool]:
    """(tensor, present): a one-element zero tensor of the same rank stands in for a None
    argument, so the kernel's types stay fixed; the flag tells the kernel not to read it."""
    if t is None:
        return zeros((1,) * ndim, like), False
    return t.detach().contiguous(), True


def blocks(n: int, block: int = BLOCK) -> int:
    """Blocks of ``block`` threads that cover n items (at least one)."""
    return max(1, -(-n // block))


def _device_array(t: torch.Tensor):
    if not t.is_contiguous():
        raise ValueError(f"numba_cuda: kernels take contiguous tensors, got strides {t.stride()} for shape {tuple(t.shape)}")
    t = t.detach()
    if SIMULATED:
        return t.numpy()
    return cuda.as_cuda_array(t, sync=False)  # same stream as the launch: no host sync


@functools.lru_cache(maxsize=None)
def _external_stream(handle: int):
    return cuda.external_stream(handle)


_RECORDED: list[list | None] = [None]  # set by recorded_launches


@contextlib.contextmanager
def recorded_launches():
    """Launches are recorded, not run: the list of (kernel, grid, block, args,
    shared_bytes) that the launchers asked for (args as given: tensors, flags, scalars).
    How the ahead-of-time compile (bench/gpu_compile) learns each kernel's argument
    types and launch configuration from the launcher itself, on meta tensors."""
    _RECORDED[0] = recorded = []
    try:
        yield recorded
    finally:
        _RECORDED[0] = None


def launch(kernel, grid, block, *args, shared_bytes: int = 0) -> None:
    """kernel[grid, block](*args) on torch's current stream; tensor arguments (contiguous)
    are passed as device arrays, other arguments as they are."""
    if _RECORDED[0] is not None:
        _RECORDED[0].append((kernel, grid, block, args, shared_bytes))
        return
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), None)
    arrays = [_device_array(a) if isinstance(a, torch.Tensor) else a for a in args]
    if SIMULATED:
        # the device's IEEE arithmetic makes inf and NaN silently; NumPy scalars in the
        # simulator's threads would warn (the filter is process-wide, errstate is not)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            kernel[grid, block, 0, shared_bytes](*arrays)
        return
    with cuda.gpus[device.index if device.index is not None else torch.cuda.current_device()]:
        stream = _external_stream(torch.cuda.current_stream(device).cuda_stream)
        kernel[grid, block, stream, shared_bytes](*arrays)


@cuda.jit(cache=True)
def _sum_leading(x, out):
    """out[m] = sum_g x[g, m]: x [G, M] per-block partial sums, one thread per column."""
    m = cuda.grid(1)
    if m < out.shape[0]:
        acc = ZERO
        for g in range(x.shape[0]):
            acc += x[g, m]
        out[m] = acc


def sum_leading(partials: torch.Tensor) -> torch.Tensor:
    """partials [G, ...] -> [...]: the second stage of a two-stage reduction."""
    out = output(partials.shape[1:], partials)
    M = out.numel()
    launch(_sum_leading, blocks(M), BLOCK, partials.reshape(partials.shape[0], M), out.view(M))
    return out


@cuda.jit(device=True)
def sigmoid(x):
    """1 / (1 + exp(-x)) through one exp of a non-positive argument (no overflow)."""
    e = math.exp(-abs(x))
    if x < 0:
        return e / (ONE + e)
    return ONE / (ONE + e)


@cuda.jit(device=True)
def block_sum(part, tid):
    """Tree-sum each row of a shared array part [R, BLOCK] into part[:, 0]. Every thread of
    the block calls it, after writing its column part[:, tid]."""
    cuda.syncthreads()
    step = BLOCK // 2
    while step > 0:
        if tid < step:
            for r in range(part.shape[0]):
                part[r, tid] += part[r, tid + step]
        cuda.syncthreads()
        step //= 2
