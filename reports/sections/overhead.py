"""Call overhead (kind="overhead", ``arsenal overhead``): what a call through the registry
(``backends.get(op, backend)``: argument checks, profiler ranges, autograd's Function)
costs over the backend's bare function, per op x backend, on one tiny case each, the
size at which models call ops thousands of times a step. One bar per op and backend with
its 95% interval, and the table of the medians. The latest record of each (op, backend,
device, case) is shown."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, interval, skipped, table
from reports.context import Context

TITLE = "Call overhead: the registry against the bare function"
US = 1e-3  # ns -> us


def build(ctx: Context) -> Section:
    rec = ctx.frame("overhead")
    if not len(rec):
        return skipped("overhead", TITLE, "No overhead records (kind=\"overhead\", arsenal overhead).")
    rec = rec.drop_duplicates(["op", "backend", "device", "case_id"], keep="last")
    ok = rec[(rec["status"] == "ok") & rec["overhead_ns"].notna()]
    s = Section("overhead", TITLE)
    if len(ok):
        fig = figures.new("Registry call over the bare function", "op", "overhead per call (us)", barmode="group")
        for backend in ctx.backends(ok["backend"]):
            b = ok[ok["backend"] == backend]
            lo = [c[0] if isinstance(c, (list, tuple)) else None for c in b["overhead_ci95_ns"]]
            hi = [c[1] if isinstance(c, (list, tuple)) else None for c in b["overhead_ci95_ns"]]
            y = (b["overhead_ns"] * US).tolist()  # lists: plotly would write an array as base64
            plus = [None if h is None else h * US - v for h, v in zip(hi, y)]
            minus = [None if l is None else v - l * US for l, v in zip(lo, y)]
            fig.add_trace(go.Bar(x=b["op"].tolist(), y=y, name=backend, marker_color=ctx.palette(backend),
                                 error_y=dict(type="data", array=plus, arrayminus=minus, visible=True),
                                 customdata=b["case_id"].tolist(),
                                 hovertemplate=f"{backend} %{{x}} (%{{customdata}}): %{{y:.1f}} us<extra></extra>"))
        s.figure("overhead", fig, "Median of the calls through the registry less the median of the bare function, "
                                  "timed interleaved in one process (bench/ops/overhead.py); the bars are the "
                                  "bootstrap 95% interval. A difference of two kernel timings is noisy where the "
                                  "kernel itself scatters: the table's last column reads the wrapper's cost "
                                  "directly, around a kernel that does nothing.")
    rows = pd.DataFrame({
        "op": rec["op"], "backend": rec["backend"], "device": rec["device"], "case": rec["case_id"],
        "bare call (us)": rec["raw_ns"] * US, "registry call (us)": rec["checked_ns"] * US,
        "overhead (us)": rec["overhead_ns"] * US,
        "95% interval (us)": [interval(c[0] * US, c[1] * US) if isinstance(c, (list, tuple)) else ""
                              for c in rec["overhead_ci95_ns"]],
        "wrapper around a no-op kernel (us)": rec["checks_ns"] * US,
        "status": rec["status"],
    })
    s.html(table(rows, "Medians per call, forward under torch.no_grad().", sortable=True))
    return s
