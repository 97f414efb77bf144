"""Shared by the Triton kernels: tensor preparation, launch sizing, autotune configs, and
the jit helpers more than one op uses (the linear-recurrence scan, tanh, sigmoid).

Dtypes: kernels load the input dtype (float32 or bfloat16), compute and carry state in
float32, and store in the output pointer's dtype."""

import contextlib

import torch
import triton
import triton.language as tl

from backends.triton import interpreted

next_power_of_2 = triton.next_power_of_2
cdiv = triton.cdiv


def contiguous(*tensors):
    """Each tensor (or None) contiguous, detached from autograd (kernels read raw memory)."""
    return tuple(None if t is None else t.detach().contiguous() for t in tensors)


_ASSUMED_SMS: list[int | None] = [None]  # set by assume_sm_count


@contextlib.contextmanager
def assume_sm_count(count: int):
    """Launchers choose as on a GPU with ``count`` SMs, whatever the tensors' device: how
    the ahead-of-time compile (bench/gpu_compile) replays a launcher on meta tensors for
    an H100 (132 SMs) or an A100 (108) on a machine without a GPU."""
    _ASSUMED_SMS[0] = count
    try:
        yield
    finally:
        _ASSUMED_SMS[0] = None


def sm_count(device) -> int:
    """Streaming multiprocessors of a CUDA device; 1 under the interpreter, so shape
    heuristics that depend on filling the GPU pick the form for a small machine."""
    if _ASSUMED_SMS[0] is not None:
        return _ASSUMED_SMS[0]
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def configs(*options, num_warps=(4,), num_stages=(2,), interpreter=None):
    """triton.Config for each dict of block sizes x num_warps x num_stages (a dict with
    its own "num_warps" keeps it). Under the interpreter one config only, ``interpreter``
    (default: the first options, without num_warps): autotuning there would time every
    config for nothing, and the interpreter runs a scan's combine per element in Python,
    so small blocks keep the tests quick."""
    if interpreted():
        return [triton.Config({k: v for k, v in (interpreter or options[0]).items() if k != "num_warps"})]
    return [triton.Config({k: v for k, v in o.items() if k != "num_warps"}, num_warps=w, num_stages=s)
            for o in options for w in ((o["num_warps"],) if "num_warps" in o else num_warps) for s in num_stages]


SEQUENTIAL_MAX_T = 32  # up to this many steps a time tile would be mostly padding
CHANNELS_PER_SM = 1024  # B*D at which one channel per thread alone fills an SM with work


# Recurrences over [B, T, D] (parallel_scan, gated_update): time tiles x channel blocks
# for the chunked form, channel blocks for the sequential form; autotuned per shape.
CHUNKED_CONFIGS = configs(dict(BLOCK_T=64, BLOCK_D=32), dict(BLOCK_T=32, BLOCK_D=32), dict(BLOCK_T=128, BLOCK_D=16),
                          dict(BLOCK_T=64, BLOCK_D=64), num_warps=(4,), num_stages=(2, 3),
                          interpreter=dict(BLOCK_T=16, BLOCK_D=8))
SEQUENTIAL_CONFIGS = configs(dict(BLOCK_D=256), dict(BLOCK_D=128), dict(BLOCK_D=512), num_warps=(4,), num_stages=(3,),
                             interpreter=dict(BLOCK_D=8))
RECURRENCE_KEY = ["B", "T", "D"]


def sequential_form(B, T, D, device) -> bool:
    """For a recurrence over [B, T, D]: step through time with the state in registers
    (True), or scan tiles of time (False)? Stepping wins for short sequences, and when
    the B*D channels alone fill the GPU (a scan's extra work then buys nothing)."""
    return T <= SEQUENTIAL_MAX_T or B * D >= CHANNELS_PER_SM * sm_count(device)


def channel_grid(B, D):
    """One program per (batch, block of BLOCK_D channels), flattened on axis 0."""
    return lambda meta: (B * cdiv(D, meta["BLOCK_D"]),)


@triton.jit
def channels(T, D, BLOCK_D: tl.constexpr):
    """Under channel_grid: (batch index, channel offsets [BLOCK_D], channel mask, and the
    int64 offset of the batch row in a [B, T, D] tensor)."""
    nd = tl.cdiv(D, BLOCK_D)
    pid = tl.program_id(0)
    d = (pid % nd) * BLOCK_D + tl.arange(0, BLOCK_D)
    pb = pid // nd
    return pb, d, d < D, pb.to(tl.int64) * T * D


@triton.jit
def time_tile(base, t, d, dmask, T, D):
    """Offsets [BLOCK_T, BLOCK_D] of times t [BLOCK_T] and channels d [BLOCK_D] in a
    [B, T, D] tensor from ``base`` (the batch row's start, int64), and their mask."""
    off = base + t[:, None].to(tl.int64) * D + d[None, :]
    return off, ((t >= 0) & (t < T))[:, None] & dmask[None, :]


@triton.jit
def initial_state(h0, pb, d, dmask, D, HAS_H0: tl.constexpr):
    """Row pb of h0 [B, D] at channels d, in float32; zeros when there is no h0."""
    state = tl.zeros(d.shape, dtype=tl.float32)
    if HAS_H0:
        state = tl.load(h0 + pb * D + d, mask=dmask, other=0.0).to(tl.float32)
    return state


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
    """1 - 2 / (exp(2x) + 1): exp overflowing to inf still gives 1, and -inf gives -1."""
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)


@triton.jit
def sigmoid(x):
    """1 / (1 + exp(-x)): exp overflowing to inf gives 0."""
    return 1.0 / (1.0 + tl.exp(-x))
