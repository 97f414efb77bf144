"""stackformer's own invariants: halting by stack mass, the step limit, the mass
bookkeeping, work per token that does not grow with the sequence, and its thinking in a
short learning run (the generic tests are in tests/test_models.py)."""

from __future__ import annotations

import torch

import backends
import models
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
    assert per_token[0] == per_token[1] == {"banked_attention": 2 * 2, "stack_step": 2}
    assert shapes[0] == shapes[1]


def test_learns_and_reports_its_thinking():
    """The generic learning task (next token = current + 1 mod 16), 40 Adam steps; prints
    the mean number of stack steps a token took at the start and at the end."""
    cfg = models.config("stackformer", **dict(TINY, vocab_size=16))
    model = models.build(cfg, TORCH)
    seq = (torch.arange(4)[:, None] + torch.arange(17)[None]) % 16  # [4, 17]
    x, y = seq[:, :-1], seq[:, 1:]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses, steps = [], []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model.logits(model(x)[0]).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        steps.append(model.last_steps.float().mean().item())
    print(f"\nstackformer short run: loss {losses[0]:.3f} -> {losses[-1]:.3f}; mean stack steps per token "
          f"{steps[0]:.2f} (first step) -> {steps[-1]:.2f} (last), {sum(steps) / len(steps):.2f} over the run "
          f"(max_steps={cfg.max_steps})")
    assert losses[-1] < 0.67 * losses[0]
    assert all(1 <= s <= cfg.max_steps for s in steps)
