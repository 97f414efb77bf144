"""Coverage matrix: op x backend per dtype, ok / unavailable (with the reason) /
incorrect or error (with the error); the worst status over cases and modes shows."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, skipped
from reports.context import Context, first_seen

TITLE = "Coverage"
# worst first: the status a cell shows when its cases or modes differ
STATUS_ORDER = ("incorrect", "error", "wrong_model", "ok", "unavailable", "unknown")
STATUS_COLOURS = {"incorrect": "#d73027", "error": "#7f0000", "wrong_model": "#fc8d59", "ok": "#1a9850",
                  "unavailable": "#bdbdbd", "unknown": "#f0f0f0"}
REASON_CHARS = 160


def _colorscale() -> list:
    n = len(STATUS_ORDER)
    return [c for i, s in enumerate(STATUS_ORDER) for c in ((i / n, STATUS_COLOURS[s]), ((i + 1) / n, STATUS_COLOURS[s]))]


def _cell(g: pd.DataFrame) -> tuple[str, str]:
    statuses = [s if s in STATUS_ORDER else "unknown" for s in g["status"]]
    worst = min(statuses, key=STATUS_ORDER.index)
    counts = ", ".join(f"{n} {s}" for s, n in pd.Series(statuses).value_counts().items())
    errors = [e for e in g.loc[[s == worst for s in statuses], "error"] if isinstance(e, str) and e]
    reason = f"<br>{html.escape(errors[0][:REASON_CHARS])}" if errors else ""
    return worst, counts + reason


def build(ctx: Context) -> Section:
    ops = ctx.ops
    if not len(ops):
        return skipped("coverage", TITLE, "No coverage matrix: no op record.")
    fig = figures.new("Which op x backend pairs ran (worst status over cases and modes)", "backend", "op")
    groups = []
    op_order = first_seen(ops["op"])
    for dtype, g in ops.groupby("dtype", sort=True):
        backends = ctx.backends(g["backend"])
        ops_here = [o for o in op_order if o in set(g["op"])]
        cells = {k: _cell(v) for k, v in g.groupby(["op", "backend"])}
        z = [[STATUS_ORDER.index(cells[o, b][0]) if (o, b) in cells else None for b in backends] for o in ops_here]
        text = [[cells[o, b][0] if (o, b) in cells else "" for b in backends] for o in ops_here]
        hover = [[cells[o, b][1] if (o, b) in cells else "not run" for b in backends] for o in ops_here]
        fig.add_trace(go.Heatmap(z=z, x=backends, y=ops_here, text=text, customdata=hover, texttemplate="%{text}",
                                 colorscale=_colorscale(), zmin=-0.5, zmax=len(STATUS_ORDER) - 0.5, showscale=False,
                                 xgap=2, ygap=2, meta=dtype,
                                 hovertemplate="%{y} on %{x} (" + dtype + "): %{customdata}<extra></extra>"))
        groups.append(dtype)
    fig.update_yaxes(autorange="reversed")
    figures.dropdown(fig, groups)
    s = Section("coverage", TITLE)
    s.figure("matrix", fig, "Hover a cell for the count of each status and the reason or error.")
    gaps = ops[ops["status"] != "ok"]
    if len(gaps):
        reasons = (gaps.assign(error=gaps["error"].map(lambda e: e if isinstance(e, str) else ""))
                   .groupby(["op", "backend", "dtype", "status", "error"], sort=False).size().reset_index(name="records"))
        s.add_table(reasons, "Every status other than ok, with its reason or error.", sortable=True)
    return s
