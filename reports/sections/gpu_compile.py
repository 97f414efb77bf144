"""GPU readiness (kind="gpu_compile", ``arsenal gpu-compile``): every Triton and Numba
CUDA kernel specialisation x chip, compiled ahead of time without a GPU. One row per
kernel specialisation, one cell per chip with registers per thread, spilled bytes,
shared memory (static + dynamic), threads per block and blocks per SM (occupancy); a
cell is red where the kernel does not compile, spills, or cannot launch there. The
latest run of each (kernel, specialisation, chip) is shown."""

from __future__ import annotations

import html

import pandas as pd

from reports.blocks import Section, skipped
from reports.context import Context

TITLE = "GPU readiness: kernels compiled for sm_90 and sm_80"
RED = "background:#f8d0d0"


def _cell(r) -> str:
    if r is None:
        return "<td></td>"
    if r.get("registers") is None or r["registers"] != r["registers"]:  # absent or NaN: it did not compile
        text = "does not compile"
    else:
        spill = int(r["spill_stores"]) + int(r["spill_loads"])
        text = (f"{int(r['registers'])} regs · spill {spill} B · smem {int(r['static_smem_bytes'])}+"
                f"{int(r['dynamic_smem_bytes'])} B · {int(r['threads_per_block'])} thr · "
                f"{int(r['blocks_per_sm'])} blk/SM ({float(r['occupancy']):.0%}, {r['limiter']})")
    title = f" title=\"{html.escape(str(r['error']))}\"" if r["status"] != "ok" else ""
    style = f" style=\"{RED}\"" if r["status"] != "ok" else ""
    return f"<td{style}{title}>{html.escape(text)}</td>"


def build(ctx: Context) -> Section:
    # the records as written (reports/data.py draws its frames for the kinds it lists)
    rec = pd.DataFrame.from_records(ctx.results.of("gpu_compile"))
    if not len(rec):
        return skipped("gpu-compile", TITLE, "No GPU compile records (kind=\"gpu_compile\", arsenal gpu-compile).")
    rec = rec.drop_duplicates(["module", "kernel", "specialization", "chip"], keep="last")
    chips = sorted(rec["chip"].unique(), reverse=True)
    gpus = dict(zip(rec["chip"], rec["gpu"]))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("op", "backend", "kernel", "specialization")) + "".join(
        f"<th>{html.escape(f'{c} ({gpus[c]})')}</th>" for c in chips)
    rows = []
    for (op, backend, kernel, spec), g in rec.groupby(["op", "backend", "kernel", "specialization"], sort=True):
        by_chip = {r["chip"]: r for _, r in g.iterrows()}
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (op, backend, kernel, spec))
                    + "".join(_cell(by_chip.get(c)) for c in chips) + "</tr>")
    failed = rec[rec["status"] != "ok"]
    s = Section("gpu-compile", TITLE)
    s.text(f"{len(rec)} kernel specialisations x chips compiled without a GPU (Triton's compiler and Numba's NVVM, "
           f"then ptxas -v); {len(failed)} failed (red: does not compile, spills registers, or exceeds a chip's "
           "limits; hover for the message). Blocks per SM follow the occupancy calculator's arithmetic from "
           "registers, threads and shared memory; only a GPU run measures time.")
    s.html(f"<div class=\"table scroll\"><table class=\"data\"><thead><tr>{head}</tr></thead><tbody>"
           + "".join(rows) + "</tbody></table></div>")
    return s
