"""Which kernels at which specialisations: every op's forward and backward at the
shapes of the benchmark suites (suites/op_shapes.py, every suite, the GPU-only cases
included) in every dtype each GPU backend takes, and at the op calls the model grids
make (suites/model_runs.py, see models.py).

Nothing here chooses a block size: each call is run through the backend's own launcher
on meta tensors (shapes and dtypes, no data, no device), with the launches captured
(triton.captured, numba_cuda.captured), so the specialisations are exactly the
launcher's choices for that shape on that chip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GPU_BACKENDS = ("triton", "numba_cuda")
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class Call:
    """One op call to compile for: the case dict its contract's make_inputs takes."""

    op: str
    case: dict  # sizes and options for the contract's make_inputs (empty when inputs are given)
    source: str  # "suite full", "model fastlane/d64 B4-T1024"
    inputs: dict | None = field(default=None, hash=False, compare=False)  # the op's arguments (meta tensors)

    @property
    def case_id(self) -> str:
        if self.inputs is not None:  # "x[4,1024,64] params[64,112]"
            return " ".join(f"{k}[{','.join(map(str, v.shape))}]" for k, v in self.inputs.items() if hasattr(v, "shape"))
        return "-".join(f"{k}{v}" for k, v in self.case.items())


def suite_calls(suites=None) -> list[Call]:
    """Every case of the op suites (each distinct case once, under the first suite that
    has it); cases meant only for the CPU are left out."""
    from suites.op_shapes import SUITES

    calls, seen = [], set()
    for suite, ops in SUITES.items():
        if suites is not None and suite not in suites:
            continue
        for op, cases in ops.items():
            for case in cases:
                if case.get("only_on", "cuda") != "cuda":
                    continue
                case = {k: v for k, v in case.items() if k != "only_on"}
                key = (op, repr(sorted(case.items())))
                if key not in seen:
                    seen.add(key)
                    calls.append(Call(op, case, f"suite {suite}"))
    return calls


def meta_inputs(call: Call, dtype):
    """The op's inputs for the case as meta tensors (shapes and dtypes only). Contracts
    whose make_inputs needs data (a copy) build on the CPU first."""
    import torch

    import backends

    if call.inputs is not None:  # a model's call: its arguments in the dtype asked for
        return {k: _to_meta(v, dtype) for k, v in call.inputs.items()}
    spec = backends.OPS[call.op]
    try:
        with torch.device("meta"):
            inputs = spec.make_inputs(call.case, dtype, "meta")
    except (NotImplementedError, RuntimeError):
        inputs = spec.make_inputs(call.case, dtype, "cpu")
    return {k: _to_meta(v) for k, v in inputs.items()}


def _to_meta(value, dtype=None):
    """Tensors as meta tensors (floating ones in ``dtype`` when given)."""
    import torch

    if isinstance(value, torch.Tensor):
        value = value.to("meta")
        return value.to(dtype) if dtype is not None and value.is_floating_point() else value
    if isinstance(value, tuple):
        return tuple(_to_meta(v, dtype) for v in value)
    return value


def _tensors(value):
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def run_call(impl, call: Call, dtype, capture, chip) -> dict[str, list]:
    """{direction: launches}: the op's forward, then (when the backend has one) its
    backward, through the backend's launcher on meta tensors, each under ``capture``."""
    import torch

    import backends

    spec = backends.OPS[call.op]
    inputs = meta_inputs(call, dtype)
    for name in spec.differentiable_inputs:
        value = inputs.get(name)
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            inputs[name] = value.detach().requires_grad_()
        elif isinstance(value, tuple):
            inputs[name] = tuple(t.detach().requires_grad_() if t is not None else None for t in value)
    out = {}
    with capture(chip) as launches:
        outputs = impl.fn(**inputs)
    out["forward"] = launches
    if impl.grad:
        live = [t for t in _tensors(outputs) if t.requires_grad]
        with capture(chip) as launches:
            torch.autograd.backward(live, [torch.ones_like(t) for t in live])
        out["backward"] = launches
    return out
