"""stackformer's own invariants: halting by stack mass, the step limit, the mass
bookkeeping (embeddings and memories), a pop restoring the memories a push saved, the
shared bank pool, the per-token decay, work per token that does not grow with the
sequence, the thinking summary and bad config values (the generic tests, a short
learning run of every test config included, are in tests/test_models.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import backends
import models
from models.stackformer import flatten_banks, thinking_summary, unflatten_banks
from tests.model_params import tokens

TORCH = backends.resolve("torch", "cpu")
TINY = dict(models.FAMILIES["stackformer"].test_configs[0][1])


def _build(**over):
    cfg = models.config("stackformer", **dict(TINY, **over))
    return cfg, models.build(cfg, TORCH)


def test_halts_by_mass_threshold_and_pads_take_no_step():
    cfg, model = _build(pop_bias=8.0)  # pops almost everything at once
    toks = tokens(cfg, T=8)
    mask = torch.ones_like(toks, dtype=torch.bool)
    mask[1, 5:] = False
    _, _, aux = model.think(toks, mask=mask)
    assert aux["steps"].shape == (2, 8)
    assert (aux["steps"][mask] == 1).all() and aux["halted"][mask].all()
    assert (aux["left_mass"][mask] < cfg.halt_mass).all()
    assert (aux["steps"][~mask] == 0).all() and not aux["halted"][~mask].any()
    model(toks)
    assert torch.equal(model.last_steps, aux["steps"].masked_fill(~mask, 1))


def test_default_init_halts_before_the_limit():
    cfg, model = _build(max_steps=6)
    model(tokens(cfg, T=8))
    aux = model.last_aux
    assert aux["halted"].all() and (aux["steps"] < cfg.max_steps).all()


def test_step_limit_caps_a_stack_that_keeps_its_mass():
    cfg, model = _build(pop_bias=-6.0, max_steps=2)  # pushes: the mass only grows
    _, _, aux = model.think(tokens(cfg, T=6))
    assert (aux["steps"] == 2).all() and not aux["halted"].any()
    assert (aux["left_mass"] >= cfg.halt_mass).all()


def test_unreachable_threshold_stops_at_the_limit_and_says_so():
    cfg, model = _build(halt_mass=0.0, max_steps=4)  # total mass is never below 0
    _, _, aux = model.think(tokens(cfg, T=6))
    assert (aux["steps"] == cfg.max_steps).all() and not aux["halted"].any()


def test_mass_bookkeeping():
    """Popped + left + dropped = 1 (the embedding) + pushed, for every token, also on a
    one-slot stack where pushes drop mass off the bottom."""
    for over in (dict(halt_mass=0.0, max_steps=4, pop_bias=0.0), dict(stack_depth=1, pop_bias=0.0, halt_mass=0.0)):
        cfg, model = _build(**over)
        _, _, aux = model.think(tokens(cfg, T=6))
        went_in = 1.0 + aux["pushed_mass"]
        came_out = aux["popped_mass"] + aux["left_mass"] + aux["dropped_mass"]
        assert torch.allclose(came_out, went_in, atol=1e-5), (came_out - went_in).abs().max()
        assert (aux["popped_mass"] > 0).all() and (aux["left_mass"] > 0).all()
    assert (aux["dropped_mass"] > 0).all()


class CountingOps:
    """An OpTable that counts the calls of every op."""

    def __init__(self, ops):
        self._ops, self.calls = ops, {}

    def __getattr__(self, name):
        target = getattr(self._ops, name)
        if name not in backends.OPS:
            return target

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return target(*args, **kwargs)
        return counted


def _shapes(state):
    return [tuple(t.shape) for bank in state["banks"] for t in bank]


def test_work_per_token_does_not_grow_with_length():
    cfg, model = _build(halt_mass=0.0, max_steps=2, n_layers=2)  # a fixed number of steps per token
    per_token, shapes = [], []
    for T in (4, 12):
        model.ops = CountingOps(TORCH)
        _, state = model(tokens(cfg, T=T))
        per_token.append({op: n / T for op, n in model.ops.calls.items()})
        shapes.append(_shapes(state))
    # two layers a step on the shared pool; the embedding and the memory stack a step
    assert per_token[0] == per_token[1] == {"banked_attention": 2 * 2, "stack_step": 2 * 2}
    assert shapes[0] == shapes[1]


class BankOps(CountingOps):
    """All-torch ops, except banked_attention: it returns v and the banks plus ``add``, so
    the memories count the core layer calls that built them (add=1), or stay as they
    were (add=0)."""

    def __init__(self, ops, add: float):
        super().__init__(ops)
        self.add = add

    def __getattr__(self, name):
        if name != "banked_attention":
            return super().__getattr__(name)

        def fake(q, k, v, read, write, decay, state):
            return v, tuple(t + self.add for t in state)
        return fake


class Schedule(nn.Module):
    """Action logits by step: (push, pop, pop) over and over, hard (probabilities 1 and ~0)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, y):
        logits = [30.0, 0.0, -30.0] if self.calls % 3 == 0 else [-30.0, 0.0, 30.0]
        self.calls += 1
        return y.new_tensor(logits).expand(y.shape[0], 3)


def _memories(model, toks, state):
    _, out = model(toks, state)
    return flatten_banks(out["banks"])


def test_a_pop_restores_the_memories_a_push_saved():
    """Push, pop, pop on one layer whose core adds 1 to the banks: step 1 processes M0 to
    M0 + 1 and pushes, step 2 processes the pushed copy to M0 + 2 and pops it, step 3
    processes the restored M0 + 1 to M0 + 2 again and pops it: the next token gets
    M0 + 2. With one carried state the steps stack up to M0 + 3."""
    handed = {}
    for memory_stack in (True, False):
        cfg, model = _build(n_layers=1, max_steps=3, memory_stack=memory_stack)
        model.ops, model.act = BankOps(TORCH, add=1.0), Schedule()
        B = 2
        m0 = torch.randn(B, cfg.memory_size, generator=torch.Generator().manual_seed(1))
        state = {"banks": unflatten_banks(m0, cfg)}
        _, _, aux = model.think(tokens(cfg, B=B, T=1), state)
        assert (aux["steps"] == 3).all() and aux["halted"].all()
        handed[memory_stack] = _memories(model, tokens(cfg, B=B, T=1), state) - m0
    torch.testing.assert_close(handed[True], torch.full_like(handed[True], 2.0))
    torch.testing.assert_close(handed[False], torch.full_like(handed[False], 3.0))


def test_memory_stack_changes_the_carried_memories_with_real_ops():
    """The same weights and tokens, the push-pop-pop schedule, the real banked attention:
    the memories handed on differ between the memory stack and one carried state."""
    out = {}
    for memory_stack in (True, False):
        cfg, model = _build(memory_stack=memory_stack)
        model.act = Schedule()
        out[memory_stack] = _memories(model, tokens(cfg, T=3), None)
    assert not torch.allclose(out[True], out[False], atol=1e-4)


def test_memory_bookkeeping_matches_the_embeddings():
    """With a core that leaves the banks as they are, every memory item on the stack is
    the carried M0, so the handed memories (the mass-weighted mean of what popped and
    what is left) are M0 exactly when the memory weights sum to the embedding's
    normaliser; padding hands M0 on unchanged too."""
    cfg, model = _build(halt_mass=0.0, max_steps=3, pop_bias=0.0)
    model.ops = BankOps(TORCH, add=0.0)
    m0 = torch.randn(2, cfg.memory_size, generator=torch.Generator().manual_seed(2))
    toks = tokens(cfg, T=4)
    mask = torch.ones_like(toks, dtype=torch.bool)
    mask[1, 2:] = False
    _, out, aux = model.think(toks, {"banks": unflatten_banks(m0, cfg)}, mask)
    torch.testing.assert_close(flatten_banks(out["banks"]), m0, rtol=1e-5, atol=1e-5)
    went_in = 1.0 + aux["pushed_mass"]
    came_out = aux["popped_mass"] + aux["left_mass"] + aux["dropped_mass"]
    assert torch.allclose(came_out, went_in, atol=1e-5)


def test_shared_pool_is_one_state_read_and_written_by_every_layer():
    calls = {}
    for scope in ("shared", "layer"):
        cfg, model = _build(n_layers=2, bank_scope=scope, halt_mass=0.0, max_steps=1)
        model.ops = BankOps(TORCH, add=1.0)
        m = _memories(model, tokens(cfg, T=1), None)
        calls[scope] = (len(unflatten_banks(m, cfg)), m.unique().tolist())
    # shared: one pool written by both layers (+2); layer: two pools, each written once (+1)
    assert calls == {"shared": (1, [2.0]), "layer": (2, [1.0])}


def test_decay_is_predicted_per_token():
    """token_decay: the op gets [B, T, H, N] decay logits that depend on the token (once
    the map has learned anything), and the map's weight gets a gradient; without it, the
    static [H, N] parameter."""
    seen = []

    class Spy(CountingOps):
        def __getattr__(self, name):
            fn = super().__getattr__(name)
            if name != "banked_attention":
                return fn

            def spy(q, k, v, r, w, decay, state):
                seen.append(decay.detach().clone())
                return fn(q, k, v, r, w, decay, state)
            return spy

    for token_decay in (True, False):
        seen.clear()
        cfg, model = _build(token_decay=token_decay, n_layers=1, halt_mass=0.0, max_steps=2)
        layer = model.block.core[0]
        if token_decay:
            with torch.no_grad():
                layer.decay_map.weight.normal_()
        model.ops = Spy(TORCH)
        h, _ = model(tokens(cfg, T=3))  # a decay acts on banks that hold something
        h.sum().backward()
        if token_decay:
            assert seen[0].shape == (2, 1, cfg.n_heads, cfg.n_banks)
            assert not torch.allclose(seen[0][0], seen[0][1])
            assert layer.decay_map.weight.grad.abs().sum() > 0
        else:
            assert seen[0].shape == (cfg.n_heads, cfg.n_banks) and layer.decay_map is None
        assert layer.decay_logits.grad.abs().sum() > 0


def test_thinking_summary():
    cfg, model = _build(max_steps=3)
    toks = tokens(cfg, T=5)
    mask = torch.ones_like(toks, dtype=torch.bool)
    mask[0, 3:] = False
    model(toks, mask=mask)
    summary = model.thinking(mask)
    aux = model.last_aux
    assert summary["tokens"] == 8 and sum(summary["steps_hist"]) == 8 and len(summary["steps_hist"]) == 4
    assert summary["steps_hist"][0] == 0  # padding is left out
    assert summary["steps_mean"] == pytest.approx(aux["steps"][mask].double().mean().item())
    assert summary["popped_mass"] == pytest.approx(aux["popped_mass"][mask].double().mean().item())
    everything = thinking_summary(aux, cfg.max_steps)
    assert everything["tokens"] == 10 and everything["steps_hist"][0] == 2
    with pytest.raises(ValueError, match="stackformer thinking_summary: argument 'mask' expected shape"):
        thinking_summary(aux, cfg.max_steps, mask[:, :2])


@pytest.mark.parametrize("field, value, expected", [
    ("bank_scope", "global", "expected one of 'shared', 'layer'"),
    ("memory_stack", "yes", "expected a bool"),
    ("token_decay", 1, "expected a bool"),
    ("d_core", 7, "expected a multiple of n_heads=2"),
])
def test_bad_config_values(field, value, expected):
    with pytest.raises(ValueError, match=rf"stackformer config: field '{field}' {expected}"):
        models.config("stackformer", **{field: value})


def test_layer_pools_on_the_memory_stack_chunked_equals_one_pass():
    """The combination the family's test configs leave out (they are all on, all off):
    per-layer pools on the memory stack, fed in pieces with the state carried."""
    cfg, model = _build(bank_scope="layer")
    toks = tokens(cfg, T=7)
    whole, _ = model(toks)
    first, state = model(toks[:, :3])
    rest, _ = model(toks[:, 3:], state)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, rtol=1e-5, atol=1e-6)
    assert len(state["banks"]) == cfg.n_layers


@pytest.mark.parametrize("mix", ["torch", "numba_cpu"])
def test_checkpointed_tokens_give_the_same_loss_and_gradients(mix):
    """checkpoint_tokens recomputes each token's thinking in the backward: the same loss,
    gradients and thinking record as keeping the whole graph (registry ops included)."""
    if mix == "numba_cpu":
        pytest.importorskip("numba")
    ops = backends.resolve({"default": "torch", "banked_attention": mix, "stack_step": mix}, "cpu")
    cfg = models.config("stackformer", **TINY)
    plain = models.build(cfg, ops)
    ckpt = models.build(models.config("stackformer", **TINY, checkpoint_tokens=True), ops)
    ckpt.load_state_dict(plain.state_dict())
    x = tokens(cfg, T=6)
    grads, steps = [], []
    for model in (plain, ckpt):
        hidden, _ = model(x)
        hidden.square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        steps.append(model.last_steps)
    assert torch.equal(steps[0], steps[1])
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6, msg=name)
