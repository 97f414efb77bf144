"""Bad input raises ValueError or TypeError naming the op, the backend, the argument,
what was expected and what was given: for every op of every available backend."""

import pytest
import torch

import backends
from backends.registry import TensorArg
from tests.registry_params import device_for, op_backend_params, require


def _valid(op, backend):
    spec = backends.OPS[op]
    return spec.make_inputs(spec.test_cases[1], torch.float32, device_for(backend), seed=0)


def _first_fixed_rank_arg(spec):
    return next(n for n, a in spec.args.items() if isinstance(a, TensorArg) and not a.dims.startswith("..."))


def _raises(exc, fn, inputs, op, backend, arg, *fragments):
    with pytest.raises(exc) as info:
        fn(**inputs)
    msg = str(info.value)
    for part in (op, backend, f"'{arg}'", *fragments):
        assert part in msg, f"{part!r} missing from: {msg}"
    return msg


@pytest.mark.parametrize("op, backend", op_backend_params())
def test_wrong_rank(request, op, backend):
    fn = require(request, op, backend)
    inputs = _valid(op, backend)
    arg = _first_fixed_rank_arg(backends.OPS[op])
    inputs[arg] = inputs[arg][None]
    _raises(ValueError, fn, inputs, op, backend, arg, "expected", "got shape")


@pytest.mark.parametrize("op, backend", op_backend_params())
def test_mismatched_sizes(request, op, backend):
    fn = require(request, op, backend)
    spec = backends.OPS[op]
    inputs = _valid(op, backend)
    # the first tensor argument that repeats a dimension named by an earlier one
    seen, target = set(), None
    for name, arg in spec.args.items():
        if isinstance(arg, TensorArg) and inputs.get(name) is not None:
            dims = arg.dims.split()
            shared = [i for i, d in enumerate(dims) if d in seen and not d.isdigit()]
            if shared and target is None:
                target, axis = name, shared[-1] - len(dims)
            seen.update(dims)
    t = inputs[target]
    pad_shape = list(t.shape)
    pad_shape[axis] = 1
    inputs[target] = torch.cat([t, torch.zeros(pad_shape, dtype=t.dtype, device=t.device)], dim=axis)
    _raises(ValueError, fn, inputs, op, backend, target, "expected", "got")


@pytest.mark.parametrize("op, backend", op_backend_params())
def test_integer_dtype(request, op, backend):
    fn = require(request, op, backend)
    inputs = _valid(op, backend)
    arg = next(iter(backends.OPS[op].args))
    inputs[arg] = inputs[arg].to(torch.int32)
    _raises(TypeError, fn, inputs, op, backend, arg, "float", "torch.int32")


@pytest.mark.parametrize("op, backend", op_backend_params())
def test_mixed_float_dtypes(request, op, backend):
    fn = require(request, op, backend)
    inputs = _valid(op, backend)
    names = [n for n, a in backends.OPS[op].args.items() if isinstance(a, TensorArg) and a.kind == "float"]
    second = names[1]
    inputs[second] = inputs[second].double()
    _raises(TypeError, fn, inputs, op, backend, second, "torch.float32", "torch.float64")


@pytest.mark.parametrize("op, backend", op_backend_params())
def test_tensors_on_different_devices(request, op, backend):
    fn = require(request, op, backend)
    inputs = _valid(op, backend)
    second = [n for n, a in backends.OPS[op].args.items() if isinstance(a, TensorArg)][1]
    inputs[second] = inputs[second].to("meta")
    _raises(ValueError, fn, inputs, op, backend, second, "device", "meta")


@pytest.mark.parametrize("op, backend", op_backend_params())
def test_not_a_tensor(request, op, backend):
    fn = require(request, op, backend)
    inputs = _valid(op, backend)
    arg = next(iter(backends.OPS[op].args))
    inputs[arg] = inputs[arg].tolist()
    _raises(TypeError, fn, inputs, op, backend, arg, "torch.Tensor", "list")


OPTION_CASES = [
    ("micro_mlp", {"activation": "gelu"}, ValueError, "activation", ("relu", "'gelu'")),
    ("micro_mlp", {"activation": None}, ValueError, "activation", ("None",)),
    ("gated_update", {"bound": 0.0}, ValueError, "bound", ("> 0", "0.0")),
    ("gated_update", {"bound": -1.5}, ValueError, "bound", ("> 0", "-1.5")),
    ("gated_update", {"bound": float("nan")}, ValueError, "bound", ("nan",)),
    ("gated_update", {"bound": "2"}, TypeError, "bound", ("positive float", "str")),
    ("nsm_route", {"top_k": 0}, ValueError, "top_k", ("[1, S=", "got 0")),
    ("nsm_route", {"top_k": 99}, ValueError, "top_k", ("[1, S=", "got 99")),
    ("nsm_route", {"top_k": 1.5}, TypeError, "top_k", ("int", "float")),
]


@pytest.mark.parametrize("op, options, exc, arg, fragments", OPTION_CASES,
                         ids=[f"{c[0]}-{c[3]}={c[1][c[3]]!r}" for c in OPTION_CASES])
@pytest.mark.parametrize("backend", list(backends.BACKENDS))
def test_bad_options(request, backend, op, options, exc, arg, fragments):
    if op not in backends.BACKENDS[backend].op_names():
        pytest.skip(f"backend {backend} has no backends/{backend}/{op}.py yet")
    fn = require(request, op, backend)
    inputs = {**_valid(op, backend), **options}
    _raises(exc, fn, inputs, op, backend, arg, *fragments)


def test_unsupported_dtype_names_the_backend_dtypes(request):
    backend = next((n for n, b in backends.BACKENDS.items() if b.available and "parallel_scan" in b.op_names()
                    and torch.float64 not in backends.get("parallel_scan", n).dtypes), None)
    if backend is None:
        pytest.skip("every available backend takes float64")
    spec = backends.OPS["parallel_scan"]
    inputs = spec.make_inputs(spec.test_cases[1], torch.float64, device_for(backend))
    with pytest.raises(TypeError, match=rf"parallel_scan\[{backend}\]: tensors expected dtype in .*got float64"):
        backends.get("parallel_scan", backend)(**inputs)
