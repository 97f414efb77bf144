"""Shared blocks of the model layer: norms, the SwiGLU feedforward, the pre-norm residual
wrapper, the task heads, and ``SequenceModel``, the base every family derives from.

A family receives its kernels as an OpTable (``self.ops``) and calls them only as
``self.ops.<op>(...)``; it never imports a backend and never branches on a backend name.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.config import ModelConfig

State = Any  # a family's carried state: tensors, tuples or lists of them, or None


class RMSNorm(nn.Module):
    """x / rms(x) * g over the last axis (Zhang and Sennrich 2019)."""

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):  # [..., d]
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def swiglu_hidden(d: int) -> int:
    """The hidden size near 8/3 d used by LLaMA-style SwiGLU, rounded up to a multiple of 8."""
    return 8 * ((8 * d // 3 + 7) // 8)


class SwiGLU(nn.Module):
    """W2(silu(W1 x) * W3 x) (Shazeer 2020)."""

    def __init__(self, d: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or swiglu_hidden(d)
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)

    def forward(self, x):  # [..., d]
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def masked_mean(hidden, mask):
    """Mean over real tokens: hidden [B, T, d], mask [B, T] bool or None -> [B, d]."""
    if mask is None:
        return hidden.mean(1)
    w = mask.to(hidden.dtype).unsqueeze(-1)  # [B, T, 1]
    return (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)


class ClassifierHead(nn.Module):
    """Masked mean pool, then an MLP (LRA's classifiers)."""

    def __init__(self, d: int, n_classes: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, n_classes))

    def forward(self, hidden, mask=None):  # [B, T, d] -> [B, n_classes]
        return self.mlp(masked_mean(hidden, mask))


class TwoTowerHead(nn.Module):
    """LRA Retrieval: each document pooled alone, then MLP([x1, x2, x1*x2, x1-x2])."""

    def __init__(self, d: int, n_classes: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * d, d), nn.GELU(), nn.Linear(d, n_classes))

    def forward(self, hidden1, mask1, hidden2, mask2):  # [B, T, d] x2 -> [B, n_classes]
        x1, x2 = masked_mean(hidden1, mask1), masked_mean(hidden2, mask2)
        return self.mlp(torch.cat([x1, x2, x1 * x2, x1 - x2], dim=-1))


class StepLoop(NamedTuple):
    """What ``SequenceModel.compile_step`` compiles: ``methods``, the names of the model's
    step methods its loop over time calls (empty: none), and ``why_not``, the reason
    when there are none (a peer records it)."""

    methods: tuple[str, ...]
    why_not: str = ""


class SequenceModel(nn.Module):
    """The base of every family (DESIGN.md 7.1).

        hidden, state = model(tokens, state=None, mask=None)   # tokens [B, T] int64
        logits = model.logits(hidden)                          # tied to the embedding
        model.classify(hidden, mask); model.retrieve(h1, m1, h2, m2)   # task heads

    ``state`` carries whatever the family needs to continue the same sequences (recurrent
    states, a KV cache, memory banks), so that processing a sequence in chunks equals one
    pass. ``mask`` is True on real tokens; it drives pooling heads, attention and routing.
    Recurrent families assume right padding: a padded tail cannot reach earlier tokens.
    """

    Config: ClassVar[type[ModelConfig]] = ModelConfig
    # Tiny configs for the tests built from FAMILIES: (id, overrides).
    test_configs: ClassVar[tuple[tuple[str, dict], ...]] = (("tiny", {}),)

    def __init__(self, config: ModelConfig, ops):
        super().__init__()
        self.config = config
        self.ops = ops
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        if config.head == "classify":
            self.head = ClassifierHead(config.d_model, config.n_classes)
        elif config.head == "retrieval":
            self.head = TwoTowerHead(config.d_model, config.n_classes)
        else:
            self.head = None
        self.step_compiled = ""  # compile_step's mode once the step is compiled

    @classmethod
    def ops_used(cls, config: ModelConfig) -> tuple[str, ...]:
        """The registry ops this config calls (what a mix must provide, with gradients)."""
        return ()

    @classmethod
    def step_loop(cls, config: ModelConfig) -> StepLoop:
        """The methods this config's Python loop over time calls, each one function of
        fixed-shape tensors (DESIGN 9), or why it has none. Default: no loop (the work is
        a few calls over the whole sequence; torch.compile of the whole model is one graph)."""
        return StepLoop((), f"{config.family}: no Python loop over time (the work is a few calls over the whole "
                            "sequence); torch.compile of the whole model is one graph")

    def compile_step(self, mode: str | None = None, backend: Any = "inductor") -> SequenceModel:
        """Compile this model's step once and have its loop call it (DESIGN 9): each of
        ``step_loop(config).methods`` becomes ``torch.compile(step, dynamic=False)`` on this
        instance, so compile time is independent of T (the shapes are fixed by the config
        and the batch; another batch size compiles once more). ``mode``: torch.compile's
        mode; "reduce-overhead" captures the step in a CUDA graph on CUDA. It is not the
        default: CUDA graph trees record a separate graph for each call made while the
        outputs of earlier calls are alive, and in training every step's outputs are
        (saved for the backward), so a step looped T times a forward would be recorded T
        times, the growth with T that compiling the step avoids; where outputs die from
        call to call (decoding without a graph) it pays. Not yet timed on a GPU.
        ``backend``: torch.compile's backend, a name or a callable ("aot_eager" traces the
        same graphs without generating code: the tests' choice, seconds instead of minutes
        on a CPU). Raises ValueError where the config has no step loop, with why.
        Returns the model; ``self.step_compiled`` says the mode ("" while eager)."""
        loop = self.step_loop(self.config)
        if not loop.methods:
            raise ValueError(f"{self.config.family}: compile_step expected a config with a step loop, got none: "
                             f"{loop.why_not}")
        for name in loop.methods:
            eager = getattr(type(self), name).__get__(self)  # the bound method, not an earlier compiled one
            options = {"mode": mode} if backend == "inductor" else {}  # mode is an inductor option
            setattr(self, name, torch.compile(eager, dynamic=False, backend=backend, **options))
        self.step_compiled = mode or "default"
        return self

    def forward(self, tokens, state: State = None, mask=None):
        raise NotImplementedError

    def logits(self, hidden):  # [B, T, d] -> [B, T, vocab]
        return F.linear(hidden, self.embed.weight)

    def classify(self, hidden, mask=None):  # [B, T, d] -> [B, n_classes]
        if self.config.head != "classify":
            raise ValueError(f"{self.config.family}: classify() needs head='classify', the config has head={self.config.head!r}")
        return self.head(hidden, mask)

    def retrieve(self, hidden1, mask1, hidden2, mask2):  # -> [B, n_classes]
        if self.config.head != "retrieval":
            raise ValueError(f"{self.config.family}: retrieve() needs head='retrieval', the config has head={self.config.head!r}")
        return self.head(hidden1, mask1, hidden2, mask2)

    def check_tokens(self, tokens, state, mask):
        """Shared argument checks of forward()."""
        fam = self.config.family
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.int64:
            given = f"{tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise TypeError(f"{fam}: argument 'tokens' expected a [B, T] int64 tensor, got {given}")
        if mask is not None and (mask.shape != tokens.shape or mask.dtype != torch.bool):
            raise TypeError(f"{fam}: argument 'mask' expected a {tuple(tokens.shape)} bool tensor, "
                            f"got {tuple(mask.shape)} {mask.dtype}")
        if state is not None and not self.config.causal:
            raise ValueError(f"{fam}: argument 'state' expected None for a bidirectional config (causal=False), "
                             "got a state: a bidirectional model cannot continue a sequence in chunks")


def through_layers(layers, x, state: State, **extra):
    """Run ``x`` through residual layers that each map (x, own state, **extra) -> (x, new
    state); ``state`` is one entry per layer, or None (every layer starts from its zero
    state). Returns x and the list of new states: the carried state of a stack of
    recurrent layers."""
    new_states = []
    for layer, own in zip(layers, state if state is not None else [None] * len(layers)):
        x, own = layer(x, own, **extra)
        new_states.append(own)
    return x, new_states


def time_steps(x) -> tuple:
    """x [B, T, ...] -> T tensors [B, ...], views of one time-major copy: their strides do
    not depend on T (a compiled step guards on strides, and x.unbind(1)'s views would
    compile it again for every length), and the backward builds one gradient, not the T
    zero-filled [B, T, ...] ones of x[:, t]."""
    return x.transpose(0, 1).contiguous().unbind(0)


def detach_state(state: State) -> State:
    """The same state cut from the graph (TBPTT between chunks)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (list, tuple)):
        out = [detach_state(s) for s in state]
        return type(state)(out) if not hasattr(state, "_fields") else type(state)(*out)
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    return state
