"""elman (seed 002): the ablation ladder, one config field ``rung`` picks the model.

Each rung is the one below plus one feature, so a report can show what each feature
costs and buys. Every layer is a pre-norm residual around the recurrence,
``x = x + y(rmsnorm(x))``; a final RMSNorm; embeddings tied to the LM head. The hidden
state has d_model units, so the table's y_t lands in the residual stream as written.

    rung 0  plain Elman        h_t = tanh(W_x x_t + R_h h_{t-1} + b);  y_t = W_o h_t
    rung 1  + delta gate       d_t = sigmoid(W_d x_t + b_d)
                               h_t = (1 - d_t) h_{t-1} + d_t tanh(W_x x_t + R_h h_{t-1} + b)
    rung 2  + compete x silu   y_t = softmax_groups(h_t) * silu(W_o h_t)
    rung 3  + signed log space the state is (log|h|, sign h) between steps; R_h h_{t-1}
                               in signed log space
    rung 4  diagonal, parallel a_t = sigmoid(W_a x_t),  h_t = a_t h_{t-1} + (1 - a_t) W_c x_t
                               for all t at once by ops.parallel_scan

Rungs 0-3 compute a layer's recurrence in one ``ops.elman_scan`` call (u = W_x x + b and
the gate logits W_d x + b_d for all t at once; rung 3 with log_space=True): the fused
kernel of the Elman source, forward and backward each one call. ``fused=False`` keeps
the per-step path (a torch loop over t; rung 3 calls ops.logspace_matvec per step), the
ablation that shows what fusion buys; both compute the contract's math (DESIGN 2.8).

Rung 3 computes rung 2's recurrence without leaving log space: the pre-activation is
the signed log-sum of W_x x_t + b and logspace_matvec's R_h h_{t-1}; tanh is taken in
log space, log|tanh z| = log|z| + log(tanh|z| / |z|), exact for |z| far below float32's
smallest number; the gate mixes the two terms by a signed log-sum with log(1 - d_t) =
logsigmoid(-g_t) and log d_t = logsigmoid(g_t). So rung 3 holds what rung 2 holds
(equal outputs from equal weights, to rounding) while a state decaying through
R_h stays finite: where the linear float32 state underflows after a few hundred
contracting steps (to 0, or stuck on a subnormal 80 decades off), log|h| in float32
still matches float64 (tests/test_elman.py). The output
y_t reads h_t in linear space (an underflowed output is 0, harmlessly).

Rung 4 replaces the nonlinear recurrence by the diagonal one and keeps what still makes
sense: its gate is the delta gate, a_t = 1 - d_t = sigmoid(-(W_d x_t + b_d)) (W_a = -W_d),
its candidate W_c x_t is W_x x_t + b without tanh (W_c = W_x, the table's affine maps
carry the biases of the rungs below), and its output is rung 2's compete x silu. R_h is
gone, and with it the R_h modes and the log-space state (a convex mix of inputs cannot
overflow; the scan runs in linear space). Its parameters are rung 3's minus R_h.

R_h modes (rungs 0-3), all starting from one random orthogonal matrix Q0 with spectral
norm 0.99:
- ``free``: R_h = 0.99 Q0 at init, then trained freely.
- ``spectral_norm``: R_h = 0.99 W / sigma(W) (Miyato et al. 2018), sigma by power
  iteration on W^T W run to convergence at every forward by repeated squaring: 12
  squarings are 4096 power steps from a fixed random vector, so sigma is a pure
  function of W (chunks, train and eval agree) and the measured spectral norm of R_h is
  0.99 to within about 1e-4 even where the top singular values cluster, also right
  after an optimizer step. One power step per forward with warm-started vectors (torch's
  spectral_norm) lags the weights: after Adam steps it measured up to 1.25. The cost
  is 12 d^3 flops per forward, none per step. sigma = |W v| with v held fixed, so its
  gradient is Miyato's u v^T.
- ``scaled_orthogonal``: R_h = sigmoid(scale) Q, Q = Q0 exp(A - A^T) orthogonal by
  construction (torch.nn.utils.parametrizations.orthogonal), sigmoid(scale) = 0.99 at init.

The family reads left to right only: ``causal=False`` is refused. ``mask`` is used by the
pooling heads; the recurrence assumes right padding.

State: per layer h_{T-1} [B, d_model]; rung 3: the pair (log|h|, sign h), each [B, d_model].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from backends import log_tanh_abs, signed_logaddexp, to_log  # the contract's pieces (DESIGN 2.8)
from models import register_family
from models.common import RMSNorm, SequenceModel, StepLoop, through_layers, time_steps
from models.config import ModelConfig, choices, invalid, limits

R_H_MODES = ("free", "spectral_norm", "scaled_orthogonal")
R_H_NORM = 0.99  # the spectral norm of R_h at init (every mode) and always (spectral_norm)
SQUARINGS = 12  # spectral_norm: (W^T W)^(2^12), i.e. 4096 power steps


@dataclass(frozen=True)
class ElmanConfig(ModelConfig):
    family = "elman"

    rung: int = field(default=4, metadata=limits(0, 4))  # 0 plain .. 4 diagonal parallel (see the table)
    r_h: str = field(default="free", metadata=choices(*R_H_MODES))  # how R_h is kept (rungs 0-3)
    group_size: int = field(default=8, metadata=limits(1))  # hidden units per softmax group (rungs 2-4)
    fused: bool = True  # rungs 0-3: one ops.elman_scan call per layer; False: the per-step path (ablation)

    def check(self):
        if not self.causal:
            raise invalid(self.family, "causal", "True (a recurrent model that reads left to right)", self.causal)
        if self.rung == 4 and self.r_h != "free":
            raise invalid(self.family, "r_h", "'free' at rung 4 (the diagonal rung has no R_h)", self.r_h)
        if self.rung >= 2 and self.d_model % self.group_size:
            raise invalid(self.family, "d_model", f"a multiple of group_size={self.group_size} at rung {self.rung}",
                          self.d_model)


class SpectralNorm(nn.Module):
    """Parametrization W -> 0.99 W / sigma(W), sigma by power iteration (repeated squaring)."""

    def __init__(self, d: int):
        super().__init__()
        self.register_buffer("v0", F.normalize(torch.randn(d), dim=0))  # the fixed start vector

    def forward(self, W):  # [d, d]
        with torch.no_grad():
            P = W.T @ W  # [d, d], eigenvalues sigma_i^2
            for _ in range(SQUARINGS):
                P = P / P.norm().clamp_min(1e-30)  # keeps the top eigenvalue's share, never overflows
                P = P @ P
            v = F.normalize(P @ self.v0, dim=0)  # the top right singular vector
        return R_H_NORM * W / torch.linalg.vector_norm(W @ v)


class ElmanLayer(nn.Module):
    def __init__(self, cfg: ElmanConfig, ops):
        super().__init__()
        self.ops, self.rung, self.mode, self.group, self.fused = ops, cfg.rung, cfg.r_h, cfg.group_size, cfg.fused
        d = cfg.d_model
        self.norm = RMSNorm(d)
        self.w_x = nn.Linear(d, d)  # W_x x + b (rung 4: the candidate W_c x)
        if cfg.rung <= 3:
            self.r_h = nn.Linear(d, d, bias=False)
            nn.init.orthogonal_(self.r_h.weight)  # Q0
            if cfg.r_h == "free":
                with torch.no_grad():
                    self.r_h.weight.mul_(R_H_NORM)
            elif cfg.r_h == "spectral_norm":
                parametrize.register_parametrization(self.r_h, "weight", SpectralNorm(d))
            else:
                parametrizations.orthogonal(self.r_h)
                self.r_scale = nn.Parameter(torch.tensor(math.log(R_H_NORM / (1 - R_H_NORM))))
        if cfg.rung >= 1:
            self.w_d = nn.Linear(d, d)  # the delta gate's W_d x + b_d (rung 4: a = 1 - d)
        self.w_o = nn.Linear(d, d, bias=False)

    def recurrent_matrix(self):
        """R_h [d, d] (spectral norm 0.99 under spectral_norm, sigmoid(scale) Q under
        scaled_orthogonal); computed once per forward, outside the loop over t."""
        if self.mode == "scaled_orthogonal":
            return torch.sigmoid(self.r_scale) * self.r_h.weight
        return self.r_h.weight

    def forward(self, x, h0, steps):
        """x [B, T, d]; h0 None or the layer's state; steps: the model, whose (possibly
        compiled) ``linear_step`` and ``log_step`` the per-step path calls -> x [B, T, d], state."""
        xn = self.norm(x)  # [B, T, d]
        u = self.w_x(xn)  # [B, T, d]
        g = self.w_d(xn) if self.rung >= 1 else None  # [B, T, d] gate logits
        if self.rung == 4:
            h = self.ops.parallel_scan(torch.sigmoid(-g), torch.sigmoid(g) * u, h0)  # [B, T, d]
            state = h[:, -1]
        elif self.fused and not steps.step_compiled:
            h, state = self.scan(u, g, h0)
        elif self.rung == 3:
            h, state = self.log_space_loop(u, g, h0, steps.log_step)
        else:
            h, state = self.linear_loop(u, g, h0, steps.linear_step)
        if self.rung >= 2:
            B, T, d = h.shape
            compete = h.view(B, T, d // self.group, self.group).softmax(-1).view(B, T, d)
            y = compete * F.silu(self.w_o(h))
        else:
            y = self.w_o(h)
        return x + y, state

    def scan(self, u, g, state):
        """Rungs 0-3 fused: u, g [B, T, d] (g None at rung 0); state as ``forward`` takes it
        -> all h [B, T, d] (linear), state."""
        R = self.recurrent_matrix()  # [d, d]
        if self.rung == 3:
            h_log, h_sign = self.ops.elman_scan(u, R, g, state, log_space=True)  # [B, T, d] each
            return h_sign * torch.exp(h_log), (h_log[:, -1], h_sign[:, -1])
        h = self.ops.elman_scan(u, R, g, state)  # [B, T, d]
        return h, h[:, -1]

    def linear_loop(self, u, g, h, step):
        """Rungs 0-2: u, g [B, T, d]; h None (zeros) or [B, d]; step: ``Elman.linear_step``
        -> all h [B, T, d], h_last."""
        R = self.recurrent_matrix()  # [d, d]
        us = time_steps(u)  # T x [B, d]
        gates = time_steps(torch.sigmoid(g)) if g is not None else None
        hs = []
        for t, u_t in enumerate(us):
            d_t = None if gates is None else gates[t]
            if h is None:  # R_h 0 = 0 and (1 - d) 0 = 0
                h = torch.tanh(u_t) if d_t is None else d_t * torch.tanh(u_t)
            else:
                h = step(u_t, d_t, h, R)
            hs.append(h)
        return torch.stack(hs, 1), h

    def log_space_loop(self, u, g, state, step):
        """Rung 3: the linear loop with h held as (log|h|, sign h). state None (h = 0) or
        (h_log, h_sign) [B, d] each; step: ``Elman.log_step`` -> all h [B, T, d], state."""
        R = self.recurrent_matrix()  # [d, d]
        u_log, u_sign = (time_steps(x) for x in to_log(u))  # T x [B, d] each
        keep_log, take_log = time_steps(F.logsigmoid(-g)), time_steps(F.logsigmoid(g))  # log(1 - d_t), log d_t
        hs = []
        for t in range(u.shape[1]):
            if state is None:  # R_h 0 = 0 and (1 - d) 0 = 0
                z_log, z_sign = u_log[t], u_sign[t]
                state = (take_log[t] + log_tanh_abs(z_log), z_sign)
            else:
                state = step(u_log[t], u_sign[t], keep_log[t], take_log[t], *state, R)
            hs.append(state[1] * torch.exp(state[0]))
        return torch.stack(hs, 1), state


@register_family
class Elman(SequenceModel):
    """The Elman ablation ladder: plain, delta gate, compete x silu, log space, diagonal parallel."""

    Config = ElmanConfig
    test_configs = (
        ("rung0", dict(d_model=8, n_layers=1, rung=0)),
        ("rung1", dict(d_model=8, n_layers=1, rung=1)),
        ("rung2", dict(d_model=8, n_layers=1, rung=2, group_size=4)),
        ("rung3", dict(d_model=8, n_layers=2, rung=3, group_size=4)),
        ("rung4", dict(d_model=8, n_layers=2, rung=4, group_size=4)),
        ("rung0-spectral", dict(d_model=8, n_layers=1, rung=0, r_h="spectral_norm")),
        ("rung1-orthogonal", dict(d_model=8, n_layers=1, rung=1, r_h="scaled_orthogonal")),
        ("rung3-orthogonal", dict(d_model=8, n_layers=1, rung=3, r_h="scaled_orthogonal", group_size=4)),
        ("rung1-unfused", dict(d_model=8, n_layers=1, rung=1, fused=False)),
        ("rung3-unfused", dict(d_model=8, n_layers=2, rung=3, group_size=4, fused=False)),
    )

    def __init__(self, config: ElmanConfig, ops):
        super().__init__(config, ops)
        self.layers = nn.ModuleList(ElmanLayer(config, ops) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model)

    @classmethod
    def ops_used(cls, config: ElmanConfig) -> tuple[str, ...]:
        if config.rung == 4:
            return ("parallel_scan",)
        if config.fused:
            return ("elman_scan",)
        return ("logspace_matvec",) if config.rung == 3 else ()

    @classmethod
    def step_loop(cls, config):
        """Rungs 0-3: the per-step cell. A fused rung's loop is inside ``ops.elman_scan``
        (the torch backend's step loop, behind the registry), which a compiled model cannot
        reach without unrolling it; so a compiled step runs the per-step path of the same
        contract (DESIGN 2.8) with this cell compiled, whatever ``fused`` says. Rung 4
        has no loop (one parallel_scan call)."""
        if config.rung == 4:
            return StepLoop((), "elman rung 4: no Python loop over time (one parallel_scan call per layer); "
                                "torch.compile of the whole model is one graph")
        return StepLoop(("log_step",) if config.rung == 3 else ("linear_step",))

    def linear_step(self, u_t, d_t, h, R):
        """One step of rungs 0-2 after the first: u_t [B, d] (W_x x_t + b), d_t [B, d] the
        delta gate or None (rung 0), h [B, d], R [d, d] -> h_t [B, d]."""
        cand = torch.tanh(u_t + F.linear(h, R))  # [B, d]
        return cand if d_t is None else h + d_t * (cand - h)

    def log_step(self, u_log, u_sign, keep_log, take_log, h_log, h_sign, R):
        """One step of rung 3 after the first, all [B, d] but R [d, d]: u as (log|u|, sign u),
        log(1 - d_t), log d_t, h_{t-1} as (log|h|, sign h) -> h_t as (log|h|, sign h)."""
        r_log, r_sign = self.ops.logspace_matvec(R, h_log, h_sign)  # R_h h_{t-1}, [B, d]
        z_log, z_sign = signed_logaddexp(u_log, u_sign, r_log, r_sign)
        return signed_logaddexp(keep_log + h_log, h_sign, take_log + log_tanh_abs(z_log), z_sign)

    def forward(self, tokens, state=None, mask=None):
        """tokens [B, T] int64; state None or one entry per layer (see the module docstring)."""
        self.check_tokens(tokens, state, mask)
        x, new_states = through_layers(self.layers, self.embed(tokens), state, steps=self)  # [B, T, d]
        return self.norm(x), new_states
