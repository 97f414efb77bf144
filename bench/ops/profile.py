"""``arsenal profile``: a torch.profiler trace of one prepared (op, backend, case, mode).

The prepared closure (``bench.ops.prepare``, the same one the timings use) runs ``steps``
times under torch.profiler, each call inside a ``record_function`` range named
``step/op/backend/mode``; inside it, the registry's own ranges ``op/backend/forward`` and
``op/backend/backward`` mark the op's calls (and nvtx ranges on CUDA, seen by Nsight). Written to ``out_dir``:
``<op>-<backend>-<case>-<dtype>-<mode>.trace.json`` (open in chrome://tracing or
Perfetto) and ``... .table.txt``, the per-op time breakdown (``key_averages``).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile as torch_profile, record_function

from bench.ops import prepare as prep
from bench.ops.cases import case_id
from bench.ops.dtypes import name as dtype_name

# torch.profiler's chatter on stderr, written by C++ at every session: kineto's
# "USDT:<time> <pid>:<tid> SyncActivityProfilerHandler.cpp:52] profiler_start" (and
# profiler_stop; printed at kineto's top log level, above ERROR, so KINETO_LOG_LEVEL would
# hide kineto's errors too) and c10's "[W... CPUAllocator.cpp:245] Memory block of unknown
# size was allocated before the profiling started, ..." (a memory profile freeing a block
# allocated before it began: expected, the peak counts from the profile's start).
PROFILER_NOISE = re.compile(rb"^USDT:.*\] profiler_(start|stop)\s*$"
                            rb"|\] Memory block of unknown size was allocated before the profiling started")


@contextlib.contextmanager
def quiet_profiler():
    """Drop PROFILER_NOISE lines written to file descriptor 2 inside the block; every other
    line (torch's real warnings and errors, Python's) passes through unchanged."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        with os.fdopen(read_end, "rb") as src:
            for line in src:
                if not PROFILER_NOISE.search(line):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="quiet_profiler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's only write end: the pump reads to its end and stops
        thread.join()
        os.close(saved)


@dataclass
class Profiled:
    trace: Path
    table_path: Path
    table: str


def run(op: str, name: str, case: dict, dtype: torch.dtype = torch.float32, device="cpu", mode: str = "forward",
        steps: int = 10, out_dir="out/profile", row_limit: int = 25) -> Profiled:
    p = prep.prepare(op, name, case, dtype, device, mode)
    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with quiet_profiler(), torch_profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            with record_function(f"step/{op}/{name}/{mode}"):
                p.fn()
                p.sync()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{op}-{name}-{case_id(p.case)}-{dtype_name(dtype)}-{mode}"
    trace = out_dir / f"{stem}.trace.json"
    prof.export_chrome_trace(str(trace))
    table = prof.key_averages().table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total",
                                      row_limit=row_limit)
    table_path = out_dir / f"{stem}.table.txt"
    table_path.write_text(table + "\n")
    return Profiled(trace, table_path, table)
