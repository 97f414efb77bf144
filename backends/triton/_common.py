"""Shared by the Triton kernels: tensor preparation, launch sizing, autotune configs, and
the jit helpers more than one op uses (the linear-recurrence scan, tanh, sigmoid).

Dtypes: kernels load the input dtype (float32 or bfloat16), compute and carry state in
float32, and store in the output pointer's dtype."""

import torch
import triton
import triton.language as tl

from backends.triton import interpreted

next_power_of_2 = triton.next_power_of_2
cdiv = triton.cdiv


def contiguous(*tensors):
    """Each tensor (or None) contiguous, detached from autograd (kernels read raw memory)."""
    return tuple(None if t is None else t.detach().contiguous() for t in tensors)


def sm_count(device) -> int:
    """Streaming multiprocessors of a CUDA device; 1 under the interpreter, so shape
    heuristics that depend on filling the GPU pick the form for a small machine."""
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def configs(*options, num_warps=(4,), num_stages=(2,), interpreter=None):
    """triton.Config for each dict of block sizes x num_warps x num_stages. Under the
    interpreter one config only, ``interpreter`` (default: the first options): autotuning
    there would time every config for nothing, and the interpreter runs a scan's combine
    per element in Python, so small blocks keep the tests quick."""
    if interpreted():
        return [triton.Config(dict(interpreter or options[0]))]
    return [triton.Config(dict(o), num_warps=w, num_stages=s) for o in options for w in num_warps for s in num_stages]


@triton.jit
def linear_combine(a1, b1, a2, b2):
    """Compose two steps of h -> a h + b: first (a1, b1), then (a2, b2)."""
    return a1 * a2, a2 * b1 + b2


@triton.jit
def linear_scan(a, b, carry):
    """States of h_t = a_t h_{t-1} + b_t along axis 0 of a tile, entering with ``carry``.
    a, b: [BLOCK_T, BLOCK_D] float32 (padding steps a = 1, b = 0); carry: [BLOCK_D]."""
    prod, acc = tl.associative_scan((a, b), 0, linear_combine)
    return acc + prod * carry[None, :]


@triton.jit
def row(x, rows, i):
    """Row ``i`` of a tile x [BLOCK_T, BLOCK_D] whose row indices are ``rows`` [BLOCK_T]."""
    return tl.sum(tl.where(rows[:, None] == i, x, 0.0), axis=0)


@triton.jit
def tanh(x):
    """tanh through one exp of a non-positive argument: no overflow, +-1 at +-inf."""
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def sigmoid(x):
    """1 / (1 + exp(-x)) through one exp of a non-positive argument."""
    e = tl.exp(-tl.abs(x))
    return tl.where(x < 0, e / (1.0 + e), 1.0 / (1.0 + e))
