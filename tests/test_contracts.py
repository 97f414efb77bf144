"""The contracts and the registry: every op's spec is complete, implementations are tied
to their contract's signature, and resolve() fails loudly with the valid choices."""

import inspect
import math

import pytest
import torch

import backends
from backends.check import differentiable_leaves, tensor_inputs
from backends.registry import MODES, ContractError, implements
from tests.registry_params import op_backend_params, require


@pytest.mark.parametrize("op", list(backends.OPS))
def test_spec_is_complete(op):
    spec = backends.OPS[op]
    assert spec.name == op == spec.reference.__name__
    assert spec.reference.__module__ == f"backends.ops.{op}"
    assert spec.doc and spec.outputs and spec.test_cases
    assert set(spec.tolerances) == {torch.float64, torch.float32, torch.bfloat16}
    assert set(spec.differentiable_inputs) <= set(spec.args)
    assert set(spec.differentiable_outputs) <= set(spec.outputs)
    params = list(inspect.signature(spec.reference).parameters)
    assert list(spec.args) == [p for p in params if p in spec.args], "tensor args in signature order"
    for case in spec.test_cases:
        for mode in MODES:
            assert spec.flops(case, mode) > 0
            assert spec.bytes(case, torch.float32, mode) > 0
        assert spec.bytes(case, torch.bfloat16) < spec.bytes(case, torch.float32)
        inputs = spec.make_inputs(case, torch.float32, "cpu", seed=3)
        assert set(inputs) == set(params), "make_inputs gives exactly the reference's arguments"
        again = spec.make_inputs(case, torch.float32, "cpu", seed=3)
        for k, t in tensor_inputs(spec, inputs).items():
            assert torch.equal(torch.nan_to_num(t), torch.nan_to_num(tensor_inputs(spec, again)[k])), "seeded"
        assert differentiable_leaves(spec, inputs)
    for key, space in spec.case_space.items():
        assert isinstance(space, (range, list)) and len(space) > 0, key


@pytest.mark.parametrize("op", list(backends.OPS))
def test_reference_gradcheck_float64(op):
    """The references themselves are differentiable (autograd) on their first case."""
    spec = backends.OPS[op]
    case = spec.test_cases[1]
    inputs = spec.make_inputs(case, torch.float64, "cpu", seed=1)
    leaves = differentiable_leaves(spec, inputs)
    for t in leaves.values():
        t.requires_grad_(True)
    out = [t for t in _flat(spec.reference(**inputs)) if t.requires_grad]
    grads = torch.autograd.grad(sum(torch.nan_to_num(o, neginf=0.0).sum() for o in out), list(leaves.values()), allow_unused=True)
    assert any(g is not None for g in grads)


def _flat(v):
    return [t for x in v for t in _flat(x)] if isinstance(v, (tuple, list)) else [v]


@pytest.mark.parametrize("op, backend", op_backend_params())
def test_implementation_signature_matches_contract(request, op, backend):
    impl = require(request, op, backend)
    assert inspect.signature(impl.fn) == inspect.signature(backends.OPS[op].reference)
    assert impl.fn.__name__ == op and impl.fn.__module__ == f"backends.{backend}.{op}"


def _fake(name, module, params):
    """A function object named ``name`` in ``module`` with ``params`` as its signature."""
    ns = {}
    exec(f"def {name}({params}): pass", ns)
    fn = ns[name]
    fn.__module__ = module
    return fn


def test_implements_rejects_a_wrong_signature():
    with pytest.raises(ContractError, match="does not match the contract"):
        implements("parallel_scan")(_fake("parallel_scan", "backends.fake.parallel_scan", "a, b, h_init=None"))
    with pytest.raises(ContractError, match="does not match the contract"):
        implements("parallel_scan")(_fake("parallel_scan", "backends.fake.parallel_scan", "a, b, h0=0"))


def test_implements_ties_names_to_the_op():
    with pytest.raises(ContractError, match="must be named"):
        implements("parallel_scan")(_fake("scan", "backends.fake.parallel_scan", "a, b, h0=None"))
    with pytest.raises(ContractError, match="must live in"):
        implements("parallel_scan")(_fake("parallel_scan", "backends.fake.scan_kernels", "a, b, h0=None"))
    with pytest.raises(ContractError, match="unknown op"):
        implements("scan")(_fake("scan", "backends.fake.scan", "a, b, h0=None"))


def test_resolve_gives_a_canonical_mix():
    ops = backends.resolve({"default": "torch"}, device="cpu")
    assert list(ops.mix) == list(backends.OPS) and set(ops.mix.values()) == {"torch"}
    assert callable(ops.parallel_scan)
    assert backends.resolve("torch").mix == ops.mix


@pytest.mark.parametrize("mix, match", [
    ({"default": "torch", "scan": "torch"}, "unknown op.*valid keys: default, micro_mlp"),
    ({"default": "cuda_magic"}, "unknown backend 'cuda_magic'.*backends are: torch, triton, numba_cuda, numba_cpu"),
    ({"parallel_scan": "torch"}, "no backend for op 'micro_mlp' and has no 'default'"),
])
def test_resolve_rejects_bad_mixes(mix, match):
    with pytest.raises(ValueError, match=match):
        backends.resolve(mix, device="cpu")


def test_resolve_rejects_an_unavailable_backend(monkeypatch):
    b = backends.BACKENDS["numba_cpu"]
    monkeypatch.setattr(b, "probe", lambda: "numba is not installed (test)")
    monkeypatch.setattr(type(b), "op_names", lambda self: tuple(backends.OPS))
    with pytest.raises(ValueError, match=r"unavailable here: numba is not installed \(test\); available: torch"):
        backends.resolve({"default": "torch", "parallel_scan": "numba_cpu"})


def test_resolve_rejects_a_backend_without_the_op(monkeypatch):
    b = backends.BACKENDS["numba_cpu"]
    monkeypatch.setattr(type(b), "op_names", lambda self: () if self is b else tuple(backends.OPS))
    with pytest.raises(ValueError, match="does not implement op 'micro_mlp'; backends that do: torch"):
        backends.resolve({"default": "numba_cpu"})


def test_resolve_rejects_a_device_conflict():
    with pytest.raises(ValueError, match="runs on cpu.*but device 'meta' was requested"):
        backends.resolve({"default": "torch"}, device="meta")


def test_get_lists_valid_choices():
    with pytest.raises(ValueError, match="ops are: micro_mlp, gated_update"):
        backends.get("scan", "torch")
    with pytest.raises(ValueError, match="backends are: torch"):
        backends.get("parallel_scan", "cuda_magic")


def test_flops_and_bytes_scale_with_the_problem():
    spec = backends.OPS["parallel_scan"]
    small, big = dict(B=1, T=10, D=10), dict(B=2, T=10, D=10)
    assert math.isclose(spec.flops(big), 2 * spec.flops(small))
    assert math.isclose(spec.bytes(big), 2 * spec.bytes(small))
    assert spec.bytes(small, torch.float32, "forward_backward") == spec.bytes(small) + spec.bytes(small, torch.float32, "backward")
