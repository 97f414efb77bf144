"""Numerical drift (kind="drift"): each op's error against the float64 reference as T
grows, one line per backend; the menu picks the op and dtype."""

from __future__ import annotations

import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, skipped
from reports.context import Context

TITLE = "Numerical drift"


def build(ctx: Context) -> Section:
    drift = ctx.frame("drift")
    if len(drift):
        drift = drift[drift["T"].notna() & drift["error"].notna()]
        drift = drift.assign(error=drift["error"].astype(float))
        drift = drift[drift["error"] >= 0]
    if not len(drift):
        return skipped("drift", TITLE, "No drift records (kind=\"drift\").")
    floor = drift.loc[drift["error"] > 0, "error"].min() if (drift["error"] > 0).any() else 1e-16
    fig = figures.new("Error against the float64 reference as the sequence grows", "sequence length T",
                      "max error relative to the reference's scale", xlog=True, ylog=True)
    groups = []
    for (op, dtype), g in drift.groupby(["op", "dtype"], sort=False):
        label = f"{op} · {dtype}"
        for backend in ctx.backends(g["backend"]):
            for variant, b in g[g["backend"] == backend].groupby(g["variant"].fillna(""), sort=False):
                b = b.sort_values("T")
                name = f"{backend} {variant}".strip()
                fig.add_trace(go.Scatter(x=b["T"], y=b["error"].clip(lower=floor / 2), mode="lines+markers", name=name,
                                         meta=label, line=dict(color=ctx.palette(backend)),
                                         hovertemplate=f"{name}: %{{y:.3g}} at T = %{{x}}<extra>{label}</extra>"))
        groups.append(label)
    figures.dropdown(fig, groups)
    s = Section("drift", TITLE)
    s.figure("error", fig, "An error of exactly 0 is drawn at half the smallest non-zero error (a log axis has no 0).")
    return s
