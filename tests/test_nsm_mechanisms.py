"""The NSM's mechanisms (issue 19 part 2): a cost per token that does not grow with T and is
bounded by c (S D + D^2); every gate x projector x within-chunk path causal and equal in
chunks and in one pass; the linear within-chunk path equal to reading its states formed
explicitly; the NTM's location addressing; the communication weights; the chunk step
(one aligned chunk, fixed shapes) equal to the forward; a short learning run per test config."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import backends
import models
from models.nsm_memory import NTMemory
from models.nsm_projectors import StateReader
from tests.model_params import tokens

TORCH = backends.resolve("torch", "cpu")
CONFIGS = dict(models.FAMILIES["nsm"].test_configs)
GATES, PROJECTORS, PATHS = ("gru", "lstm", "seed"), ("direct", "attention", "hybrid"), ("linear", "gated")

# FLOPs are 2 per multiply-add (FlopCounterMode counts matrix products: mm, bmm, addmm).
# A layer's multiply-adds per token, in units of S D + D^2: the SwiGLU's 8 D^2; the gate's
# W_in and W_h (2 G S D^2 a chunk, G <= 4) spread over chunk >= S tokens, <= 8 D^2; the
# projector's query, value, mix and output maps, <= 5 D^2, and its dot products and sums
# against the states and within the chunk, <= 6 S D for chunk <= S <= D; routing 2 S D; the
# memory's heads and communication once per chunk, <= 4 D^2. About 32 units: c = 64 FLOPs.
C_FLOPS = 64


def _per_token_flops(cfg, T):
    """FLOPs of one forward of T tokens from the state a first chunk left, per token."""
    model = models.build(cfg, TORCH)
    toks = tokens(cfg, B=1, T=cfg.chunk + T)
    with torch.no_grad():
        _, state = model(toks[:, :cfg.chunk])
        with FlopCounterMode(display=False) as counter:
            model(toks[:, cfg.chunk:], state)
    return counter.get_total_flops() / T


@pytest.mark.parametrize("over", [dict(), dict(projector="hybrid", gate="lstm"), dict(within_chunk="gated"),
                                  dict(variant="memory", communication=True, projector="attention", gate="seed")])
def test_cost_per_token_is_constant_in_T_and_bounded(over):
    S, D = 8, 16
    cfg = models.config("nsm", d_model=D, n_states=S, chunk=S, n_layers=2, n_heads=2, mem_slots=4, **over)
    short, long = _per_token_flops(cfg, 2 * S), _per_token_flops(cfg, 8 * S)
    assert short == pytest.approx(long, rel=1e-12), "the cost per token grows with T"
    bound = cfg.n_layers * C_FLOPS * (S * D + D * D)
    assert long <= bound, f"{long:.0f} FLOPs a token > {C_FLOPS} (S D + D^2) x {cfg.n_layers} layers = {bound}"


def _pieces(model, toks, bounds):
    parts, state = [], None
    for lo, hi in bounds:
        out, state = model(toks[:, lo:hi], state)
        parts.append(out)
    return torch.cat(parts, 1)


@pytest.mark.parametrize("gate, projector, path", list(itertools.product(GATES, PROJECTORS, PATHS)))
def test_every_gate_projector_and_path_is_causal_and_chunks_equal_one_pass(gate, projector, path):
    cfg = models.config("nsm", **dict(CONFIGS["simple"], gate=gate, projector=projector, within_chunk=path,
                                      state_norm=gate == "seed", state_residual=gate == "lstm"))
    model = models.build(cfg, TORCH)
    toks = tokens(cfg, T=11)
    with torch.no_grad():
        whole, _ = model(toks)
        assert torch.allclose(_pieces(model, toks, ((0, 3), (3, 4), (4, 11))), whole, atol=1e-5)
        assert torch.allclose(_pieces(model, toks, [(t, t + 1) for t in range(11)]), whole, atol=1e-5)
        changed = toks.clone()
        changed[:, 6] = (changed[:, 6] + 1) % cfg.vocab_size
        after, _ = model(changed)
    assert torch.equal(after[:, :6], whole[:, :6])
    assert not torch.allclose(after[:, 6:], whole[:, 6:])


@pytest.mark.parametrize("projector", PROJECTORS)
def test_linear_path_reads_the_states_it_never_forms(projector):
    """reader(u, h, w, p) == reader(u, the per-token states h + sum_{t' <= t} w_t' p_t')."""
    g = torch.Generator().manual_seed(1)
    B, n, L, S, D = 2, 3, 5, 4, 8
    reader = StateReader(projector, D).double()
    u, p = torch.randn(B, n, L, D, generator=g).double(), torch.randn(B, n, L, D, generator=g).double()
    h = torch.randn(B, n, S, D, generator=g).double()
    w = torch.softmax(torch.randn(B, n, L, S, generator=g).double(), -1)
    formed = h[:, :, None] + torch.cumsum(w[..., None] * p[:, :, :, None], dim=2)  # [B, n, L, S, D]
    assert torch.allclose(reader(u, h, w, p), reader(u, formed), atol=1e-12)


def test_ntm_location_addressing():
    """With g = 0 the head leaves content aside: a one-hot shift of +1 moves the previous
    weighting one row down (circularly), and sharpening by a large gamma keeps its peak."""
    D, S, M = 4, 2, 5
    g = torch.Generator().manual_seed(2)
    memory = NTMemory(D, S, M)
    mem, key = torch.randn(1, M, D, generator=g), torch.randn(1, S, D, generator=g)
    prev = torch.softmax(torch.tensor([[[2.0, 0.5, 0.0, -1.0, 0.3], [0.0, 0.1, -0.5, 1.5, 0.2]]]), -1)
    big = 60.0
    shift_plus = torch.tensor([-big, -big, big])  # logits of the shifts -1, 0, +1
    scalars = torch.cat([torch.zeros(1, S, 1), torch.full((1, S, 1), -big), torch.full((1, S, 1), -big),
                         shift_plus.expand(1, S, 3)], -1)  # beta, g, gamma (1 + softplus(-60) = 1), shift
    w = memory.address(mem, key, scalars, prev)
    assert torch.allclose(w, prev.roll(1, -1), atol=1e-5)
    sharp = scalars.clone()
    sharp[..., 2] = big
    w = memory.address(mem, key, sharp, prev)
    peak = prev.roll(1, -1).argmax(-1)
    assert torch.allclose(w.gather(-1, peak[..., None]), torch.ones(()), atol=1e-4)
    content = scalars.clone()
    content[..., 1] = big  # g = 1: content only, no shift, gamma = 1 + softplus(0)
    content[..., 2] = 0.0
    content[..., 3:6] = torch.tensor([-big, big, -big])
    expected = torch.softmax(torch.nn.functional.softplus(torch.zeros(())) *
                             torch.nn.functional.cosine_similarity(key[:, :, None], mem[:, None], dim=-1), -1)
    gamma = 1 + torch.nn.functional.softplus(torch.zeros(()))
    assert torch.allclose(memory.address(mem, key, content, prev), torch.softmax(gamma * expected.log(), -1),
                          atol=1e-5)


def test_memory_heads_start_on_their_own_rows_and_move():
    cfg, = [models.config("nsm", **CONFIGS["memory"])]
    model = models.build(cfg, TORCH)
    start = model.layers[0].initial(2)
    assert torch.equal(start["w_write"][0].argmax(-1), torch.arange(cfg.n_states) % cfg.mem_slots)
    with torch.no_grad():
        _, state = model(tokens(cfg, T=2 * cfg.chunk))
    layer = state["layers"][0]
    assert not torch.allclose(layer["w_write"], start["w_write"])
    assert torch.allclose(layer["w_read"].sum(-1), torch.ones(()), atol=1e-5)


def test_communication_weights_are_recorded_per_commit():
    cfg = models.config("nsm", **CONFIGS["hybrid"])
    model = models.build(cfg, TORCH)
    toks = tokens(cfg, T=10)
    (att,) = [a for a in model.communication_weights(toks) if a is not None]
    assert att.shape == (2, 10 // cfg.chunk, cfg.n_heads, cfg.n_states, cfg.n_states)
    assert torch.allclose(att.sum(-1), torch.ones(()), atol=1e-6)
    (none,) = [a for a in model.communication_weights(toks[:, :cfg.chunk - 1]) if a is not None]
    assert none.shape == (2, 0, cfg.n_heads, cfg.n_states, cfg.n_states)  # no chunk completed
    plain = models.build(models.config("nsm", **CONFIGS["simple"]), TORCH)
    assert plain.communication_weights(toks) == [None]


@pytest.mark.parametrize("cid", ["simple", "memory"])
def test_chunk_step_is_the_forward_of_one_chunk(cid):
    cfg = models.config("nsm", **CONFIGS[cid])
    model = models.build(cfg, TORCH)
    toks = tokens(cfg, T=3 * cfg.chunk)
    with torch.no_grad():
        whole, _ = model(toks)
        layers, parts = model.initial_layers(2), []
        for c in range(3):
            out, layers = model.chunk_step(toks[:, c * cfg.chunk:(c + 1) * cfg.chunk], layers)
            parts.append(out)
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-5)
    with pytest.raises(ValueError, match=r"nsm: chunk_step argument 'tokens' expected \[B, chunk=4\]"):
        model.chunk_step(toks[:, :3], layers)
    hybrid = models.build(models.config("nsm", **CONFIGS["hybrid"]), TORCH)
    with pytest.raises(ValueError, match="nsm: chunk_step expected an NSM-only model"):
        hybrid.chunk_step(toks[:, :4], None)


@pytest.mark.parametrize("cid", list(CONFIGS))
def test_short_learning_run_lowers_the_loss(cid):
    """40 Adam steps on a repeating 5-token pattern (the next token is predictable from the
    previous ones): the LM loss falls by more than a third."""
    cfg = models.config("nsm", **CONFIGS[cid])
    model = models.build(cfg, TORCH)
    pattern = tokens(cfg, B=4, T=5, seed=3)
    seq = pattern.repeat(1, 4)  # [4, 20]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        hidden, _ = model(seq[:, :-1])
        loss = torch.nn.functional.cross_entropy(model.logits(hidden).flatten(0, 1), seq[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.66 * losses[0], f"{cid}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
