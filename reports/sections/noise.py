"""Noise: the raw samples of every timed measurement, as boxes per group and backend."""

from __future__ import annotations

import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, skipped
from reports.context import Context, first_seen
from reports.stats import quantile_sketch

TITLE = "Noise"
SKETCH = 100  # quantiles kept of each measurement's samples


def build(ctx: Context) -> Section:
    timed = ctx.timed
    if len(timed):
        timed = timed[[isinstance(s, list) and len(s) > 0 for s in timed["samples_ns"]]]
    if not len(timed):
        return skipped("noise", TITLE, "No raw samples: no timed op record carries samples_ns.")
    timed = timed.assign(where=[f"{r.case_id} {r.dtype} {r.mode}" for r in timed.itertuples()])
    fig = figures.new("Raw samples of each measurement, relative to its median (box: quartiles; whiskers: 1.5 IQR)",
                      "case dtype mode", "sample / the measurement's median", boxmode="group", height=520)
    groups = first_seen(timed["op"])
    for op in groups:
        mine = timed[timed["op"] == op]
        for backend in ctx.backends(mine["backend"]):
            g = mine[mine["backend"] == backend]
            xs, ys = [], []
            for where, samples, median in zip(g["where"], g["samples_ns"], g["median_ns"]):
                sketch = quantile_sketch(samples, SKETCH)
                xs += [where] * len(sketch)
                ys += [v / median for v in sketch]
            fig.add_trace(go.Box(x=xs, y=ys, name=backend, marker_color=ctx.palette(backend), boxpoints="outliers",
                                 line=dict(width=1), marker=dict(size=3), meta=op, legendgroup=backend,
                                 hovertemplate=f"{backend} %{{x}}: %{{y:.3f}} x median<extra>{op}</extra>"))
    fig.update_xaxes(tickangle=-20)
    figures.dropdown(fig, groups)
    s = Section("noise", TITLE)
    s.figure("samples", fig, f"Each box is one measurement's samples_ns (at most {SKETCH} evenly spaced quantiles "
                             "of them, which draw the same box), divided by its median: a tall box is a noisy "
                             "measurement. The menu picks the op.")
    return s
