"""Scaling curves: time against size or length, log-log, one line per backend with its
interquartile band; from op records with several cases of one op and from model records
with role="scaling"."""

from __future__ import annotations

import numbers

import pandas as pd
import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, skipped
from reports.context import Context, first_seen

TITLE = "Scaling"


def _size_axis(cases: list) -> tuple[str | None, str]:
    """The one numeric case field that varies (e.g. T), else None: then the x axis is the
    contract's bytes."""
    dicts = [c for c in cases if isinstance(c, dict)]
    keys = {k for c in dicts for k in c}
    varying = [k for k in sorted(keys) if len({repr(c.get(k)) for c in dicts}) > 1]
    if len(varying) == 1 and all(isinstance(c.get(varying[0]), numbers.Real) for c in dicts):
        return varying[0], f"{varying[0]} (case field)"
    return None, "working set (MB, the contract's bytes)"


def _line(fig, name, colour, x, g, scale, meta, hover, dash=None) -> None:
    order = sorted(range(len(x)), key=lambda i: x[i])
    xs = [x[i] for i in order]
    g = g.iloc[order]
    figures.band(fig, xs, g["q1_ns"] / scale, g["q3_ns"] / scale, colour, name, meta=meta)
    fig.add_trace(go.Scatter(x=xs, y=g["median_ns"] / scale, mode="lines+markers", name=name, meta=meta,
                             legendgroup=name, line=dict(color=colour, dash=dash), hovertemplate=hover))


def _ops(ctx: Context):
    timed = ctx.timed
    if not len(timed):
        return None
    fig = figures.new("Op time against size (median, band: interquartile range)", "size", "time per call (µs)",
                      xlog=True, ylog=True)
    groups, layouts = [], {}
    for (op, dtype, mode), g in timed.groupby(["op", "dtype", "mode"], sort=False):
        if g["case_id"].nunique() < 2:
            continue
        key, title = _size_axis(list(g["case"]))
        label = f"{op} · {dtype} · {mode}"
        x = pd.Series([c.get(key) if isinstance(c, dict) else None for c in g["case"]] if key else g["bytes"] / 1e6,
                      index=g.index, dtype=float)
        g = g[x.notna()].assign(x=x[x.notna()])
        for backend in ctx.backends(g["backend"]):
            b = g[g["backend"] == backend].drop_duplicates("case_id", keep="last")
            _line(fig, backend, ctx.palette(backend), list(b["x"]), b, 1e3, label,
                  f"{backend}: %{{y:.3g}} µs at {key or 'MB'} = %{{x}}<extra>{label}</extra>")
        groups.append(label)
        layouts[label] = {"xaxis.title.text": title}
    if not groups:
        return None
    figures.dropdown(fig, groups, layouts)
    return fig


def _models(ctx: Context):
    models = ctx.frame("model")
    if not len(models):
        return None
    sc = models[(models["role"] == "scaling") & models["median_ns"].notna()]
    if not len(sc):
        return None
    sc = sc.assign(T=[c.get("T") if isinstance(c, dict) else None for c in sc["case"]])
    sc = sc[pd.to_numeric(sc["T"], errors="coerce").notna()]
    if not len(sc):
        return None
    fig = figures.new("Model training step against sequence length (median, band: IQR)", "sequence length T (tokens)",
                      "training step (ms)", xlog=True, ylog=True)
    dashes = {f: d for f, d in zip(first_seen(sc["family"]), ["solid", "dash", "dot", "dashdot", "longdash"] * 4)}
    for (family, mix), g in sc.groupby(["family", "mix_id"], sort=False):
        g = g.drop_duplicates("T", keep="last")
        name = f"{family} · {mix}"
        _line(fig, name, ctx.palette(mix), list(g["T"].astype(float)), g, 1e6, None,
              f"{name}: %{{y:.3g}} ms at T = %{{x}}<extra></extra>", dash=dashes[family])
    return fig


def build(ctx: Context) -> Section:
    ops, models = _ops(ctx), _models(ctx)
    if ops is None and models is None:
        return skipped("scaling", TITLE, "No scaling curves: no op timed at several cases and no model record "
                                         "with role=\"scaling\".")
    s = Section("scaling", TITLE)
    if ops is not None:
        s.figure("ops", ops, "One line per backend; the x axis is the case field that varies (the contract's "
                             "bytes where several do).")
    else:
        s.text("No op was timed at several cases.")
    if models is not None:
        s.figure("models", models, "Colour: the mix (a backend's colour for an all-one-backend mix); "
                                   "line style: the family.")
    else:
        s.text("No model record with role=\"scaling\".")
    return s
