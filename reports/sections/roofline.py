"""Roofline: arithmetic intensity (the contract's flops / bytes) against GFLOP/s, one
point per op x backend x case x dtype x mode, under the measured ceilings."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, skipped
from reports.context import Context

TITLE = "Roofline"
SYMBOLS = {"ok": "circle", "wrong_model": "x"}


def _ceilings(fig: go.Figure, timed, x_lo: float, x_hi: float) -> None:
    """The copy-bandwidth slopes (lowest and highest point of the curve the records used)
    up to the highest matmul rate, and each matmul rate as a flat line."""
    roofs = [r for r in timed["roofline"] if isinstance(r, dict) and r.get("gbps") and r.get("gflops")]
    if not roofs:
        return
    peaks = {}
    for r, dtype in zip(timed["roofline"], timed["dtype"]):
        if isinstance(r, dict) and r.get("gflops"):
            peaks.setdefault(float(r["gflops"]), set()).add(dtype)
    top = max(peaks)
    bws = sorted({float(r["gbps"]) for r in roofs})
    for bw, what in ((bws[0], "main memory"), (bws[-1], "cache-sized working sets"))[:1 if len(bws) == 1 else 2]:
        ridge = top / bw
        xs = [x_lo, min(ridge, x_hi)]
        fig.add_trace(go.Scatter(x=xs, y=[bw * x for x in xs], mode="lines", name=f"copy {bw:.3g} GB/s ({what})",
                                 line=dict(color="#444", dash="dash" if what != "main memory" else "solid", width=1.5),
                                 hovertemplate=f"copy bandwidth ceiling {bw:.3g} GB/s<extra></extra>"))
    for peak, dtypes in sorted(peaks.items()):
        fig.add_trace(go.Scatter(x=[x_lo, x_hi], y=[peak, peak], mode="lines",
                                 name=f"matmul {peak:.3g} GFLOP/s ({', '.join(sorted(dtypes))} ops)",
                                 line=dict(color="#888", dash="dot", width=1.5),
                                 hovertemplate=f"matrix-multiply ceiling {peak:.3g} GFLOP/s<extra></extra>"))


def build(ctx: Context) -> Section:
    timed = ctx.timed
    if len(timed):
        timed = timed[(timed["flops"] > 0) & (timed["bytes"] > 0) & (timed["gflops"] > 0)]
    if not len(timed):
        return skipped("roofline", TITLE, "No roofline: no timed op record with flops, bytes and GFLOP/s.")
    timed = timed.assign(intensity=timed["flops"] / timed["bytes"])
    fig = figures.new("Roofline: measured GFLOP/s against arithmetic intensity", "arithmetic intensity (flop/byte)",
                      "GFLOP/s", xlog=True, ylog=True, height=520)
    x_lo, x_hi = timed["intensity"].min() / 4, timed["intensity"].max() * 4
    for backend in ctx.backends(timed["backend"]):
        g = timed[timed["backend"] == backend]
        custom = np.stack([g["op"], g["case_id"], g["dtype"], g["mode"], g["gbps"].round(3),
                           g["pct_roofline"].round(2), g["pct_bandwidth"].round(2), g["pct_flops"].round(3),
                           [r.get("bound", "") if isinstance(r, dict) else "" for r in g["roofline"]], g["status"]],
                          axis=-1)
        fig.add_trace(go.Scatter(
            x=g["intensity"], y=g["gflops"], mode="markers", name=backend, customdata=custom,
            marker=dict(color=ctx.palette(backend), size=9, symbol=[SYMBOLS.get(st, "circle") for st in g["status"]],
                        line=dict(width=0.5, color="#fff")),
            hovertemplate=("%{customdata[0]} on " + backend + " · %{customdata[1]} %{customdata[2]} %{customdata[3]}"
                           "<br>%{y:.3g} GFLOP/s, %{customdata[4]} GB/s at %{x:.3g} flop/byte"
                           "<br>%{customdata[5]}% of the ceiling (%{customdata[8]}-bound: bandwidth "
                           "%{customdata[6]}%, flops %{customdata[7]}%) · %{customdata[9]}<extra></extra>")))
    _ceilings(fig, timed, x_lo, x_hi)
    s = Section("roofline", TITLE)
    s.figure("chart", fig, "Each point is one op x backend x case x dtype x mode; hover for its percentage of "
                           "the ceiling (the larger of bandwidth and flops); x marks a figure over 100% "
                           "(status wrong_model: the contract's bytes or flops model is wrong for it).")
    return s
