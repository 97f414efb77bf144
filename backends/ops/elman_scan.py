"""elman_scan: the nonlinear Elman recurrence over a whole sequence (fused).

    h = elman_scan(u, R, gate=None, h0=None, log_space=False)

Shapes: u [B, T, D] (the input pre-activation W_x x_t + b); R [D, D]; gate [B, T, D] or
None (the delta gate's pre-activation); h0 [B, D] or None (zeros); returns h [B, T, D].
    without a gate:  h_t = tanh(u_t + R h_{t-1})                                 (rung 0)
    with a gate:     d_t = sigmoid(gate_t)
                     h_t = (1 - d_t) h_{t-1} + d_t tanh(u_t + R h_{t-1})          (rungs 1-2)

log_space=True (rung 3): the state between steps is (log|h|, sign h) and the op returns
(h_log, h_sign), each [B, T, D]; h0 is None or such a pair. One step, with x = h_{t-1}:
    (r_log, r_sign) = R x in signed log space, per output row the stable form of
                      logspace_matvec (terms log|R_ij| + x_log_j, signs sign(R_ij) x_sign_j,
                      y_log = max + log|P - N|); an exact zero is (-inf, +1), no gradient
    (z_log, z_sign) = slae(log|u_t|, sign u_t, r_log, r_sign)            z = u_t + R x
    a_t             = log|tanh z| = log|z| + log(tanh|z| / |z|)   (z_log clamped at 15,
                      where tanh|z| is 1; -|z|^2 / 3 for |z| < 1e-3)
    without a gate:  h_t = (a_t, z_sign)
    with a gate:     h_t = slae(logsigmoid(-gate_t) + x_log, x_sign, logsigmoid(gate_t) + a_t, z_sign)
slae is the signed log-sum of two terms (``signed_logaddexp``): m = max(la, lb),
r = sa exp(la - m) + sb exp(lb - m), result (m + log max(|r|, 2^-126), sign r with 0 -> +1).
An exact cancellation (r = 0: equal magnitudes, opposite signs; it happens in training)
is held at 2^-126 (float32's smallest normal) relative to the terms, far below their
rounding, and passes gradient only through m (torch.maximum's: all to the larger
term, half to each of equal ones). u = 0 is (-inf, +1) and passes no gradient to u (the
"no gradient from an exact zero" rule of logspace_matvec). A state that decays far below
float32's smallest number stays finite and right in log|h|.

Differentiable: u, R, gate, h0 (under log_space h0's log part; signs are piecewise
constant and pass no gradient). Backward, linear space, with c_t = tanh(z_t):
    g_t = dh_t + carry;  dz_t = g_t d_t (1 - c_t^2)   (d_t = 1 without a gate)
    du_t = dz_t;  dgate_t = g_t (c_t - h_{t-1}) d_t (1 - d_t);  dR += dz_t h_{t-1}^T
    carry = g_t (1 - d_t) + R^T dz_t  (without a gate: R^T dz_t);  dh0 = carry after t = 0
One call runs the whole forward, one the whole backward (BPTT inside the kernel, R's
gradient accumulated over t): the Elman source's LogComputeFullFunction, as Haste and
cuDNN fuse RNN layers.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from backends.ops._common import by_mode, generator, itemsize, place, randn, tolerances
from backends.registry import ArgPlan, OpSpec, TensorArg, register_op

TINY = torch.finfo(torch.float32).tiny  # 2^-126: the floor of |x + y| relative to the terms
TANH_SATURATED = 15.0  # log|z| above which tanh(|z|) is 1 in float32 and float64
TANH_SMALL = 1e-3  # |z| below which log(tanh|z| / |z|) is -|z|^2 / 3 to rounding


# ---------------------------------------------------------------------------
# The signed log-space pieces (the torch backend and elman's per-step path use them too)
# ---------------------------------------------------------------------------


def signed_logaddexp(la, sa, lb, sb):
    """(log|x + y|, sign(x + y)) of x = sa exp(la), y = sb exp(lb); 0 + 0 is (-inf, +1).

    An exact cancellation gives max(la, lb) + log(2^-126) with gradient through the max
    only (the clamp), where autograd through log|0| would give 0 * inf = NaN. The signs
    are constants (detached)."""
    sa, sb = sa.detach(), sb.detach()
    m = torch.maximum(la, lb)
    m_safe = torch.where(torch.isneginf(m), 0.0, m)  # both terms zero: exp(-inf - 0) = 0
    r = sa * torch.exp(la - m_safe) + sb * torch.exp(lb - m_safe)
    return m + torch.log(r.abs().clamp_min(TINY)), torch.where(r < 0, -1.0, 1.0).to(r.dtype)


def log_tanh_abs(z_log):
    """log|tanh z| from log|z|: log|z| + log(tanh|z| / |z|), with -|z|^2 / 3 for tiny |z|."""
    z_log = z_log.clamp(max=TANH_SATURATED)
    a = torch.exp(z_log)  # |z|
    small = a < TANH_SMALL
    a_safe = torch.where(small, torch.ones_like(a), a)  # keeps the unused branch's gradient finite
    return z_log + torch.where(small, -a * a / 3, torch.log(torch.tanh(a_safe) / a_safe))


def to_log(x):
    """(log|x|, sign x) of a linear tensor; 0 is (-inf, +1) and passes no gradient."""
    zero = x == 0
    mag = torch.where(zero, torch.ones_like(x), x.abs())
    return torch.where(zero, -math.inf, torch.log(mag)), torch.where(x < 0, -1.0, 1.0).to(x.dtype)


def _log_matvec(R, x_log, x_sign):
    """R x for x = x_sign exp(x_log) [B, D]: the stable form per output row, exact zeros
    (-inf, +1) with no gradient. [B, D] each."""
    logR, signR = to_log(R)  # [D, D]
    t = logR[None] + x_log[:, None, :]  # [B, D_out, D_in]
    s = signR[None] * x_sign.detach()[:, None, :]
    m = torch.amax(t, dim=-1, keepdim=True).detach()  # the gradient of the max cancels exactly
    m = torch.where(torch.isneginf(m), 0.0, m)
    e = torch.exp(t - m)
    diff = torch.where(s > 0, e, 0.0).sum(-1) - torch.where(s < 0, e, 0.0).sum(-1)  # [B, D]
    zero = diff == 0
    y_log = torch.where(zero, -math.inf, m[..., 0] + torch.log(torch.where(zero, 1.0, diff.abs())))
    return y_log, torch.where(diff < 0, -1.0, 1.0).to(diff.dtype)


def elman_scan(u, R, gate=None, h0=None, log_space=False):
    """The float64 sequential reference: one step per time index."""
    B, T, D = u.shape
    keep = take = None
    if gate is not None:
        d = torch.sigmoid(gate)
        keep, take = F.logsigmoid(-gate), F.logsigmoid(gate)  # log(1 - d_t), log d_t
    if not log_space:
        h = h0 if h0 is not None else u.new_zeros(B, D)
        out = []
        for t in range(T):
            c = torch.tanh(u[:, t] + h @ R.T)
            h = c if gate is None else (1 - d[:, t]) * h + d[:, t] * c
            out.append(h)
        return torch.stack(out, dim=1)
    if h0 is None:
        h_log, h_sign = u.new_full((B, D), -math.inf), u.new_ones(B, D)
    else:
        h_log, h_sign = h0
    u_log, u_sign = to_log(u)
    logs, signs = [], []
    for t in range(T):
        r_log, r_sign = _log_matvec(R, h_log, h_sign)
        z_log, z_sign = signed_logaddexp(u_log[:, t], u_sign[:, t], r_log, r_sign)
        a = log_tanh_abs(z_log)
        if gate is None:
            h_log, h_sign = a, z_sign
        else:
            h_log, h_sign = signed_logaddexp(keep[:, t] + h_log, h_sign, take[:, t] + a, z_sign)
        logs.append(h_log)
        signs.append(h_sign)
    return torch.stack(logs, dim=1), torch.stack(signs, dim=1)


# ---------------------------------------------------------------------------
# Arguments: h0 is a tensor, or under log_space a (log, sign) pair
# ---------------------------------------------------------------------------


def check_options(backend, sizes, h0=None, log_space=False):
    """log_space must be a bool (h0 is checked by ``ElmanScanSpec.accept``, which knows
    the call's dtype and device)."""
    if not isinstance(log_space, bool):
        raise TypeError(f"elman_scan[{backend}]: argument 'log_space' expected a bool, got {type(log_space).__name__}")


def _check_state(backend, name, t, B, D, dtype, device):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"elman_scan[{backend}]: argument '{name}' expected a torch.Tensor [B, D], got {type(t).__name__}")
    if t.dtype != dtype:
        raise TypeError(f"elman_scan[{backend}]: argument '{name}' expected dtype {dtype} (the dtype of 'u'), got dtype {t.dtype}")
    if t.device != device:
        raise ValueError(f"elman_scan[{backend}]: argument '{name}' expected device {device} (the device of 'u'), "
                         f"got device {t.device}")
    if tuple(t.shape) != (B, D):
        raise ValueError(f"elman_scan[{backend}]: argument '{name}' expected shape [B, D] = ({B}, {D}), got shape {tuple(t.shape)}")


class ElmanScanSpec(OpSpec):
    """The contract of elman_scan. Its h0 is a [B, D] tensor, or under log_space a
    (log, sign) pair of them, which one argument plan cannot say: the plan checks u, R
    and gate (so the profiler's backward ranges wrap those), ``accept`` (every call's
    check, and ``validate``'s) checks h0."""

    @functools.cached_property
    def plan(self) -> ArgPlan:
        return ArgPlan(self.name, self.signature, {k: v for k, v in self.args.items() if k != "h0"})

    def accept(self, backend, args, kwargs):
        values, slots, dtype, device = OpSpec.accept(self, backend, args, kwargs)
        h0, log_space = values[3], values[4]
        if h0 is not None:
            sizes = self.plan.sizes(slots)
            B, D = sizes["B"], sizes["D"]
            if not log_space:
                _check_state(backend, "h0", h0, B, D, dtype, device)
            elif not isinstance(h0, (tuple, list)) or len(h0) != 2:
                raise TypeError(f"elman_scan[{backend}]: argument 'h0' expected None or a pair (h0_log, h0_sign) "
                                f"under log_space=True, got {type(h0).__name__}")
            else:
                _check_state(backend, "h0.log", h0[0], B, D, dtype, device)
                _check_state(backend, "h0.sign", h0[1], B, D, dtype, device)
        return values, slots, dtype, device


# ---------------------------------------------------------------------------
# Inputs, comparison, cost
# ---------------------------------------------------------------------------


def make_inputs(case: dict, dtype=torch.float32, device="cpu", seed: int = 0) -> dict:
    """R = 0.99 Q (Q random orthogonal: elman's init), u of unit scale, gate logits of
    both signs, h0 = 0.5 N(0, 1) (under log_space its (log, sign), with a few exact
    zeros)."""
    g = generator(seed)
    B, T, D = case["B"], case["T"], case["D"]
    q, _ = torch.linalg.qr(randn(g, D, D))
    tensors = {"u": randn(g, B, T, D), "R": 0.99 * q,
               "gate": 1.5 * randn(g, B, T, D) if case.get("gate", True) else None}
    inputs = place(tensors, dtype, device)
    log_space = bool(case.get("log_space", False))
    inputs["h0"] = None
    if case.get("h0", True):
        h0 = 0.5 * randn(g, B, D)
        if log_space:
            if D > 2:
                h0 = torch.where(torch.rand(B, D, generator=g, dtype=torch.float64) < 0.1, 0.0, h0)
            inputs["h0"] = tuple(place(dict(zip(("log", "sign"), to_log(h0))), dtype, device).values())
        else:
            inputs["h0"] = place({"h0": h0}, dtype, device)["h0"]
    inputs["log_space"] = log_space
    return inputs


def compare(inputs: dict, got: list, ref: list, tol) -> tuple[float, list[str]]:
    """Linear space: elementwise, as every op (atol relative to max(1, max|h|)). Under
    log_space an element passes if either (a) h = h_sign exp(h_log) is within atol + rtol |h|
    of the reference (states are O(1): where h is near 0 its log is ill-conditioned), or (b)
    the sign matches and |h_log - ref| <= atol + rtol |ref| (a decayed state, judged in
    log space). Returns (worst error / tolerance, problems)."""
    from backends.check import compare_tensors

    if not inputs["log_space"]:
        return compare_tensors("h", got[0], ref[0], tol)
    got_log, got_sign = (t.detach().cpu().double() for t in got)
    ref_log, ref_sign = (t.detach().cpu().double() for t in ref)
    problems = []
    if not torch.all((got_sign == 1) | (got_sign == -1)):
        problems.append("h_sign has entries other than -1 and +1")
    lin_err = (got_sign * torch.exp(got_log) - ref_sign * torch.exp(ref_log)).abs()
    ratio_a = lin_err / (tol.atol + tol.rtol * torch.exp(ref_log))
    log_err = torch.where(got_log == ref_log, 0.0, (got_log - ref_log).abs())
    ratio_b = torch.where(got_sign == ref_sign, log_err / (tol.atol + tol.rtol * ref_log.abs()), math.inf)
    ratio = torch.nan_to_num(torch.minimum(ratio_a, ratio_b), nan=math.inf)
    ratio = torch.where(torch.isnan(ref_log) & torch.isnan(got_log), 0.0, ratio)
    worst = ratio.max().item() if ratio.numel() else 0.0
    if worst > 1.0:
        idx = tuple(int(i) for i in torch.nonzero(ratio == ratio.max())[0])
        problems.append(f"h off by {worst:.3g}x the tolerance at {idx}: got {got_sign[idx].item():+.0f} "
                        f"exp({got_log[idx].item():.9g}), expected {ref_sign[idx].item():+.0f} exp({ref_log[idx].item():.9g})")
    return worst, problems


def grad_mask(inputs: dict, ref: list) -> dict:
    """Under log_space the cotangent on h_log is kept where |h| > 1e-3: d h_log / d h = 1 / h
    multiplies float error by 1 / |h| (no float32 kernel can honestly cover it)."""
    if not inputs["log_space"]:
        return {}
    return {"h": ref[0].detach() > math.log(1e-3)}


def flops(case: dict, mode: str = "forward") -> float:
    # per (b, t): R h is 2 D^2; the step's elementwise work ~6 D (tanh, add; the gate
    # adds sigmoid and the mix, ~5 D; log space ~30 D of exp, log and selects). Backward:
    # R^T dz and the dR update are 4 D^2, elementwise about twice the forward's.
    B, T, D = case["B"], case["T"], case["D"]
    per = 6.0 + (5.0 if case.get("gate", True) else 0.0) + (30.0 if case.get("log_space") else 0.0)
    return by_mode(mode, B * T * (2.0 * D * D + per * D), B * T * (4.0 * D * D + 2.0 * per * D))


def bytes_moved(case: dict, dtype=torch.float32, mode: str = "forward") -> float:
    # forward reads u (gate), R, h0 and writes h (and h_sign); backward reads u (gate), h
    # (h_sign), dh and R, writes du (dgate), dR and dh0
    B, T, D, s = case["B"], case["T"], case["D"], itemsize(dtype)
    n = B * T * D
    gates = 1 if case.get("gate", True) else 0
    outs = 2 if case.get("log_space") else 1
    fwd = ((1 + gates + outs) * n + D * D + B * D) * s
    bwd = ((1 + gates + outs + 1 + 1 + gates) * n + 2 * D * D + B * D) * s
    return by_mode(mode, fwd, bwd)


# Register spills the ahead-of-time compile (arsenal gpu-compile, issue 23) accepts, by
# "backend/kernel", with why. The Triton log-space kernels hold log|R| and sign R as two
# [BLOCK_D, BLOCK_D] register tiles (the backward also dR and the [i, j] weights of a
# step); at D = 128 and 8 warps (64 floats a thread per tile) ptxas (Triton 3.9) spills,
# per thread: forward 32 B (sm_90) and 76 B (sm_80), backward 172 B and 248 B; 4 warps
# spilled 750 B and 6-14 KB, 16 warps (128 registers a thread) 48 B and 230-240 B, 32
# warps 36-60 B and 384-400 B. D <= 64 does not spill; neither do the linear kernels at 8
# warps. Accepted until the log-space kernels keep sign R as a bit mask or split R's rows
# over programs; a GPU run's timing says what the spill costs.
ACCEPTED_SPILLS = {
    "triton/_log_forward": "log|R| and sign R as two [128, 128] register tiles at D = 128 (see above)",
    "triton/_log_backward": "log|R|, dR and a step's [128, 128] weights in registers at D = 128 (see above)",
}


SPEC = register_op(ElmanScanSpec(
    name="elman_scan",
    reference=elman_scan,
    args={"u": TensorArg("B T D"), "R": TensorArg("D D"), "gate": TensorArg("B T D", optional=True),
          "h0": TensorArg("B D", optional=True)},
    check_options=check_options,
    make_inputs=make_inputs,
    outputs=("h", "h_sign"),  # h, or under log_space (h_log, h_sign)
    differentiable_inputs=("u", "R", "gate", "h0"),
    differentiable_outputs=("h",),
    test_cases=(
        dict(B=1, T=1, D=1),
        dict(B=2, T=9, D=5, gate=False, h0=False),
        dict(B=2, T=13, D=7),
        dict(B=2, T=9, D=5, log_space=True),
        dict(B=3, T=17, D=33, gate=False, log_space=True),
        dict(B=1, T=1, D=3, h0=False, log_space=True),
    ),
    case_space={"B": range(1, 4), "T": range(1, 30), "D": range(1, 21), "gate": [True, False],
                "h0": [True, False], "log_space": [False, True]},
    tolerances=tolerances(f32=(2e-5, 2e-5), f32_grad=(1e-4, 1e-4)),
    flops=flops,
    bytes=bytes_moved,
    compare=compare,
    grad_mask=grad_mask,
    doc=__doc__,
))
