"""Profiling a model step: peak memory, and each op's share from the spans every op
call opens (``op/backend/forward`` and ``op/backend/backward``, backends/registry.py):
timed by ``backends.op_clock`` on the CPU, by torch.profiler's device times on CUDA.

CPU peak memory (eager code) is the peak of the bytes of tensor storages created during the call and
still alive (``LiveStorages``, a dispatch mode that keeps one entry per live storage):
it sees torch tensors only (a Numba kernel's own scratch arrays are not counted). It
replaced a running sum of torch.profiler's allocation events, whose event list grew with
every op call: the stackformer's B=16, T=1,024 step (millions of small calls) took the
probe process to 20 GB. Compiled code, which a dispatch mode does not see, is measured
from the CPU allocator's own events with the op events switched off
(``allocator_peak``). On CUDA it is the allocator's peak.
"""

from __future__ import annotations

import re
import time
import weakref
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import backends

class LiveStorages(TorchDispatchMode):
    """Bytes of the CPU tensor storages that ops return during the mode, while they live:
    ``peak`` is the most at once. A storage is counted once (views and in-place results
    share it) and leaves the count when it is freed (a weak reference's callback; storages
    keep their Python object, so the reference lives as long as the storage)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[int, weakref.ref]] = {}
        self.current = self.peak = 0

    def _freed(self, key: int):
        entry = self.live.pop(key, None)
        if entry is not None:
            self.current -= entry[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type == "cpu" and not t.is_sparse:
                storage = t.untyped_storage()
                key = id(storage)
                if key in self.live or storage.nbytes() == 0:
                    continue
                self.live[key] = (storage.nbytes(), weakref.ref(storage, lambda _, k=key: self._freed(k)))
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
        return out


RANGE = re.compile(r"^(?P<op>[a-z_]+)/(?P<backend>[a-z_0-9]+)/(?P<phase>forward|backward)$")

def _profile(fn, device, steps: int):
    from torch.profiler import ProfilerActivity, profile

    from bench.ops.profile import quiet_profiler

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.device(device).type == "cuda" else [])
    sync = sync_of(device)
    with quiet_profiler(), profile(activities=acts) as prof:
        t0 = time.perf_counter_ns()
        for _ in range(steps):
            fn()
        sync()
        wall = (time.perf_counter_ns() - t0) / steps
    return prof, wall


def peak_memory(fn, device, compiled: bool = False) -> int:
    """Peak bytes allocated during one call of ``fn`` above what was live before it.
    ``compiled``: ``fn`` runs torch.compile'd code, whose allocations a dispatch mode does
    not see (inductor allocates in its generated code, and dynamo does not trace under a
    mode): on the CPU its peak comes from torch.profiler's allocation events instead (a
    compiled graph makes few calls, so the event list stays small)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    if not compiled:
        with LiveStorages() as live:
            fn()
        return int(live.peak)
    return allocator_peak(fn)


def allocator_peak(fn) -> int:
    """Peak bytes the CPU allocator holds during one call of ``fn`` above what was held
    before it, from torch.profiler's allocation events ("[memory]", +bytes on allocation,
    -bytes on free) in time order. Op events are switched off while it records
    (``_enable_record_function(False)``: no op opens a record, the allocator still reports),
    so the event list holds allocations only: with op events on, the probe of the
    stackformer's compiled thinking step (B=4, T=256; a compiled call per token and step)
    took 98 s and 3.3 GB over a 2 s step, its list building a Python object per op call."""
    from torch.profiler import ProfilerActivity, profile

    from bench.ops.profile import quiet_profiler

    torch._C._autograd._enable_record_function(False)
    try:
        with quiet_profiler(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    finally:
        torch._C._autograd._enable_record_function(True)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    cur = peak = 0
    for _, nbytes in events:
        cur += nbytes
        peak = max(peak, cur)
    return int(peak)


def op_breakdown(fn, device, steps: int = 3, budget_s: float = 5.0) -> tuple[dict, float, str]:
    """({op: ns per step, ..., "rest": ns}, clocked ns per step, method) of ``fn``.

    CPU ("op_clock"): wall time of each op's forward and backward spans
    (``backends.op_clock``), each of ``steps`` calls clocked on its own; the rows are those
    of the call with the median wall time, so one call that a pause (the garbage
    collector, a page fault storm) stretched does not skew them. No call starts once
    ``budget_s`` has passed: a step of seconds (the stackformer's eager one, 8 s at B=4,
    T=256) is clocked once, where such a pause is a small share of it. The step runs at its own
    speed, so its clocked time is comparable with the timed median. CUDA
    ("torch.profiler"): device time of the kernels inside each op's ranges over
    ``steps`` calls. "rest" is the step less the ops."""
    if torch.device(device).type == "cuda":
        prof, wall = _profile(fn, device, steps)
        per_op = _sum_per_op(((e.name, 1e3 * (getattr(e, "device_time_total", 0) or e.cpu_time_total))
                              for e in prof.events()), steps)
        per_op["rest"] = max(0.0, wall - sum(per_op.values()))
        return per_op, wall, "torch.profiler"
    calls, start = [], time.perf_counter()
    for _ in range(steps):
        if calls and time.perf_counter() - start > budget_s:
            break
        with backends.op_clock() as clock:
            t0 = time.perf_counter_ns()
            fn()
            wall = time.perf_counter_ns() - t0
        calls.append((wall, _sum_per_op(clock.ns.items(), 1)))
    wall, per_op = sorted(calls, key=lambda c: c[0])[(len(calls) - 1) // 2]
    per_op["rest"] = max(0.0, wall - sum(per_op.values()))
    return per_op, float(wall), "op_clock"


def _sum_per_op(named_ns, steps: int) -> dict:
    """{op: ns per step} from (range name, ns) pairs; names that are not op ranges are skipped."""
    per_op: dict[str, float] = {}
    for name, ns in named_ns:
        m = RANGE.match(name)
        if m is not None:
            per_op[m["op"]] = per_op.get(m["op"], 0.0) + ns / steps
    return per_op


def sync_of(device) -> Callable[[], None]:
    if torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
