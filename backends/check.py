"""The correctness check of one (op, backend, case, dtype): forward and every gradient
against the float64 reference. The test suite, ``arsenal check`` and the benchmark
gate all call ``check_pair``, so "correct" means one thing everywhere.

Error model: an element passes when |got - ref| <= atol * scale + rtol * |ref|, where
scale = max(1, max |ref|) of that tensor (so a tolerance reads as a fraction of the
tensor's size). ``error`` is the worst ratio of |got - ref| to that bound: <= 1 passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from backends.registry import DTYPE_NAMES, IMPLS, OPS_REGISTRY, Tolerance, poison_outputs


def flatten(value) -> list:
    """Nested tuples of tensors (banked_attention's (o, (S, z))) -> a flat list."""
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in flatten(v)]
    return [value]


def tensor_inputs(spec, inputs: dict) -> dict:
    """{"q": q, ..., "state.S": S, "state.z": z}: every tensor argument by name."""
    out = {}
    for name, arg in spec.args.items():
        v = inputs.get(name)
        if isinstance(v, (tuple, list)):  # a tuple argument (elman_scan's log-space h0 by position)
            subs = list(arg) if isinstance(arg, dict) else range(len(v))
            out.update({f"{name}.{sub}": t for sub, t in zip(subs, v)})
        elif v is not None:
            out[name] = v
    return out


def differentiable_leaves(spec, inputs: dict) -> dict:
    """The tensors that get gradients: differentiable inputs that are present."""
    named = tensor_inputs(spec, inputs)
    return {k: t for k, t in named.items() if k.split(".")[0] in spec.differentiable_inputs}


def compare_tensors(name: str, got: torch.Tensor, ref: torch.Tensor, tol: Tolerance) -> tuple[float, list[str]]:
    """Elementwise check of got against the float64 ref; NaN/Inf must match the reference."""
    got = got.detach().to("cpu", torch.float64)
    ref = ref.detach().to("cpu", torch.float64)
    if got.shape != ref.shape:
        return float("inf"), [f"{name}: shape {tuple(got.shape)}, expected {tuple(ref.shape)}"]
    finite = torch.isfinite(ref)
    problems = []
    same_special = (torch.isnan(ref) & torch.isnan(got)) | (torch.isinf(ref) & (got == ref))
    if torch.any(~finite & ~same_special):
        problems.append(f"{name}: {int((~finite & ~same_special).sum())} non-finite reference elements not matched")
    unwritten = finite & torch.isnan(got)
    if torch.any(unwritten):
        problems.append(f"{name}: {int(unwritten.sum())} elements are NaN where the reference is finite (unwritten?)")
    if not torch.any(finite):
        return 0.0, problems
    scale = max(1.0, ref[finite].abs().max().item())
    bound = tol.atol * scale + tol.rtol * ref.abs()
    err = torch.where(finite, (got - ref).abs() / bound, torch.zeros_like(ref))
    err = torch.nan_to_num(err, nan=float("inf"))
    worst = err.max().item()
    if worst > 1.0:
        idx = tuple(int(i) for i in torch.nonzero(err == err.max())[0])
        problems.append(f"{name}: error {worst:.3g}x the tolerance (rtol={tol.rtol:g}, atol={tol.atol:g}) "
                        f"at {idx}: got {got[idx].item():.9g}, expected {ref[idx].item():.9g}")
    return worst, problems


@dataclass
class CheckResult:
    op: str
    backend: str
    case: dict
    dtype: str
    device: str
    ok: bool
    forward_error: float = float("nan")  # worst |err| / tolerance over outputs
    grad_error: float | None = None  # None: gradients not checked (backend has none)
    problems: list = field(default_factory=list)
    seconds: float = 0.0


LAYOUTS = ("sliced", "transposed")  # the non-contiguous layouts check_pair can pass


def non_contiguous(t, layout: str):
    """A non-contiguous tensor equal to ``t``, as a model's slices and transposes reach
    the ops. "sliced": every other element of a last axis twice as wide (gaps between
    elements: a kernel that reads by address reads the wrong ones); "transposed": the
    last two axes stored column-major (dense, so ``torch.empty_like`` keeps those strides:
    a kernel that writes an ``empty_like`` result by address writes it transposed).
    A tensor with no such axes of at least two elements stays as it is, and so does a
    value that is not a tensor."""
    if not isinstance(t, torch.Tensor) or t.dim() == 0 or t.shape[-1] < 2:
        return t
    if layout == "transposed":
        if t.dim() < 2 or t.shape[-2] < 2:
            return t
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    view = wide[..., ::2]
    view.copy_(t)
    return view


def _to_reference(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64 if t.is_floating_point() else t.dtype)


def check_pair(op: str, backend: str, case: dict, dtype: torch.dtype = torch.float32, device="cpu",
               seed: int = 0, grad: bool = True, fn=None, oracle=None, layout: str | None = None) -> CheckResult:
    """Run ``backend``'s ``op`` on ``case`` and compare with the float64 reference.

    ``fn`` replaces the registry's implementation (a benchmark peer such as
    torch_compile or an adapted public kernel, named by ``backend``). ``oracle``
    replaces the reference (same signature, called on float64 CPU copies of the inputs):
    the benchmark gate passes the torch backend for gradients at sizes where the
    sequential reference's backward is too slow. ``layout`` ("sliced" or "transposed"):
    every tensor argument is passed non-contiguous in that layout (``non_contiguous``)."""
    import backends

    start = time.perf_counter()
    spec = OPS_REGISTRY[op]
    if fn is None:
        fn = backends.get(op, backend)
        grad = grad and IMPLS[(op, backend)].grad
    fwd_tol, grad_tol = spec.tolerances[dtype]
    result = CheckResult(op, backend, dict(case), DTYPE_NAMES[dtype], str(device), ok=False)
    do_grad = grad

    inputs = spec.make_inputs(case, dtype, device, seed)
    if layout is not None:
        inputs = {k: tuple(non_contiguous(t, layout) for t in v) if isinstance(v, tuple) else non_contiguous(v, layout)
                  for k, v in inputs.items()}
    ref_inputs = {k: (_to_reference(v) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    for k, v in inputs.items():  # tuple arguments (banked_attention's state, elman_scan's log-space h0)
        if isinstance(v, tuple):
            ref_inputs[k] = tuple(_to_reference(t) for t in v)
    leaves = differentiable_leaves(spec, inputs) if do_grad else {}
    ref_leaves = differentiable_leaves(spec, ref_inputs) if do_grad else {}
    for t in list(leaves.values()) + list(ref_leaves.values()):
        t.requires_grad_(True)
    before = {k: t.detach().clone() for k, t in tensor_inputs(spec, inputs).items()}

    try:
        with poison_outputs():
            got = flatten(fn(**inputs))
    except Exception as exc:  # a crash is a failed check, reported with its message
        result.problems.append(f"forward raised {type(exc).__name__}: {exc}")
        result.seconds = time.perf_counter() - start
        return result
    ref = flatten((oracle or spec.reference)(**ref_inputs))

    problems = []
    for k, t in tensor_inputs(spec, inputs).items():
        if not torch.equal(torch.nan_to_num(t.detach()), torch.nan_to_num(before[k])):
            problems.append(f"input '{k}' was modified by the op")
    if len(got) != len(ref):
        problems.append(f"returned {len(got)} tensors, the contract has {len(ref)} ({', '.join(spec.outputs)})")
    elif spec.compare is not None:
        worst, p = spec.compare(ref_inputs, got, ref, fwd_tol)
        result.forward_error = worst
        problems += p
    else:
        errs = []
        for name, g, r in zip(spec.outputs, got, ref):
            if g.dtype != dtype:
                problems.append(f"output '{name}' has dtype {g.dtype}, expected {dtype}")
            e, p = compare_tensors(name, g, r, fwd_tol)
            errs.append(e)
            problems += p
        result.forward_error = max(errs)

    if do_grad and not problems:
        g_seed = torch.Generator().manual_seed(seed + 12345)
        got_terms, ref_terms = [], []
        masks = spec.grad_mask(ref_inputs, ref) if spec.grad_mask is not None else {}
        for name, g, r in zip(spec.outputs, got, ref):
            if name not in spec.differentiable_outputs:
                continue
            cot = torch.randn(r.shape, generator=g_seed, dtype=torch.float64)
            keep = torch.isfinite(r.detach()) & masks.get(name, True)
            cot = torch.where(keep, cot, torch.zeros_like(cot))
            ref_terms.append((torch.where(torch.isfinite(r), r, 0.0) * cot).sum())
            gd = g.to(torch.float64) if g.dtype != torch.float64 else g
            got_terms.append((torch.where(torch.isfinite(gd), gd, 0.0) * cot.to(gd.device)).sum())
        try:
            with poison_outputs():  # an unwritten gradient element shows as NaN, as in the forward
                got_grads = torch.autograd.grad(sum(got_terms), list(leaves.values()), allow_unused=True)
        except Exception as exc:
            problems.append(f"backward raised {type(exc).__name__}: {exc}")
            got_grads = None
        ref_grads = torch.autograd.grad(sum(ref_terms), list(ref_leaves.values()), allow_unused=True)
        if got_grads is not None:
            errs = []
            for name, gg, rg, leaf in zip(leaves, got_grads, ref_grads, ref_leaves.values()):
                gg = torch.zeros_like(leaf) if gg is None else gg
                rg = torch.zeros_like(leaf) if rg is None else rg
                if gg.dtype != leaf.dtype and gg.dtype != dtype:
                    problems.append(f"gradient of '{name}' has dtype {gg.dtype}, expected {dtype}")
                e, p = compare_tensors(f"d{name}", gg, rg, grad_tol)
                errs.append(e)
                problems += p
            result.grad_error = max(errs) if errs else 0.0

    result.problems = problems
    result.ok = not problems
    result.seconds = time.perf_counter() - start
    return result
