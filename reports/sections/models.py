"""Models (kind="model"): step time, tokens/s and memory per mix; each op's share of the
step; the swap ablation and the best mix; scaling slopes and LRA's efficiency table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, fmt, interval, skipped
from reports.context import Context, first_seen
from reports.palette import op_colours
from reports.stats import loglog_slope

TITLE = "Models"
REFERENCE_FAMILY = "transformer"  # LRA's efficiency table is relative to it
METRICS = (  # (menu label, field, scale, axis title)
    ("training step", "median_ns", 1e6, "training step (ms)"),
    ("tokens/s", "tokens_per_s", 1.0, "training tokens/s"),
    ("peak memory", "peak_mem_bytes", 2 ** 20, "peak memory (MiB)"),
)


def _where(frame: pd.DataFrame) -> list[str]:
    return [f"{r.family}/{r.config_id} · {r.task} · {r.case_id}" for r in frame.itertuples()]


def _swapped(mix, mix_id: str) -> str:
    """The backend a swap-ablation mix moved an op to (its colour), else the mix id."""
    if isinstance(mix, dict):
        others = sorted({str(b) for b in mix.values()} - {"torch"})
        if len(others) == 1:
            return others[0]
    return mix_id


def _metrics(ctx: Context, grid: pd.DataFrame) -> go.Figure:
    fig = figures.new("Per model, shape and mix", "model · task · shape", METRICS[0][3], ylog=True, barmode="group")
    groups, layouts = [], {}
    for label, field, scale, axis in METRICS:
        rows = grid[grid[field].notna()]
        if not len(rows):
            continue
        for mix in ctx.backends(rows["mix_id"]):
            g = rows[rows["mix_id"] == mix]
            error = None
            if field == "median_ns":
                error = dict(type="data", symmetric=False, array=(g["q3_ns"] - g["median_ns"]) / scale,
                             arrayminus=(g["median_ns"] - g["q1_ns"]) / scale)
            fig.add_trace(go.Bar(x=g["where"], y=g[field] / scale, name=mix, marker_color=ctx.palette(mix),
                                 error_y=error, meta=label, legendgroup=mix,
                                 hovertemplate=f"{mix}: %{{y:.4g}} ({label})<extra>%{{x}}</extra>"))
        groups.append(label)
        layouts[label] = {"yaxis.title.text": axis}
    figures.dropdown(fig, groups, layouts)
    return fig


def _breakdown(grid: pd.DataFrame) -> go.Figure | None:
    rows = grid[[isinstance(b, dict) and len(b) > 0 for b in grid["op_breakdown"]]]
    if not len(rows):
        return None
    ops = first_seen(o for b in rows["op_breakdown"] for o in b if o != "rest") + ["rest"]
    colours = op_colours(ops)
    fig = figures.new("Each op's share of the training step, by mix", "mix", "time per step (ms)", barmode="stack")
    groups = first_seen(rows["where"])
    for where in groups:
        g = rows[rows["where"] == where]
        for op in ops:
            y = [b[op] / 1e6 if isinstance(b.get(op), (int, float)) else 0.0 for b in g["op_breakdown"]]
            if any(y):
                fig.add_trace(go.Bar(x=g["mix_id"], y=y, name=op, marker_color=colours[op], meta=where, legendgroup=op,
                                     hovertemplate=f"{op}: %{{y:.3g}} ms<extra>%{{x}}</extra>"))
    figures.dropdown(fig, groups)
    return fig


def _swap(ctx: Context, models: pd.DataFrame) -> go.Figure | None:
    rows = models[models["role"].isin(["swap", "best"]) & models["speedup_vs_torch"].notna()]
    if not len(rows):
        return None
    fig = figures.new("Swap ablation: one op moved from torch at a time, and the best mix (measured end to end)",
                      "speedup over all-torch (x, log scale)", "mix", xlog=True, height=520)
    groups = []
    for where, g in rows.groupby("where", sort=False):
        g = g.sort_values("speedup_vs_torch")
        ci = [c if isinstance(c, list) and len(c) == 2 else [s, s] for c, s in zip(g["speedup_vs_torch_ci95"],
                                                                                g["speedup_vs_torch"])]
        colours = [ctx.palette(_swapped(m, i)) for m, i in zip(g["mix"], g["mix_id"])]
        names = [("best: " if r == "best" else "") + i for r, i in zip(g["role"], g["mix_id"])]
        # bars from 1x (base) to the speedup: slower mixes point left, faster ones right
        fig.add_trace(go.Bar(y=names, x=g["speedup_vs_torch"] - 1, base=1, orientation="h", marker_color=colours,
                             meta=where, customdata=g["speedup_vs_torch"],
                             marker_line=dict(width=[2.5 if r == "best" else 0 for r in g["role"]], color="#111"),
                             error_x=dict(type="data", symmetric=False,
                                          array=[hi - s for (lo, hi), s in zip(ci, g["speedup_vs_torch"])],
                                          arrayminus=[s - lo for (lo, hi), s in zip(ci, g["speedup_vs_torch"])]),
                             showlegend=False, hovertemplate="%{y}: %{customdata:.3f}x<extra>" + where + "</extra>"))
        groups.append(where)
    fig.add_vline(x=1, line_dash="dot", line_color="#555")
    figures.dropdown(fig, groups)
    return fig


def _best(models: pd.DataFrame) -> pd.DataFrame:
    best = models[models["role"] == "best"]
    return pd.DataFrame([{
        "model": r.where, "mix": ", ".join(f"{k}={v}" for k, v in r.mix.items()) if isinstance(r.mix, dict) else r.mix_id,
        "step (ms)": r.median_ns / 1e6, "x torch": r.speedup_vs_torch,
        "95% interval": interval(*(r.speedup_vs_torch_ci95 if isinstance(r.speedup_vs_torch_ci95, list) else (None, None))),
        "x torch.compile": r.speedup_vs_torch_compile} for r in best.itertuples()])


def _scaling(models: pd.DataFrame):
    sc = models[(models["role"] == "scaling") & models["median_ns"].notna()]
    sc = sc.assign(T=pd.to_numeric(pd.Series([c.get("T") if isinstance(c, dict) else None for c in sc["case"]],
                                             index=sc.index, dtype=object), errors="coerce"))
    return sc[sc["T"].notna()]


def _break_even(fits: pd.DataFrame, family: str, mix: str) -> str:
    """The break-even length of a scaling_fit record (bench/modelbench/fits.py), as text."""
    if not len(fits) or family == REFERENCE_FAMILY:
        return ""
    row = fits[(fits["family"] == family) & (fits["mix_id"] == mix)]
    if not len(row):
        return ""
    be, ref = row.iloc[-1].get("break_even_T"), row.iloc[-1].get("reference_mix")
    if isinstance(be, (int, float)) and np.isfinite(be):
        return f"{be:,.0f} tokens" + (f" (vs {ref})" if isinstance(ref, str) and ref != mix else "")
    return "never within the lengths measured" if isinstance(ref, str) else "no transformer reference"


def _slopes(sc: pd.DataFrame, fits: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (family, mix), g in sc.groupby(["family", "mix_id"], sort=False):
        t, tlo, thi = loglog_slope(g["T"], g["median_ns"])
        m, mlo, mhi = loglog_slope(g["T"], g["peak_mem_bytes"])
        rows.append({"family": family, "mix": mix, "lengths": g["T"].nunique(), "time slope": t,
                     "time 95% interval": interval(tlo, thi), "memory slope": m, "memory 95% interval": interval(mlo, mhi),
                     "break-even vs transformer": _break_even(fits, family, mix)})
    return pd.DataFrame(rows)


def _efficiency(sc: pd.DataFrame) -> pd.DataFrame | None:
    ref = sc[sc["family"] == REFERENCE_FAMILY]
    if not len(ref):
        return None
    ref = ref.sort_values("mix_id", key=lambda m: m != "torch").drop_duplicates("T")  # all-torch first
    ref_steps = dict(zip(ref["T"], 1e9 / ref["median_ns"]))
    ref_mem = dict(zip(ref["T"], ref["peak_mem_bytes"]))
    rows = []
    for (family, mix), g in sc.groupby(["family", "mix_id"], sort=False):
        row = {"model": f"{family} · {mix}"}
        for r in g.sort_values("T").itertuples():
            t = int(r.T)
            if r.T in ref_steps:
                row[f"T={t} steps/s"] = f"{fmt(1e9 / r.median_ns / ref_steps[r.T])}x"
                mem = r.peak_mem_bytes / ref_mem[r.T] if ref_mem.get(r.T) else np.nan
                row[f"T={t} memory"] = f"{fmt(mem)}x" if np.isfinite(mem) else ""
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def _memory(ctx: Context, sc: pd.DataFrame) -> go.Figure | None:
    sc = sc[sc["peak_mem_bytes"].notna()]
    if not len(sc):
        return None
    fig = figures.new("Peak memory against sequence length", "sequence length T (tokens)", "peak memory (MiB)",
                      xlog=True, ylog=True)
    for (family, mix), g in sc.groupby(["family", "mix_id"], sort=False):
        g = g.sort_values("T")
        fig.add_trace(go.Scatter(x=g["T"], y=g["peak_mem_bytes"] / 2 ** 20, mode="lines+markers",
                                 name=f"{family} · {mix}", line=dict(color=ctx.palette(mix)),
                                 hovertemplate=f"{family} · {mix}: %{{y:.4g}} MiB at T = %{{x}}<extra></extra>"))
    return fig


def build(ctx: Context) -> Section:
    models = ctx.frame("model")
    if not len(models):
        return skipped("models", TITLE, "No model records (kind=\"model\"): run arsenal models.")
    models = models.assign(where=_where(models))
    s = Section("models", TITLE)
    grid = models[~models["role"].isin(["swap", "scaling"])]
    if len(grid):
        s.figure("metrics", _metrics(ctx, grid), "Bars: median over the timed steps; error bars: interquartile range.")
        breakdown = _breakdown(grid)
        if breakdown is not None:
            s.figure("breakdown", breakdown, "From op_breakdown: each op's forward and backward spans (op/backend/phase), "
                                             "wall-clocked on the CPU, device time on CUDA; rest is everything "
                                             "outside the ops.")
    swap = _swap(ctx, models)
    if swap is not None:
        s.figure("swap", swap, "Colour: the backend the op moved to; outlined: the best mix, chosen from these "
                               "measurements and then measured end to end (never summed).")
    best = _best(models)
    if len(best):
        s.add_table(best, "Best mix per model and shape.")
    sc = _scaling(models)
    if len(sc):
        s.add_table(_slopes(sc, ctx.frame("scaling_fit")),
                    "Scaling: the slope of log(step time) and log(peak memory) against log(T) per family and mix "
                    "(1: linear, 2: quadratic), with its 95% t interval; break-even: the length from which the "
                    "family's step is cheaper than the transformer's (kind=\"scaling_fit\" records).")
        memory = _memory(ctx, sc)
        if memory is not None:
            s.figure("memory", memory)
        eff = _efficiency(sc)
        if eff is not None:
            s.add_table(eff, "LRA-style efficiency: steps/s and peak memory relative to the transformer at each "
                             "length (LRA, Tay et al. table 2: Linear Transformer 5.6x and Performer 5.7x the "
                             "transformer's steps/s at 4K).")
        else:
            s.text("No transformer scaling records: the efficiency table needs them as its reference.")
    return s
