"""Training equivalence: the same seed and batches trained under a mix and under
all-torch give the same loss curve within a stated tolerance (kernels change the speed,
never the learning). Records kind="equivalence" (bench/results.py).

Training is chaotic where the model is not smooth (a relu at its kink, a saturating
bound): a difference of one rounding in a gradient, which every kernel that sums in
another order makes, flips a kink and then grows step by step under Adam. So where a
curve leaves the tolerance, the *noise floor* is measured too: all-torch again from the
same weights moved by one float32 ulp (relative 2^-23, random signs). A mix whose curve
stays within ``NOISE_FACTOR`` times the floor's distance agrees "within the noise": it
differs from all-torch no more than all-torch differs from itself.
"""

from __future__ import annotations

import math
import time

import torch

import backends
import models
from bench import results
from bench.modelbench.bench import lm_loss
from backends.mix import mix_id, parse_mix

EQUIVALENCE_TOLERANCE = 5e-3  # max |loss_mix - loss_torch| over the curve, nats per token
NOISE_FACTOR = 2.0  # "within the noise": max diff at most this times the noise floor's
ULP = 2.0 ** -23  # float32's relative spacing at 1: the floor's weight perturbation


def markov_batches(vocab: int, B: int, T: int, steps: int, seed: int = 0):
    """Batches of a first-order Markov chain with a fixed random sparse transition
    table: learnable structure, so the loss curve moves (unlike uniform noise)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(vocab, vocab, generator=g) * 3.0
    probs = torch.softmax(logits, -1)
    for _ in range(steps):
        seq = torch.empty(B, T + 1, dtype=torch.int64)
        seq[:, 0] = torch.randint(0, vocab, (B,), generator=g)
        for t in range(T):
            seq[:, t + 1] = torch.multinomial(probs[seq[:, t]], 1, generator=g)[:, 0]
        yield seq[:, :-1], seq[:, 1:]


def train_curve(config, mix, batches, device, lr: float = 3e-3, perturb_seed: int | None = None) -> list[float]:
    """Training losses; ``perturb_seed``: the weights first moved by one ulp (the floor)."""
    model = models.build(config, backends.resolve(mix, device))
    if perturb_seed is not None:
        g = torch.Generator().manual_seed(perturb_seed)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1 + ULP * torch.randint(0, 2, p.shape, generator=g).mul(2).sub(1).to(p))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for tokens, targets in batches:
        loss = lm_loss(model, tokens.to(device), targets.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def equivalence(family: str, config_id: str, overrides: dict, mix_name: str, steps: int, B: int, T: int,
                device: str = "cpu", seed: int = 0, tolerance: float = EQUIVALENCE_TOLERANCE,
                run_id: str | None = None, env: dict | None = None) -> dict:
    """The same seed and batches trained under the mix and under all-torch. ``run_id`` and
    ``env`` (bench.env.environment) stamp the record: one of each per command."""
    config = models.config(family, **dict(overrides, vocab_size=32))
    batches = list(markov_batches(config.vocab_size, B, T, steps, seed))
    t0 = time.perf_counter()
    ref = train_curve(config, "torch", batches, device)
    got = train_curve(config, parse_mix(mix_name), batches, device)
    # a loss that is not finite (training diverged) makes the comparison meaningless: not ok,
    # and the record says from which step
    bad = next((i for i, (a, b) in enumerate(zip(got, ref)) if not (math.isfinite(a) and math.isfinite(b))), None)
    diff = [abs(a - b) for a, b in zip(got, ref)]
    worst = max(diff[:bad] if bad is not None else diff, default=0.0)
    floor, floor_diff, agreement = None, None, "tolerance"
    if bad is None and worst > tolerance:
        floor = train_curve(config, "torch", batches, device, perturb_seed=seed + 1)
        finite = [abs(a - b) for a, b in zip(floor, ref) if math.isfinite(a)]
        floor_diff = max(finite, default=None)
        agreement = "noise" if floor_diff is not None and worst <= NOISE_FACTOR * floor_diff else "differs"
    elif bad is not None:
        agreement = "diverged"
    return results.new_record("equivalence", run_id=run_id or results.new_run_id(), env=env, **{
            "family": family, "config_id": config_id, "mix_id": mix_id(mix_name), "device": device, "dtype": "float32", "steps": steps, "case": {"B": B, "T": T},
            "tolerance": tolerance, "max_abs_diff": worst, "final_diff": diff[-1],
            "noise_floor": floor_diff, "noise_factor": NOISE_FACTOR, "agreement": agreement,
            "ok": agreement in ("tolerance", "noise"), "status": "ok" if bad is None else "error",
            "error": None if bad is None else f"loss not finite from step {bad} (training diverged)",
            "losses_mix": got, "losses_torch": ref, "losses_floor": floor, "seconds": time.perf_counter() - t0})
