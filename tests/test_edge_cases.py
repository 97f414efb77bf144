"""The edge cases of DESIGN.md section 2, for every available backend: extreme
log-space magnitudes and exact cancellation, a bounded state over a long sequence, mass
conservation of the stack, routing ties and masks, and NaN/Inf propagation."""

import math

import pytest
import torch

import backends
from backends.check import LAYOUTS, check_pair, compare_tensors, flatten, tensor_inputs
from tests.registry_params import device_for, is_emulated, op_backend_params, require

BACKENDS = list(backends.BACKENDS)


def _pairs(op):
    return [pytest.param(b, id=b) if op in backends.BACKENDS[b].op_names()
            else pytest.param(b, id=b, marks=pytest.mark.skip(reason=f"backend {b} has no {op}.py yet"))
            for b in BACKENDS]


@pytest.mark.parametrize("backend", _pairs("logspace_matvec"))
@pytest.mark.parametrize("magnitude", [1e4, -1e4, 0.0])
def test_logspace_extremes_and_exact_cancellation(request, backend, magnitude):
    fn = require(request, "logspace_matvec", backend, torch.float32)
    dev = device_for(backend)
    # rows: x0 - x1 (exactly 0), 2 x0 + 0.5 x1, -3 x0 + x1, 0 x0 + 0 x1
    w = torch.tensor([[1.0, -1.0], [2.0, 0.5], [-3.0, 1.0], [0.0, 0.0]], device=dev)
    x_log = torch.full((2, 2), magnitude, device=dev)
    x_sign = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], device=dev)
    y_log, y_sign = (t.cpu() for t in fn(w, x_log, x_sign))
    assert torch.isneginf(y_log[:, 0]).all() and (y_sign[:, 0] == 1).all(), "exact zero: -inf with sign +1"
    assert torch.isneginf(y_log[:, 3]).all() and (y_sign[:, 3] == 1).all(), "all-zero weights: -inf, +1"
    expect = torch.tensor([magnitude + math.log(2.5), magnitude + math.log(2.0)])
    assert torch.allclose(y_log[0, 1:3].double(), expect.double(), rtol=0, atol=2e-3), y_log
    assert y_sign[0, 1:3].tolist() == [1.0, -1.0] and y_sign[1, 1:3].tolist() == [-1.0, 1.0]
    # gradients: finite everywhere, none from the exact zeros (columns 0 and 3), and the
    # closed form x_bj / y_bi elsewhere (every term here has the same magnitude)
    w.requires_grad_(True)
    x_log.requires_grad_(True)
    fn(w, x_log, x_sign)[0].backward(torch.ones(2, 4, device=dev))
    dw, dx = w.grad.cpu().double(), x_log.grad.cpu().double()
    assert torch.isfinite(dw).all() and torch.isfinite(dx).all(), (dw, dx)
    assert (dw[[0, 3]] == 0).all(), f"exact zeros pass no gradient, got {dw[[0, 3]]}"
    y = torch.tensor([[2.5, -2.0], [-2.5, 2.0]], dtype=torch.float64)  # y_bi / exp(magnitude), rows 1, 2
    xs = x_sign.cpu().double()
    want_dw = (xs[:, None, :] / y[:, :, None]).sum(0)  # [2 rows, K]
    # rtol: y_log near 1e4 is float32 to about 1e-3 (its ulp), as in the forward check
    assert torch.allclose(dw[1:3], want_dw, rtol=3e-3, atol=1e-6), (dw, want_dw)


@pytest.mark.parametrize("backend", _pairs("gated_update"))
def test_bounded_state_stays_within_the_bound(request, backend):
    fn = require(request, "gated_update", backend, torch.float32)
    T = 2_000 if is_emulated(backend) else 100_000  # the interpreters run one Python step per t
    g = torch.Generator().manual_seed(0)
    a = (4.0 * torch.randn(1, T, 6, generator=g) + 1.0).to(device_for(backend))  # pushes towards +bound
    b = (4.0 * torch.randn(1, T, 6, generator=g)).to(device_for(backend))
    bound = 0.125  # exact in float32; the gated input reaches 1, so tanh saturates to 1.0
    h = fn(a, b, None, bound).cpu()
    assert torch.isfinite(h).all()
    assert h.abs().max().item() <= bound
    assert h.max().item() > 0.99 * bound, "the inputs drive the state into saturation"


@pytest.mark.parametrize("backend", _pairs("stack_step"))
def test_stack_conserves_mass(request, backend):
    fn = require(request, "stack_step", backend, torch.float32)
    spec = backends.OPS["stack_step"]
    inputs = spec.make_inputs(dict(B=5, K=6, D=3), torch.float32, device_for(backend), seed=4)
    values, mass, popped_value, popped_mass = (t.cpu().double() for t in fn(**inputs))
    old_mass, actions = inputs["mass"].cpu().double(), inputs["actions"].cpu().double()
    push = actions[:, 0]
    fallen = push * old_mass[:, -1]  # a push moves the bottom slot's mass off the stack
    lhs = mass.sum(1) + popped_mass + fallen
    rhs = old_mass.sum(1) + push
    assert torch.allclose(lhs, rhs, atol=1e-5), (lhs, rhs)


@pytest.mark.parametrize("backend", _pairs("nsm_route"))
def test_route_top_k_ties_take_the_lower_index(request, backend):
    fn = require(request, "nsm_route", backend, torch.float32)
    dev = device_for(backend)
    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(1)).to(dev)
    row = torch.randn(4, generator=torch.Generator().manual_seed(2))
    w = torch.stack([row, row, -row, row]).to(dev)  # states 0, 1, 3 always tie
    states, weights = fn(x, w, None, None, 1)
    weights = weights.cpu()
    positive = (x.cpu() @ row) > 0  # where the tie is the maximum, state 0 must win
    assert torch.all(weights[..., 0][positive] == 1.0)
    assert torch.all(weights[..., 1][positive] == 0.0) and torch.all(weights[..., 3][positive] == 0.0)
    states2, weights2 = fn(x, w, None, None, 2)  # the two kept of three equal: 0 and 1, at 1/2 each
    assert torch.allclose(weights2.cpu()[..., :2][positive], torch.tensor(0.5))
    assert torch.all(weights2.cpu()[..., 3][positive] == 0.0)


@pytest.mark.parametrize("backend", _pairs("nsm_route"))
def test_route_masked_tokens_have_zero_weight(request, backend):
    fn = require(request, "nsm_route", backend, torch.float32)
    dev = device_for(backend)
    spec = backends.OPS["nsm_route"]
    inputs = spec.make_inputs(dict(B=2, T=6, D=3, S=4), torch.float32, dev, seed=5)
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False]], device=dev)
    inputs["mask"] = mask
    states, weights = fn(**inputs)
    assert torch.all(weights.cpu()[1, 3:] == 0.0)
    # a masked token contributes nothing: changing it leaves the states unchanged
    inputs["x"] = inputs["x"].clone()
    inputs["x"][1, 4] += 100.0
    states2, _ = fn(**inputs)
    assert torch.allclose(states.cpu()[1], states2.cpu()[1])


def _with_special(op, backend, value):
    """The op's second test case with one element of its first input set to ``value``."""
    spec = backends.OPS[op]
    inputs = spec.make_inputs(spec.test_cases[1], torch.float32, device_for(backend), seed=7)
    name = spec.differentiable_inputs[0]
    t = inputs[name].clone()
    t.view(-1)[t.numel() // 2] = value
    inputs[name] = t
    return spec, inputs


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("op, backend", [pytest.param(o, b, id=f"{o}-{b}") for o in backends.OPS for b in BACKENDS
                                         if o in backends.BACKENDS[b].op_names()])
def test_nan_and_inf_propagate_as_the_math_says(request, op, backend, value):
    fn = require(request, op, backend, torch.float32)
    spec, inputs = _with_special(op, backend, value)
    got = flatten(fn(**inputs))  # must return, not crash or hang
    ref_inputs = {k: (v.detach().cpu().double() if isinstance(v, torch.Tensor) and v.is_floating_point()
                      else v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    if isinstance(inputs.get("state"), tuple):
        ref_inputs["state"] = tuple(t.cpu().double() for t in inputs["state"])
    ref = flatten(spec.reference(**ref_inputs))
    for name, g, r in zip(spec.outputs, got, ref):
        g, r = g.cpu().double(), r.double()
        assert torch.equal(torch.isnan(g), torch.isnan(r)), f"{name}: NaN pattern differs from the reference"
        assert torch.equal(torch.isposinf(g), torch.isposinf(r)), f"{name}: +Inf pattern differs"
        assert torch.equal(torch.isneginf(g), torch.isneginf(r)), f"{name}: -Inf pattern differs"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op, backend", op_backend_params())
def test_non_contiguous_inputs_give_the_references_result(request, op, backend, layout):
    """Every tensor argument non-contiguous (``backends.check.non_contiguous``): forward
    and gradients still match the float64 reference. A kernel that reads or writes by
    address without making its tensors contiguous fails "sliced"; one that writes a
    gradient allocated like a transposed input fails "transposed"."""
    require(request, op, backend, torch.float32)
    spec = backends.OPS[op]
    result = check_pair(op, backend, spec.test_cases[1], torch.float32, device_for(backend), seed=3, layout=layout)
    assert result.ok, result.problems
