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
Differentiable: w, x_log (through y_log; y_sign is piecewise constant).
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
    """Compare y = y_sign * exp(y_log) in units of the term scale, so cancellation is
    judged fairly; where |y| is not much below the scale, y_log must also match closely.
    Returns (worst error / tolerance, problems)."""
    got_log, got_sign = (t.double() for t in got)
    ref_log, ref_sign = ref
    scale = term_scale(inputs["w"], inputs["x_log"])
    scale = torch.where(torch.isfinite(scale), scale, torch.zeros_like(scale))
    problems = []
    if not torch.all((got_sign == 1) | (got_sign == -1)):
        problems.append("y_sign has entries other than -1 and +1")
    zero = torch.isneginf(ref_log)
    if torch.any(zero & (got_sign != 1) & torch.isneginf(got_log)):
        problems.append("y_sign is -1 where y_log = -inf (an exact zero must carry sign +1)")
    y_got = got_sign * torch.exp(got_log - scale)
    y_ref = ref_sign * torch.exp(ref_log - scale)
    err = (y_got - y_ref).abs()
    # y_log itself is allowed rtol * (1 + |y_log|) (float32 cannot hold a y_log of 1e4 to
    # better than ~5e-4), which moves y by that much relative to |y|
    bound = tol.atol + tol.rtol * (1.0 + torch.nan_to_num(ref_log.abs(), posinf=0.0)) * y_ref.abs()
    bad = ~(err <= bound) & ~(torch.isnan(y_ref) & torch.isnan(y_got))
    if torch.any(bad):
        problems.append(f"y (in units of the term scale) off by up to {err[bad].max().item():.3g} > atol {tol.atol:g} at {int(bad.sum())} elements")
    well = (ref_log - scale > -2.0) & torch.isfinite(ref_log)  # less than ~7x cancellation
    dlog = (got_log - ref_log).abs()
    bad_log = well & ~(dlog <= tol.rtol * (1.0 + ref_log.abs()))
    if torch.any(bad_log):
        problems.append(f"y_log off by up to {dlog[bad_log].max().item():.3g} where y is well conditioned")
    ratios = [torch.nan_to_num(err / bound, nan=0.0).max().item()]
    if torch.any(well):
        ratios.append((dlog / (tol.rtol * (1.0 + ref_log.abs())))[well].max().item())
    return max(ratios), problems


def make_inputs(case: dict, dtype=torch.float32, device="cpu", seed: int = 0) -> dict:
    """x spans huge magnitudes (x_log up to +-span, default 1e4 would overflow any
    linear form), signs of both kinds, and a few exact zeros (x_log = -inf)."""
    g = generator(seed)
    B, M, K = case["B"], case["M"], case["K"]
    span = case.get("span", 50.0)
    w = randn(g, M, K) / math.sqrt(K)
    # x_log: a per-row offset anywhere in [-span, span] plus spread within the row
    x_log = uniform(g, -span, span, B, 1) + 3.0 * randn(g, B, K)
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
    ),
    case_space={"B": range(1, 4), "M": range(1, 21), "K": range(1, 41), "span": [1.0, 50.0, 1e4]},
    tolerances=tolerances(f32=(1e-5, 1e-5), f32_grad=(1e-4, 1e-4), bf16=(1e-2, 2e-2), bf16_grad=(5e-2, 5e-2)),
    flops=flops,
    bytes=bytes_moved,
    compare=compare,
    doc=__doc__,
))
