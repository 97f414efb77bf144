"""logspace_matvec: a matrix times vectors held in signed log space.

    (y_log, y_sign) = logspace_matvec(w, x_log, x_sign)

Shapes: w [M, K] (linear space); x_log, x_sign [B, K]; y_log, y_sign [B, M].
The vector is x = x_sign * exp(x_log), x_sign in {-1, +1} (0 is +1 with x_log = -inf).
The result y = x @ w.T is returned as y_sign * exp(y_log), y_sign in {-1, +1}, and
y_log = -inf with sign +1 where y is exactly 0. It must be right where linear space
overflows or underflows (x_log from -1e4 to +1e4). The stable form per output (b, i):
    terms  t_j = log|w_ij| + x_log_bj,  signs s_j = sign(w_ij) * x_sign_bj
    m = max_j t_j;  P = sum_{s_j > 0} exp(t_j - m);  N = sum_{s_j < 0} exp(t_j - m)
    y_log = m + log|P - N|,  y_sign = +1 if P >= N else -1
Differentiable: w, x_log (through y_log; y_sign is piecewise constant). Where y is
exactly 0 the gradient is taken as 0 (log|y| has none there; a model that carries
exp(y_log) loses nothing, since d exp(y_log) / d y_log = y = 0).
"""

from __future__ import annotations

import math

import torch

from backends.ops._common import by_mode, generator, itemsize, no_options, place, randn, tolerances, uniform
from backends.registry import OpSpec, TensorArg, register_op


def logspace_matvec(w, x_log, x_sign):
    """The float64 reference: one output (b, i) at a time, the stable form above."""
    B, K = x_log.shape
    M = w.shape[0]
    logw, signw = torch.log(torch.abs(w)), torch.where(w < 0, -1.0, 1.0).to(w.dtype)
    rows_log, rows_sign = [], []
    for b in range(B):
        out_log, out_sign = [], []
        for i in range(M):
            t = logw[i] + x_log[b]  # [K]
            s = signw[i] * x_sign[b]  # [K]
            m = torch.max(t)
            if torch.isneginf(m):  # every term is an exact zero
                out_log.append(m)
                out_sign.append(torch.ones((), dtype=w.dtype))
                continue
            e = torch.exp(t - m)
            p, n = torch.sum(torch.where(s > 0, e, 0.0)), torch.sum(torch.where(s < 0, e, 0.0))
            if p == n:  # an exact zero: -inf, passing no gradient (the contract)
                out_log.append(torch.full((), -math.inf, dtype=w.dtype))
                out_sign.append(torch.ones((), dtype=w.dtype))
                continue
            out_log.append(m + torch.log(torch.abs(p - n)))
            out_sign.append(torch.where(p >= n, 1.0, -1.0).to(w.dtype))
        rows_log.append(torch.stack(out_log))
        rows_sign.append(torch.stack(out_sign))
    return torch.stack(rows_log), torch.stack(rows_sign)


def term_scale(w, x_log):
    """log sum_j |w_ij| |x_bj|: the size of the terms before cancellation, [B, M].
    An error is judged against this scale (a float sum cannot do better)."""
    return torch.logsumexp(torch.log(torch.abs(w))[None, :, :] + x_log[:, None, :], dim=-1)


def compare(inputs: dict, got: list, ref: list, tol) -> tuple[float, list[str]]:
    """An element passes if either
    (a) y = y_sign * exp(y_log), in units of the term scale, is within
        atol + rtol * (1 + |scale|): cancellation is judged against the size of the terms,
        and float log values of magnitude |scale| carry an absolute error ~ eps |scale|; or
    (b) the sign matches and |y_log - ref| <= atol + rtol * |ref| (plain log-domain error).
    An exact zero of the reference needs an exact zero (-inf, sign +1) or (a).
    Returns (worst error / tolerance, problems)."""
    got_log, got_sign = (t.detach().cpu().double() for t in got)
    ref_log, ref_sign = (t.detach() for t in ref)
    scale = term_scale(inputs["w"].detach(), inputs["x_log"].detach())
    scale = torch.where(torch.isfinite(scale), scale, torch.zeros_like(scale))
    problems = []
    if not torch.all((got_sign == 1) | (got_sign == -1)):
        problems.append("y_sign has entries other than -1 and +1")
    if torch.any(torch.isneginf(got_log) & (got_sign != 1)):
        problems.append("y_sign is -1 where y_log = -inf (an exact zero must carry sign +1)")
    y_err = (got_sign * torch.exp(got_log - scale) - ref_sign * torch.exp(ref_log - scale)).abs()
    ratio_a = y_err / (tol.atol + tol.rtol * (1.0 + scale.abs()))
    log_err = torch.where(got_log == ref_log, 0.0, (got_log - ref_log).abs())  # -inf == -inf
    ratio_b = torch.where(got_sign == ref_sign, log_err / (tol.atol + tol.rtol * ref_log.abs()), float("inf"))
    ratio = torch.nan_to_num(torch.minimum(ratio_a, ratio_b), nan=float("inf"))
    both_nan = torch.isnan(ref_log) & torch.isnan(got_log)
    ratio = torch.where(both_nan, 0.0, ratio)
    worst = ratio.max().item() if ratio.numel() else 0.0
    if worst > 1.0:
        idx = tuple(int(i) for i in torch.nonzero(ratio == ratio.max())[0])
        problems.append(f"y off by {worst:.3g}x the tolerance at {idx}: got {got_sign[idx].item():+.0f} "
                        f"exp({got_log[idx].item():.9g}), expected {ref_sign[idx].item():+.0f} exp({ref_log[idx].item():.9g})")
    return worst, problems


def grad_mask(inputs: dict, ref: list) -> dict:
    """Gradients are checked where y lost less than a factor 20 to cancellation: there
    d y_log / d t_j = s_j exp(t_j - y_log) multiplies float error by scale / |y|, which
    no tolerance of a float32 kernel can honestly cover."""
    scale = term_scale(inputs["w"].detach(), inputs["x_log"].detach())
    return {"y_log": (ref[0].detach() - scale) > -3.0}


def make_inputs(case: dict, dtype=torch.float32, device="cpu", seed: int = 0) -> dict:
    """x spans huge magnitudes (x_log up to +-span, default 1e4 would overflow any
    linear form), signs of both kinds, and a few exact zeros (x_log = -inf)."""
    g = generator(seed)
    B, M, K = case["B"], case["M"], case["K"]
    span = case.get("span", 50.0)
    w = randn(g, M, K) / math.sqrt(K)
    # x_log: a per-row offset anywhere in [-span, span] plus a spread within the row (a wide
    # spread leaves few terms that matter, which kernels that rescale per row must survive)
    x_log = uniform(g, -span, span, B, 1) + case.get("spread", 3.0) * randn(g, B, K)
    x_sign = torch.where(torch.rand(B, K, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0).to(torch.float64)
    if case.get("zeros", True) and K > 2:
        zero = torch.rand(B, K, generator=g, dtype=torch.float64) < 0.05
        x_log = torch.where(zero, -math.inf, x_log)
        x_sign = torch.where(zero, 1.0, x_sign)
    return place({"w": w, "x_log": x_log, "x_sign": x_sign}, dtype, device)


def flops(case: dict, mode: str = "forward") -> float:
    # counted as the linear-space matvec it replaces: 2 B M K (the exp per term is extra work)
    n = case["B"] * case["M"] * case["K"]
    return by_mode(mode, 2.0 * n, 4.0 * n)


def bytes_moved(case: dict, dtype=torch.float32, mode: str = "forward") -> float:
    # forward reads w, x_log, x_sign, writes y_log, y_sign;
    # backward reads w, x_log, x_sign, y_log, dy_log, writes dw, dx_log
    B, M, K, s = case["B"], case["M"], case["K"], itemsize(dtype)
    return by_mode(mode, (M * K + 2 * B * K + 2 * B * M) * s, (2 * M * K + 3 * B * K + 2 * B * M) * s)


SPEC = register_op(OpSpec(
    name="logspace_matvec",
    reference=logspace_matvec,
    args={"w": TensorArg("M K"), "x_log": TensorArg("B K"), "x_sign": TensorArg("B K")},
    check_options=no_options,
    make_inputs=make_inputs,
    outputs=("y_log", "y_sign"),
    differentiable_inputs=("w", "x_log"),
    differentiable_outputs=("y_log",),
    test_cases=(
        dict(B=1, M=1, K=1),
        dict(B=2, M=5, K=17),
        dict(B=3, M=16, K=64, span=1e4),
        dict(B=2, M=33, K=100, span=300.0),
        dict(B=2, M=9, K=50, span=1e4, spread=300.0),
    ),
    case_space={"B": range(1, 4), "M": range(1, 21), "K": range(1, 41), "span": [1.0, 50.0, 1e4],
                "spread": [3.0, 100.0]},
    # float32 holds x_log = 1e4 to ~6e-4 absolute, so exp(t - y_log) in the gradient carries
    # ~1e-3 relative error at the contract's largest magnitudes: the gradient tolerance says so
    tolerances=tolerances(f32=(1e-6, 1e-5), f32_grad=(2e-3, 2e-3), bf16=(1e-2, 2e-2), bf16_grad=(5e-2, 5e-2)),
    flops=flops,
    bytes=bytes_moved,
    compare=compare,
    grad_mask=grad_mask,
    doc=__doc__,
))
