"""Geometric-mean speedup of each backend against torch and torch.compile (bootstrap
intervals over the measured cases); with a baseline file, bench.compare's verdicts."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from bench import compare
from reports import figures
from reports.blocks import Section, fmt, interval, skipped
from reports.context import BASELINES, Context
from reports.data import TIMED, kind_of
from reports.stats import gmean_interval

CHANGES_LISTED = 40  # rows of the baseline table


def speedups(ctx: Context) -> pd.DataFrame:
    """backend x baseline: geometric mean, interval and count of the records' speedups."""
    rows = []
    timed = ctx.timed
    for base in BASELINES:
        col = f"speedup_vs_{base}"
        if col not in timed:
            continue
        for backend, g in timed[timed["backend"] != base].groupby("backend"):
            values = g[col].dropna()
            if len(values):
                mean, lo, hi = gmean_interval(values.tolist())
                rows.append({"backend": backend, "baseline": base, "gmean": mean, "lo": lo, "hi": hi,
                             "n": len(values)})
    return pd.DataFrame(rows)


def _figure(ctx: Context, table: pd.DataFrame) -> go.Figure:
    fig = figures.new("Geometric-mean speedup (higher is faster; bars: 95% bootstrap interval over cases)",
                      "baseline", "speedup (x, log scale)", ylog=True, barmode="group")
    for backend in ctx.backends(table["backend"]):
        t = table[table["backend"] == backend]
        lo = [g - l if l is not None else 0 for g, l in zip(t["gmean"], t["lo"])]
        hi = [h - g if h is not None else 0 for g, h in zip(t["gmean"], t["hi"])]
        fig.add_trace(go.Bar(x=[f"vs {b}" for b in t["baseline"]], y=t["gmean"], name=backend,
                             marker_color=ctx.palette(backend), customdata=t["n"],
                             error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo),
                             hovertemplate=f"{backend} %{{x}}: %{{y:.3f}}x over %{{customdata}} cases<extra></extra>"))
    fig.add_hline(y=1, line_dash="dot", line_color="#555")
    return fig


def _comparable(records: list[dict]) -> list[dict]:
    """The op records bench.compare can judge: a timed one needs its raw samples (the
    schema reads refused samples as missing, and the header names them)."""
    return [r for r in records if kind_of(r) == "op"
            and (r.get("status") not in TIMED or (isinstance(r.get("samples_ns"), list) and r["samples_ns"]))]


def _baseline(ctx: Context, s: Section) -> None:
    changes = compare.compare(_comparable(ctx.baseline.records), _comparable(ctx.results.records))
    counts = pd.Series([c.verdict for c in changes]).value_counts()
    order = list(compare.VERDICTS) + ["status", "added", "removed"]
    s.html("<h3>Against the baseline</h3>")
    s.add_table(pd.DataFrame({"verdict": order, "count": [int(counts.get(v, 0)) for v in order]}),
                f"{', '.join(map(str, ctx.baseline.paths))} -> this run: Mann-Whitney U on the raw samples "
                "(bench.compare: p < 0.01 and a change beyond 5%). Two absolute timings from different runs "
                "carry whatever else each machine was doing.")
    shown = sorted((c for c in changes if c.verdict not in ("unchanged", "added", "removed")),
                   key=lambda c: -abs((c.ratio or 1.0) - 1.0))[:CHANGES_LISTED]
    if shown:
        s.add_table(pd.DataFrame([dict(c.label, verdict=c.verdict, ratio=c.ratio, p=c.p, note=c.note)
                                  for c in shown]),
                    "Changes (ratio = new median / old median; > 1 is slower), largest first.", sortable=True)


def build(ctx: Context) -> Section:
    title = "Summary"
    table = speedups(ctx)
    if not len(table) and ctx.baseline is None:
        return skipped("summary", title, "No speedups: no op record timed beside torch or torch_compile.")
    s = Section("summary", title)
    if len(table):
        s.figure("speedup", _figure(ctx, table))
        wide = pd.DataFrame([{"backend": b, "baseline": r.baseline, "geometric mean (x)": fmt(r.gmean),
                              "95% interval": interval(r.lo, r.hi), "cases": r.n}
                             for b in ctx.backends(table["backend"]) for r in table[table.backend == b].itertuples()])
        s.add_table(wide, "Speedup = the baseline's median / the backend's median, measured in one interleaved "
                          "group; the geometric mean runs over every case, dtype and mode timed with the baseline.")
    else:
        s.text("No speedups: no op record timed beside torch or torch_compile.")
    if ctx.baseline is not None:
        _baseline(ctx, s)
    return s
