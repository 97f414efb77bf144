"""elman's own invariants (DESIGN.md 7.4): the R_h modes keep their promise through
training, each rung differs from the one below by its feature only, rung 3 stays finite
where the same recurrence in linear float32 underflows, rung 4 is parallel in T, and bad
configs are refused."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import backends
import models

TORCH = backends.resolve("torch", "cpu")
NUMBA = backends.resolve({"default": "torch", "elman_scan": "numba_cpu"}, "cpu")


class Spy:
    """An OpTable stand-in that counts every op call (by op name)."""

    def __init__(self, ops):
        self._ops, self.mix, self.device = ops, ops.mix, ops.device
        self.calls: dict[str, int] = {}

    def __getattr__(self, op):
        impl = getattr(self._ops, op)

        def call(*args, **kwargs):
            self.calls[op] = self.calls.get(op, 0) + 1
            return impl(*args, **kwargs)

        call.grad = impl.grad
        return call


def _build(ops=TORCH, **over):
    cfg = models.config("elman", **dict(dict(d_model=8, n_layers=1, group_size=4, vocab_size=16), **over))
    return models.build(cfg, ops)


def _train(model, steps=8, lr=5e-2):
    """Adam steps on a next-token task; lr high enough to move R_h far from its init."""
    x = torch.randint(0, 16, (4, 16), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(model.logits(model(x)[0]).flatten(0, 1), x.roll(-1, 1).flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield model


@pytest.mark.parametrize("rung", [0, 3])
def test_spectral_norm_stays_at_099_through_training(rung):
    model = _build(rung=rung, r_h="spectral_norm", d_model=16)
    norms = []
    for m in [model, *_train(model)]:
        with torch.no_grad():
            R = m.layers[0].recurrent_matrix()
        norms.append(torch.linalg.matrix_norm(R, ord=2).item())
    assert max(norms) <= 0.99 + 1e-3 and min(norms) >= 0.99 - 1e-3, norms
    moved = model.layers[0].r_h.parametrizations.weight.original
    assert torch.linalg.matrix_norm(moved, ord=2) > 1.01, "training must have moved the raw weight off norm 1"


@pytest.mark.parametrize("rung", [1, 3])
def test_scaled_orthogonal_is_a_scaled_orthogonal_matrix(rung):
    model = _build(rung=rung, r_h="scaled_orthogonal")
    layer = model.layers[0]
    assert torch.sigmoid(layer.r_scale).item() == pytest.approx(0.99)
    for m in [model, *_train(model)]:
        with torch.no_grad():
            Q = layer.recurrent_matrix() / torch.sigmoid(layer.r_scale)
        assert torch.allclose(Q @ Q.T, torch.eye(8), atol=1e-5)
    assert torch.sigmoid(layer.r_scale).item() != pytest.approx(0.99, abs=1e-4), "the scale is trained"


def _names(model):
    """Parameter names of the first layer, without the 'layers.0.' prefix."""
    return {n.removeprefix("layers.0.") for n, _ in model.named_parameters() if n.startswith("layers.0.")}


# What each rung adds (+) or removes (-) in parameters over the rung below.
FEATURE_PARAMS = {1: ({"w_d.weight", "w_d.bias"}, set()),  # the delta gate W_d, b_d
                  2: (set(), set()),  # compete x silu reuses W_o
                  3: (set(), set()),  # log space changes the representation only
                  4: (set(), {"r_h.weight"})}  # diagonal: R_h is gone


@pytest.mark.parametrize("r_h", ["free", "spectral_norm", "scaled_orthogonal"])
def test_rungs_differ_by_their_feature_parameters(r_h):
    names = {rung: _names(_build(rung=rung, r_h=r_h if rung < 4 else "free", n_layers=2)) for rung in range(5)}
    assert names[0] == {"norm.weight", "w_x.weight", "w_x.bias", "w_o.weight"} | \
        {"free": {"r_h.weight"}, "spectral_norm": {"r_h.parametrizations.weight.original"},
         "scaled_orthogonal": {"r_h.parametrizations.weight.original", "r_scale"}}[r_h]
    for rung, (added, removed) in FEATURE_PARAMS.items():
        if rung == 4 and r_h != "free":
            continue
        assert names[rung] - names[rung - 1] == added and names[rung - 1] - names[rung] == removed, rung


def test_rungs_differ_by_their_feature_behaviour():
    """Equal weights: rung 1 with its gate open (d = 1) is rung 0; rung 2 keeps rung 1's
    states and changes the output only; rung 3 is rung 2 computed in log space."""
    toks = torch.randint(0, 16, (2, 12), generator=torch.Generator().manual_seed(0))
    r0, r1, r2, r3 = (_build(rung=r) for r in range(4))
    r1.load_state_dict(r0.state_dict(), strict=False)
    with torch.no_grad():
        r1.layers[0].w_d.weight.zero_()
        r1.layers[0].w_d.bias.fill_(40.0)  # sigmoid(40) == 1 in float32
    h0, s0 = r0(toks)
    h1, s1 = r1(toks)
    assert torch.allclose(h1, h0, atol=1e-6) and torch.allclose(s1[0], s0[0], atol=1e-6)
    r2.load_state_dict(r1.state_dict())
    r3.load_state_dict(r1.state_dict())
    h1, s1 = r1(toks)
    h2, s2 = r2(toks)
    assert torch.equal(s2[0], s1[0]) and not torch.allclose(h2, h1, atol=1e-3)
    h3, s3 = r3(toks)
    log_h, sign_h = s3[0]
    assert torch.allclose(h3, h2, atol=1e-5) and torch.allclose(sign_h * log_h.exp(), s2[0], atol=1e-6)


def _decay_model(rung, dtype, ops=TORCH, fused=True):
    """One layer whose recurrence only contracts: W_x = b = 0 (no input), d = 1/2,
    R_h = I/2, so h_t = h/2 + tanh(h/2)/2, about 0.75 h per step."""
    model = _build(ops, rung=rung, fused=fused).to(dtype)
    layer = model.layers[0]
    with torch.no_grad():
        for p in (layer.w_x.weight, layer.w_x.bias, layer.w_d.weight, layer.w_d.bias):
            p.zero_()
        layer.r_h.weight.copy_(0.5 * torch.eye(8))
    return model


@pytest.mark.parametrize("ops, fused", [(TORCH, False), (TORCH, True), (NUMBA, True)],
                         ids=["per-step", "fused-torch", "fused-numba_cpu"])
def test_rung3_stays_finite_where_linear_float32_underflows(ops, fused):
    """A state contracting for 1000 steps: float64 holds it (~1e-125), linear float32
    cannot, rung 3's float32 log state matches float64 (per step and fused)."""
    T = 1000  # 0.75^1000 ~ 1e-125: below float32's smallest subnormal (1.4e-45), within float64
    toks = torch.zeros(1, T, dtype=torch.int64)
    h0 = torch.full((1, 8), 0.9)
    with torch.no_grad():
        _, lin32 = _decay_model(2, torch.float32)(toks, [h0])
        _, lin64 = _decay_model(2, torch.float64)(toks, [h0.double()])
        hidden, log32 = _decay_model(3, torch.float32, ops, fused)(toks, [(h0.log(), torch.ones_like(h0))])
    want = lin64[0].abs().log()  # [1, 8], about -288
    assert torch.all(want < -250) and torch.all(lin64[0] > 0)
    # float32 runs out of range near 1e-45: its state is 0 (log -inf) or stuck on a
    # subnormal (tiny multiples of 2^-149 round back to themselves), ~80 decades off
    got = lin32[0].abs().log().double()
    assert torch.all(lin32[0].abs() < 1e-44) and torch.all((got - want).abs() > 100), \
        "the linear float32 state must underflow here (else the test shows nothing)"
    log_h, sign_h = log32[0]
    assert torch.isfinite(log_h).all() and torch.isfinite(hidden).all() and torch.all(sign_h == 1)
    assert torch.allclose(log_h.double(), want, atol=1e-2), (log_h, want)


@pytest.mark.parametrize("T", [1, 7, 40])
def test_rung4_is_parallel_in_T(T):
    spy = Spy(TORCH)
    model = _build(spy, rung=4, n_layers=2)
    model(torch.zeros(2, T, dtype=torch.int64))
    assert spy.calls == {"parallel_scan": 2}, "one scan per layer, whatever T"
    spy.calls.clear()
    _, state = model(torch.zeros(2, T, dtype=torch.int64))
    model(torch.zeros(2, 3, dtype=torch.int64), state)
    assert spy.calls == {"parallel_scan": 4}


@pytest.mark.parametrize("rung", [0, 1, 2, 3])
def test_fused_rungs_call_elman_scan_once_per_layer(rung):
    spy = Spy(TORCH)
    model = _build(spy, rung=rung, n_layers=2)
    _, state = model(torch.zeros(2, 7, dtype=torch.int64))
    assert spy.calls == {"elman_scan": 2}, "one call per layer, whatever T"
    model(torch.zeros(2, 5, dtype=torch.int64), state)
    assert spy.calls == {"elman_scan": 4}


@pytest.mark.parametrize("rung", [0, 1, 2, 3])
@pytest.mark.parametrize("ops", [TORCH, NUMBA], ids=["torch", "numba_cpu"])
def test_fused_equals_the_per_step_path(rung, ops):
    """Equal weights: fused (one elman_scan per layer) and per-step give the same hidden
    states, states and gradients, in one pass and carried over a chunk boundary."""
    toks = torch.randint(0, 16, (2, 11), generator=torch.Generator().manual_seed(3))
    step = _build(TORCH, rung=rung, n_layers=2, fused=False)
    fused = _build(ops, rung=rung, n_layers=2)
    fused.load_state_dict(step.state_dict())
    outs = []
    for m in (step, fused):
        h, state = m(toks[:, :6])
        h2, _ = m(toks[:, 6:], state)
        (h.square().sum() + h2.sum()).backward()
        outs.append((torch.cat([h, h2], 1), {n: p.grad for n, p in m.named_parameters()}))
    (h_a, g_a), (h_b, g_b) = outs
    assert torch.allclose(h_a, h_b, atol=1e-5), (h_a - h_b).abs().max()
    for n in g_a:
        scale = max(1.0, g_a[n].abs().max().item())  # float32 rounding is relative to the gradient's size
        assert torch.allclose(g_a[n], g_b[n], rtol=1e-4, atol=1e-5 * scale), (n, (g_a[n] - g_b[n]).abs().max())


def test_rung3_per_step_calls_logspace_matvec_once_per_step():
    spy = Spy(TORCH)
    model = _build(spy, rung=3, n_layers=2, fused=False)
    _, state = model(torch.zeros(2, 7, dtype=torch.int64))
    assert spy.calls == {"logspace_matvec": 2 * 6}, "from zeros the first step has no R_h h term"
    model(torch.zeros(2, 5, dtype=torch.int64), state)
    assert spy.calls == {"logspace_matvec": 2 * 6 + 2 * 5}
    assert [type(s) for s in state] == [tuple, tuple] and state[0][0].shape == (2, 8)


def test_ops_used():
    used = {rung: models.FAMILIES["elman"].ops_used(models.config("elman", rung=rung)) for rung in range(5)}
    assert used == {0: ("elman_scan",), 1: ("elman_scan",), 2: ("elman_scan",), 3: ("elman_scan",),
                    4: ("parallel_scan",)}
    per_step = {rung: models.FAMILIES["elman"].ops_used(models.config("elman", rung=rung, fused=False))
                for rung in range(5)}
    assert per_step == {0: (), 1: (), 2: (), 3: ("logspace_matvec",), 4: ("parallel_scan",)}


@pytest.mark.parametrize("over, field, expected", [
    (dict(rung=5), "rung", "<= 4"),
    (dict(rung=-1), "rung", ">= 0"),
    (dict(rung=2.0), "rung", "an int"),
    (dict(r_h="unitary"), "r_h", "one of 'free', 'spectral_norm', 'scaled_orthogonal'"),
    (dict(rung=4, r_h="spectral_norm"), "r_h", "'free' at rung 4"),
    (dict(rung=2, d_model=12, group_size=8), "d_model", "a multiple of group_size=8"),
    (dict(group_size=0), "group_size", ">= 1"),
    (dict(causal=False), "causal", "True"),
])
def test_bad_config_rejected(over, field, expected):
    given = over[field] if field in over else None
    with pytest.raises(ValueError, match=rf"elman config: field '{field}' expected {expected}.*got {given!r}"):
        models.config("elman", **over)


def test_elman_has_no_activation_field():
    with pytest.raises(ValueError, match=r"elman config: unknown field 'activation' \(given activation='relu'\)"):
        models.config("elman", activation="relu")


def test_scaled_orthogonal_scale_starts_at_logit_099():
    layer = _build(rung=0, r_h="scaled_orthogonal").layers[0]
    assert layer.r_scale.item() == pytest.approx(math.log(99), rel=1e-6)
