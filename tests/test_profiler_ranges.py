"""Every op call shows in torch.profiler as ``op/backend/forward`` and, when a graph is
recorded, its backward as ``op/backend/backward`` around the op's backward kernels."""

import time

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import backends
from backends.check import differentiable_leaves, flatten
from tests.registry_params import require

CASES = {"parallel_scan": dict(B=2, T=16, D=8), "stack_step": dict(B=3, K=5, D=4)}


def _loss(op, fn, inputs):
    spec = backends.OPS[op]
    out = dict(zip(spec.outputs, flatten(fn(**inputs))))
    return sum(out[n].sum() for n in spec.differentiable_outputs)


def _inputs(op):
    spec = backends.OPS[op]
    inputs = spec.make_inputs(CASES[op], torch.float32, "cpu", seed=0)
    for t in differentiable_leaves(spec, inputs).values():
        t.requires_grad_(True)
    return inputs


@pytest.mark.parametrize("backend", ["torch", "numba_cpu"])
def test_forward_and_backward_ranges_of_two_ops(request, backend):
    fns = {op: require(request, op, backend) for op in CASES}
    inputs = {op: _inputs(op) for op in CASES}
    for op in CASES:  # compile (Numba) outside the profile
        _loss(op, fns[op], _inputs(op)).backward()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss = sum(_loss(op, fns[op], inputs[op]) for op in CASES)
        loss.backward()
    events = {}
    for e in prof.events():
        events.setdefault(e.name, []).append(e)
    for op in CASES:
        for phase in ("forward", "backward"):
            name = f"{op}/{backend}/{phase}"
            assert len(events.get(name, [])) == 1, f"{name}: {len(events.get(name, []))} ranges"
        backward = events[f"{op}/{backend}/backward"][0]
        assert backward.cpu_time_total > 0
        # the op's backward kernels run inside the range (autograd nodes are its children)
        inside = [c.name for c in backward.cpu_children]
        assert any("evaluate_function" in n or "Backward" in n for n in inside), inside
    for op in CASES:
        for t in differentiable_leaves(backends.OPS[op], inputs[op]).values():
            assert t.grad is not None and torch.isfinite(t.grad).all()


def test_ranges_leave_gradients_unchanged():
    """The backward range wraps the inputs in an identity node: gradients are those of
    the unprofiled call, also for a retained graph replayed and an output changed in place."""
    fn = backends.get("stack_step", "torch")
    plain, profiled = _inputs("stack_step"), _inputs("stack_step")
    _loss("stack_step", fn, plain).backward()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        values, mass, popped_value, popped_mass = fn(**profiled)
        values.mul_(1.0)  # the caller may write into an output
        loss = values.sum() + mass.sum() + popped_value.sum() + popped_mass.sum()
        loss.backward(retain_graph=True)
        first = {k: t.grad.clone() for k, t in differentiable_leaves(backends.OPS["stack_step"], profiled).items()}
        loss.backward()
    names = [e.name for e in prof.events()]
    assert names.count("stack_step/torch/backward") == 2  # each backward of the retained graph
    for k, t in differentiable_leaves(backends.OPS["stack_step"], plain).items():
        assert torch.equal(first[k], t.grad)


def test_no_range_and_no_wrapping_without_a_profiler():
    fn = backends.get("parallel_scan", "torch")
    inputs = _inputs("parallel_scan")
    h = fn(**inputs)
    assert "CloseSpan" not in type(h.grad_fn).__name__
    node_names = set()
    stack = [h.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or type(node).__name__ in node_names:
            continue
        node_names.add(type(node).__name__)
        stack += [n for n, _ in node.next_functions]
    assert not any("CloseSpan" in n for n in node_names), node_names


def test_chained_calls_have_disjoint_backward_ranges():
    """h2 = scan(a2, scan(a, b)): the second call's backward range closes before the
    first call's opens (each range holds its own call's nodes only)."""
    fn = backends.get("parallel_scan", "torch")
    first, second = _inputs("parallel_scan"), _inputs("parallel_scan")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        h1 = fn(first["a"], first["b"], first["h0"])
        h2 = fn(second["a"], h1, second["h0"])
        h2.sum().backward()
    ranges = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                    if e.name == "parallel_scan/torch/backward")
    assert len(ranges) == 2
    assert ranges[0][1] <= ranges[1][0], ranges
    assert first["a"].grad is not None and second["a"].grad is not None


@pytest.mark.parametrize("backend", ["torch", "numba_cpu"])
def test_op_clock_times_each_phase_of_each_call(request, backend):
    """``backends.op_clock`` times the same spans as the ranges, without a profiler: one
    forward and one backward per call, inside the wall time of the step, and gradients
    unchanged."""
    fns = {op: require(request, op, backend) for op in CASES}
    for op in CASES:  # compile (Numba) outside the clock
        _loss(op, fns[op], _inputs(op)).backward()
    plain, clocked = {op: _inputs(op) for op in CASES}, {op: _inputs(op) for op in CASES}
    sum(_loss(op, fns[op], plain[op]) for op in CASES).backward()
    with backends.op_clock() as clock:
        t0 = time.perf_counter_ns()
        sum(_loss(op, fns[op], clocked[op]) for op in CASES).backward()
        wall = time.perf_counter_ns() - t0
    names = {f"{op}/{backend}/{phase}" for op in CASES for phase in ("forward", "backward")}
    assert set(clock.ns) == names and all(clock.calls[n] == 1 for n in names), clock.calls
    assert all(clock.ns[n] > 0 for n in names) and sum(clock.ns.values()) <= wall
    for op in CASES:
        got, want = differentiable_leaves(backends.OPS[op], clocked[op]), differentiable_leaves(backends.OPS[op], plain[op])
        for k in want:
            assert torch.equal(got[k].grad, want[k].grad), (op, k)
    with backends.op_clock() as clock:  # no graph: the forward only
        with torch.no_grad():
            fns["parallel_scan"](**_inputs("parallel_scan"))
    assert set(clock.calls) == {f"parallel_scan/{backend}/forward"}


def test_op_clock_does_not_nest_and_ends_on_error():
    with pytest.raises(RuntimeError, match="clocks do not nest"):
        with backends.op_clock(), backends.op_clock():
            pass
    with pytest.raises(ValueError):
        with backends.op_clock():
            backends.get("parallel_scan", "torch")(torch.rand(2, 3, 4), torch.rand(2, 3, 5))
    with backends.op_clock() as clock:  # the failed one ended: a new clock starts
        backends.get("parallel_scan", "torch")(torch.rand(2, 3, 4), torch.rand(2, 3, 4))
    assert clock.calls == {"parallel_scan/torch/forward": 1}
