"""The correctness gate of a model mix: the same weights under the mix and under
all-torch must give the same hidden states and the same gradient of every parameter
(DESIGN.md 7.8). Used by the tests (tests/test_models.py) and by `arsenal models`
before anything is timed: a mix that fails is recorded "incorrect" and never timed.
"""

from __future__ import annotations

import time

import torch

import backends
import models


def tolerance(cfg) -> float:
    """Model-level tolerance from the float32 tolerances of the ops the config uses:
    errors of a few ulps per op compound through layers and steps, so 100x the loosest
    op tolerance, normwise; at least 1e-4 (float32 matmul reassociation)."""
    tols = [t for op in models.FAMILIES[cfg.family].ops_used(cfg)
            for tol in backends.OPS[op].tolerances[torch.float32] for t in (tol.rtol, tol.atol)]
    return max([1e-4] + [100 * t for t in tols])


def close(got, want, tol) -> tuple[bool, float]:
    """Normwise: max |got - want| <= tol * (1 + max |want|); returns (ok, max error)."""
    err = (got.double() - want.double()).abs().max().item()
    return err <= tol * (1 + want.double().abs().max().item()), err


def probe_loss(model, tokens):
    """A loss that reaches every parameter: hidden states under a fixed linear weight
    plus the LM head's log-normaliser."""
    hidden, _ = model(tokens)
    ramp = torch.linspace(-1, 1, hidden.shape[-1], device=hidden.device)
    return hidden, (hidden * ramp).sum() + model.logits(hidden).logsumexp(-1).sum()


def hidden_and_grads(model, tokens):
    hidden, loss = probe_loss(model, tokens)
    model.zero_grad(set_to_none=True)
    loss.backward()
    return hidden.detach(), {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                             for n, p in model.named_parameters()}


def gate(cfg, mix, device="cpu", B: int = 2, T: int = 32, seed: int = 0) -> dict:
    """The mix against all-torch on the same weights and tokens; a record's ``gate``."""
    start = time.perf_counter()
    ref = models.build(cfg, backends.resolve("torch", device))
    model = models.build(cfg, backends.resolve(mix, device))
    model.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.vocab_size, (B, T), generator=g).to(device)
    h_ref, g_ref = hidden_and_grads(ref, tokens)
    h, grads = hidden_and_grads(model, tokens)
    tol = tolerance(cfg)
    problems, worst = [], 0.0
    ok, err = close(h, h_ref, tol)
    worst = max(worst, err)
    if not ok:
        problems.append(f"hidden: error {err:.3g} > {tol:.3g}")
    for name, want in g_ref.items():
        ok, err = close(grads[name], want, tol)
        worst = max(worst, err)
        if not ok:
            problems.append(f"grad {name}: error {err:.3g} > {tol:.3g}")
    return {"ok": not problems, "against": "torch", "case": {"B": B, "T": T}, "tolerance": tol,
            "max_error": worst, "problems": problems[:5], "seconds": time.perf_counter() - start}
