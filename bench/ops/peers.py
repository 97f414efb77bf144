"""Benchmark peers: implementations that are not backends but are timed beside them.

A peer is never used by a model; it answers "how does this compare with what a user
already has". Each adapter has the op's contract signature, computes exactly the
contract's function (it passes the same correctness gate, ``backends.check.check_pair``
with ``fn=``), and counts every conversion it needs (layout transposes, split signs)
as its own cost.

- ``torch_compile``: ``torch.compile`` of the torch backend's raw implementation, one
  specialised graph per shape (``dynamic=False``). Always available. elman_scan's torch
  backend is a Python loop over t, which the compile unrolls (its compile time and
  memory grow with T): refused above ``COMPILE_MAX_T`` steps (the log-space form
  sooner), the reason recorded. gated_update's bounded loop is traced (unrolled) up to
  64 tokens and runs eagerly inside the compiled code beyond (backends/torch/
  gated_update.py ``TRACE_MAX_T``): what torch.compile of that backend gives a user.
- ``torch_rnn``: ``torch.rnn_tanh``, the kernel behind ``torch.nn.RNN`` (cuDNN on CUDA,
  ATen's fused CPU loop elsewhere), for elman_scan's rung-0 form: with W_ih = I and no
  biases its ``h_t = tanh(W_ih x_t + W_hh h_{t-1})`` is ``tanh(u_t + R h_{t-1})``. The
  input projection by I (one [B T, D] x [D, D] product) is counted as its cost: it is
  what nn.RNN always does. The delta gate and the log-space state have no nn.RNN form.
- ``accelerated_scan``: proger's warp-shuffle CUDA scan for parallel_scan. Its layout is
  [B, D, T] with T a power of two in [32, 65536]; h0 is folded into the first token.
- ``fla``: flash-linear-attention. banked_attention with N = 1 is a gated linear
  attention with a scalar decay per head and token (``chunk_simple_gla``); the
  normaliser z rides along as an extra value column of ones. The unbounded
  gated_update is an HGRN recurrence with zero log-decay (``fused_recurrent_hgrn``).
- ``mingru``: minGRU-pytorch's log-space Heinsen scan. It needs positive gates and
  positive values, so the signed values are split into positive and negative parts
  (two scans; linearity gives h = h+ - h-); zeros in log space are a large negative
  finite number rather than -inf, whose gradient would be NaN.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import types
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from backends.ops.banked_attention import EPS as BANK_EPS


@dataclass(frozen=True)
class Peer:
    name: str
    ops: tuple[str, ...]  # ops it has an adapter for
    probe: Callable[[], str | None]  # None, or why it cannot run here
    adapter: Callable[[str], Callable]  # op -> raw callable with the op's contract signature
    devices: tuple[str, ...]  # device types it runs on when its probe passes
    dtypes: tuple[torch.dtype, ...] = (torch.float32,)
    fits: Callable[[str, dict], str | None] = field(default=lambda op, case: None)  # case-specific refusal
    description: str = ""


def _needs(module: str, pip_name: str, cuda: bool) -> Callable[[], str | None]:
    def probe():
        if importlib.util.find_spec(module) is None:
            return f"{pip_name} is not installed (pip install {pip_name})"
        if cuda and not torch.cuda.is_available():
            return f"{pip_name} runs on CUDA only and no CUDA device is present"
        return None

    return probe


def load(module: str, attr: str):
    """Import ``module.attr`` on first use (an import may build a CUDA extension: that
    happens inside the first call, so it is counted as compile time)."""
    return getattr(importlib.import_module(module), attr)


# ---------------------------------------------------------------------------
# torch_compile
# ---------------------------------------------------------------------------

def _fresh_copy(fn: Callable) -> Callable:
    """The same function over a new code object: dynamo keeps its compiled graphs on
    the code object, so each copy compiles for itself and every prepared pair (and the
    correctness gate) measures its own compile time instead of inheriting another's."""
    copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


def raise_recompile_limit() -> None:
    """Past dynamo's recompile limit (8 entries per code object) a function silently runs
    eagerly, and a timed peer would be eager code under a compiled name: each (shape, grad
    mode) of an op is its own graph, and two compiled peers of one model share the cache
    of the model's code (the stackformer's two model peers reached it on two frames). So
    raise it (named cache_size_limit in older torch, recompile_limit in newer)."""
    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), 256))


def _configure_compile() -> None:
    """``raise_recompile_limit``; and donated buffers (the compiled backward reusing saved
    activations' memory) forbid retain_graph=True, which the backward-only mode needs to
    replay one graph: turn them off (a memory, not a time, optimisation)."""
    raise_recompile_limit()
    if hasattr(torch._functorch.config, "donated_buffer"):
        torch._functorch.config.donated_buffer = False


def _torch_compile(op: str) -> Callable:
    import backends

    _configure_compile()
    return torch.compile(_fresh_copy(backends.get(op, "torch").fn), dynamic=False)


# the longest T compiled for an op whose torch backend loops over t in Python: the graph
# holds one copy of the step per t, so compile time and memory grow with T. Measured here
# (2-core CPU, loaded, forward + backward compile, B=4 D=64): elman_scan's rung-0 form
# 32 s at T=16 and 151 s at T=256 (about 0.5 s a step); the gated log-space form 147 s
# at T=16 (about 7 s a step: each step is ~40 ops of signed log-sums and a [B, D, D]
# matvec). The limits keep one compile to a few minutes here.
COMPILE_MAX_T = {"elman_scan": 256, "elman_scan/log_space": 16}


def _torch_compile_fits(op: str, case: dict) -> str | None:
    key = f"{op}/log_space" if case.get("log_space") else op
    limit = COMPILE_MAX_T.get(key)
    if limit is not None and case["T"] > limit:
        return (f"torch.compile unrolls the torch backend's loop over t ({key}: one graph copy of the step per t, "
                f"compile time and memory growing with T); compiled up to T={limit}, the case has T={case['T']}")
    return None


# ---------------------------------------------------------------------------
# torch_rnn (torch.nn.RNN's kernel)
# ---------------------------------------------------------------------------


def _torch_rnn_elman_scan(u, R, gate=None, h0=None, log_space=False):
    if gate is not None or log_space:
        raise ValueError("elman_scan[torch_rnn]: torch.nn.RNN computes h_t = tanh(u_t + R h_{t-1}) only; "
                         f"expected gate=None and log_space=False, got gate={'a tensor' if gate is not None else None}, "
                         f"log_space={log_space}")
    B, T, D = u.shape
    hx = (h0 if h0 is not None else u.new_zeros(B, D))[None]  # [1, B, D]: one layer, one direction
    eye = torch.eye(D, dtype=u.dtype, device=u.device)  # W_ih = I: x_t = u_t
    out, _ = torch.rnn_tanh(u, hx, [eye, R], has_biases=False, num_layers=1, dropout=0.0, train=torch.is_grad_enabled(),
                            bidirectional=False, batch_first=True)
    return out  # [B, T, D]


def _torch_rnn_fits(op: str, case: dict) -> str | None:
    if case.get("gate", True):
        return ("torch.nn.RNN (tanh) has no delta gate: it computes the rung-0 form h_t = tanh(u_t + R h_{t-1}), "
                "the case has a gate")
    if case.get("log_space"):
        return "torch.nn.RNN keeps its state in linear space; the case asks for the signed log-space state (log_space=True)"
    return None


# ---------------------------------------------------------------------------
# accelerated_scan
# ---------------------------------------------------------------------------


def _fold_h0(a, b, h0):
    """h_0 = a_0 h0 + b_0: an initial state becomes part of the first token."""
    if h0 is None:
        return b
    return torch.cat([b[:, :1] + a[:, :1] * h0[:, None], b[:, 1:]], dim=1)  # [B, T, D]


def _accelerated_scan_parallel_scan(a, b, h0=None):
    scan = load("accelerated_scan.warp", "scan")
    b = _fold_h0(a, b, h0)
    h = scan(a.transpose(1, 2).contiguous(), b.transpose(1, 2).contiguous())  # [B, D, T]
    return h.transpose(1, 2).contiguous()  # [B, T, D]


def _accelerated_scan_fits(op: str, case: dict) -> str | None:
    T = case["T"]
    if T < 32 or T > 65536 or T & (T - 1):
        return f"accelerated_scan needs T a power of two in [32, 65536], got T={T}"
    return None


# ---------------------------------------------------------------------------
# fla (flash-linear-attention)
# ---------------------------------------------------------------------------


def _fla_layout(fn) -> dict:
    """fla moved from head-first [B, H, T, K] to [B, T, H, K]; ask for the latter."""
    return {"head_first": False} if "head_first" in inspect.signature(fn).parameters else {}


def _fla_banked_attention(q, k, v, read_logits, write_logits, decay_logits, state=None):
    chunk_simple_gla = load("fla.ops.simple_gla", "chunk_simple_gla")
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    # N = 1: p_r = p_w = softmax over one bank (exactly 1, kept so the logits get
    # their zero gradient through the contract's own graph); gamma = lam ** p_w.
    p_r = torch.softmax(read_logits, dim=-1)  # [B, T, H, 1]
    p_w = torch.softmax(write_logits, dim=-1)  # [B, T, H, 1]
    fq = (F.elu(q) + 1.0) * p_r  # [B, T, H, Dk]
    fk = (F.elu(k) + 1.0) * p_w  # [B, T, H, Dk]
    # decay_logits [H, 1] or per token [B, T, H, 1]: [..., 0] is [H] or [B, T, H], both broadcast
    g = p_w[..., 0] * F.logsigmoid(decay_logits[..., 0])  # [B, T, H]: log gamma
    vz = torch.cat([v, v.new_ones(B, T, H, 1)], dim=-1)  # [B, T, H, Dv + 1]: the ones column carries z
    h0 = None
    if state is not None:
        S, z = state  # [B, H, 1, Dk, Dv], [B, H, 1, Dk]
        h0 = torch.cat([S[:, :, 0], z[:, :, 0, :, None]], dim=-1)  # [B, H, Dk, Dv + 1]
    o, ht = chunk_simple_gla(fq, fk, vz, g, scale=1.0, initial_state=h0, output_final_state=True,
                             **_fla_layout(chunk_simple_gla))
    o = o[..., :Dv] / (o[..., Dv:] + BANK_EPS)  # [B, T, H, Dv]
    ht = ht.to(q.dtype)
    return o, (ht[..., :Dv][:, :, None].contiguous(), ht[..., Dv][:, :, None].contiguous())


def _fla_gated_update(a, b, h0=None, bound=None):
    fused_recurrent_hgrn = load("fla.ops.hgrn", "fused_recurrent_hgrn")
    x = torch.tanh(a) * torch.sigmoid(b)  # [B, T, D]
    h, _ = fused_recurrent_hgrn(x, torch.zeros_like(x), initial_state=h0)  # log-decay 0: h_t = h_{t-1} + x_t
    return h


def _fla_fits(op: str, case: dict) -> str | None:
    if op == "banked_attention" and case["N"] != 1:
        return f"fla's gated linear attention has one memory bank per head (N = 1), the case has N={case['N']}"
    if op == "gated_update" and case.get("bound") is not None:
        return f"fla's HGRN recurrence is linear; the bounded update (bound={case['bound']}) is not"
    return None


# ---------------------------------------------------------------------------
# mingru (minGRU-pytorch)
# ---------------------------------------------------------------------------

LOG_ZERO = -1e30  # log of 0 as a finite number: exp underflows to exactly 0, gradients stay finite


def _signed_log(x, positive: bool):
    keep = x > 0 if positive else x < 0
    return torch.where(keep, x.abs().log(), torch.full_like(x, LOG_ZERO))


def _heinsen(log_a, values, h0):
    """h_t = a_t h_{t-1} + values_t in log space, values of either sign; h0 prepended
    as step -1 (minGRU's own treatment of a previous hidden state)."""
    scan = load("minGRU_pytorch.minGRU", "heinsen_associative_scan_log")
    if h0 is not None:
        values = torch.cat([h0[:, None], values], dim=1)  # [B, 1 + T, D]
        log_a = torch.cat([torch.zeros_like(log_a[:, :1]), log_a], dim=1)
    h = scan(log_a, _signed_log(values, True)) - scan(log_a, _signed_log(values, False))
    return h[:, 1:] if h0 is not None else h  # [B, T, D]


def _mingru_parallel_scan(a, b, h0=None):
    if bool((a <= 0).any()):
        raise ValueError("parallel_scan[mingru]: argument 'a' expected all gates > 0 (log-space scan), got a gate <= 0")
    return _heinsen(a.log(), b, h0)


def _mingru_gated_update(a, b, h0=None, bound=None):
    x = torch.tanh(a) * torch.sigmoid(b)  # [B, T, D]
    return _heinsen(torch.zeros_like(x), x, h0)


def _mingru_fits(op: str, case: dict) -> str | None:
    if op == "gated_update" and case.get("bound") is not None:
        return f"minGRU's scan is linear; the bounded update (bound={case['bound']}) is not"
    return None


# ---------------------------------------------------------------------------

_ADAPTERS = {
    "accelerated_scan": {"parallel_scan": _accelerated_scan_parallel_scan},
    "fla": {"banked_attention": _fla_banked_attention, "gated_update": _fla_gated_update},
    "mingru": {"parallel_scan": _mingru_parallel_scan, "gated_update": _mingru_gated_update},
}


def _table(name: str) -> Callable[[str], Callable]:
    return lambda op: _ADAPTERS[name][op]


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("torch_compile", ops=("micro_mlp", "gated_update", "logspace_matvec", "parallel_scan",
                                   "banked_attention", "stack_step", "nsm_route", "elman_scan"),
             probe=lambda: None, adapter=_torch_compile, devices=("cpu", "cuda"),
             dtypes=(torch.float32, torch.bfloat16), fits=_torch_compile_fits,
             description="torch.compile of the torch backend"),
        Peer("torch_rnn", ops=("elman_scan",), probe=lambda: None, adapter=lambda op: _torch_rnn_elman_scan,
             devices=("cpu", "cuda"), fits=_torch_rnn_fits,
             description="torch.rnn_tanh, torch.nn.RNN's kernel (cuDNN on CUDA), W_ih = I: the rung-0 form only"),
        Peer("accelerated_scan", ops=tuple(_ADAPTERS["accelerated_scan"]),
             probe=_needs("accelerated_scan", "accelerated-scan", cuda=True), adapter=_table("accelerated_scan"),
             devices=("cuda",), dtypes=(torch.float32, torch.bfloat16), fits=_accelerated_scan_fits,
             description="accelerated-scan's warp CUDA scan ([B, D, T] transposes counted)"),
        Peer("fla", ops=tuple(_ADAPTERS["fla"]), probe=_needs("fla", "flash-linear-attention", cuda=True),
             adapter=_table("fla"), devices=("cuda",), dtypes=(torch.float32, torch.bfloat16), fits=_fla_fits,
             description="flash-linear-attention: chunk_simple_gla (N = 1), fused_recurrent_hgrn (no bound)"),
        Peer("mingru", ops=tuple(_ADAPTERS["mingru"]), probe=_needs("minGRU_pytorch", "mingru-pytorch", cuda=False),
             adapter=_table("mingru"), devices=("cpu", "cuda"), fits=_mingru_fits,
             description="minGRU-pytorch's log-space Heinsen scan (signs split)"),
    )
}
