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


def _interval_us(pair) -> tuple[float | None, float | None]:
    """An overhead_ci95_ns [lo, hi] in us, or (None, None) where the record has none."""
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair):
        return pair[0] * US, pair[1] * US
    return None, None


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
            y = (b["overhead_ns"] * US).tolist()  # lists: plotly would write an array as base64
            bounds = [_interval_us(c) for c in b["overhead_ci95_ns"]]
            plus = [None if hi is None else hi - v for (_, hi), v in zip(bounds, y)]
            minus = [None if lo is None else v - lo for (lo, _), v in zip(bounds, y)]
            fig.add_trace(go.Bar(x=b["op"].tolist(), y=y, name=backend, marker_color=ctx.palette(backend),
                                 error_y=dict(type="data", array=plus, arrayminus=minus, visible=True),
                                 customdata=b["case_id"].tolist(),
                                 hovertemplate=f"{backend} %{{x}} (%{{customdata}}): %{{y:.1f}} us<extra></extra>"))
        s.figure("overhead", fig, "Median of the calls through the registry less the median of the bare function, "
                                  "timed interleaved in one process (bench/ops/overhead.py); the error bars are the "
                                  "bootstrap 95% interval. A difference of two kernel timings is noisy where the "
                                  "kernel itself scatters: the table's column \"wrapper around a no-op kernel\" "
                                  "reads the wrapper's cost directly.")
    rows = pd.DataFrame({
        "op": rec["op"], "backend": rec["backend"], "device": rec["device"], "case": rec["case_id"],
        "bare call (us)": rec["raw_ns"] * US, "registry call (us)": rec["checked_ns"] * US,
        "overhead (us)": rec["overhead_ns"] * US,
        "95% interval (us)": [interval(*_interval_us(c)) for c in rec["overhead_ci95_ns"]],
        "wrapper around a no-op kernel (us)": rec["checks_ns"] * US,
        "status": rec["status"],
    })
    s.html(table(rows, "Medians per call, forward under torch.no_grad().", sortable=True))
    return s
