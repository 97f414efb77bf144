"""``arsenal profile``: a torch.profiler trace of one prepared (op, backend, case, mode).

The prepared closure (``bench.ops.prepare``, the same one the timings use) runs ``steps``
times under torch.profiler, each call inside a ``record_function`` range named
``step/op/backend/mode``; inside it, the registry's own ranges ``op/backend/forward`` and
``op/backend/backward`` mark the op's calls (and nvtx ranges on CUDA, seen by Nsight). Written to ``out_dir``:
``<op>-<backend>-<case>-<dtype>-<mode>.trace.json`` (open in chrome://tracing or
Perfetto) and ``... .table.txt``, the per-op time breakdown (``key_averages``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile as torch_profile, record_function

from bench.ops import prepare as prep
from bench.ops.cases import case_id
from bench.ops.dtypes import name as dtype_name


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
    with torch_profile(activities=activities, record_shapes=True) as prof:
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
