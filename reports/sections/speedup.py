"""Op x backend speedup heatmap: colour on a log scale centred at 1x; the menu picks the
dtype, mode and baseline. The colour scale ends at ``COLOUR_LIMIT`` either way: a cell
beyond it is drawn in the end colour (its text keeps the value) and the caption says so,
so that no value can stretch the scale (a speedup of 1e300 once gave the colour bar
about 2,000 ticks and the browser drew nothing)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, skipped
from reports.context import BASELINES, Context, first_seen
from reports.stats import gmean_interval

TITLE = "Speedup by op and backend"
COLOUR_LIMIT = 10  # log2: the scale spans 1/1024x to 1024x
TICKS = 5  # labelled ticks on each side of 1x at most


def build(ctx: Context) -> Section:
    timed = ctx.timed
    fig = figures.new("Speedup over the baseline (geometric mean over cases; blue is faster)", "backend", "op")
    groups, span, beyond = [], 1.0, 0
    ops_order = first_seen(timed["op"]) if len(timed) else []
    for (dtype, mode), g in (timed.groupby(["dtype", "mode"], sort=True) if len(timed) else []):
        for base in BASELINES:
            col = f"speedup_vs_{base}"
            sub = g[g[col].notna() & (g["backend"] != base)]
            if sub.empty:
                continue
            label = f"{dtype} · {mode} · vs {base}"
            backends = ctx.backends(sub["backend"])
            ops = [o for o in ops_order if o in set(sub["op"])]
            cells = {(o, b): gmean_interval(v[col].tolist()) + (len(v),) for (o, b), v in sub.groupby(["op", "backend"])}
            z = [[float(np.log2(cells[o, b][0])) if (o, b) in cells else None for b in backends] for o in ops]
            beyond += sum(1 for row in z for v in row if v is not None and abs(v) > COLOUR_LIMIT)
            z = [[None if v is None else float(np.clip(v, -COLOUR_LIMIT, COLOUR_LIMIT)) for v in row] for row in z]
            text = [[f"{cells[o, b][0]:.2f}x" if (o, b) in cells else "" for b in backends] for o in ops]
            n = [[cells[o, b][3] if (o, b) in cells else 0 for b in backends] for o in ops]
            span = max([span] + [abs(v) for row in z for v in row if v is not None])
            fig.add_trace(go.Heatmap(z=z, x=backends, y=ops, text=text, customdata=n, texttemplate="%{text}",
                                     coloraxis="coloraxis", meta=label, xgap=2, ygap=2,
                                     hovertemplate="%{y} on %{x}: %{text} vs " + base +
                                                   " (%{customdata} cases)<extra></extra>"))
            groups.append(label)
    if not groups:
        return skipped("speedups", TITLE, "No speedups: no op record timed beside torch or torch_compile.")
    top = int(np.ceil(span))
    step = int(np.ceil(top / TICKS))
    ticks = sorted({t for k in range(0, top + 1, step) for t in (-k, k)} | {-top, top})
    fig.update_layout(coloraxis=dict(colorscale="RdBu", cmin=-top, cmax=top, cmid=0,
                                     colorbar=dict(title="speedup", tickvals=ticks,
                                                   ticktext=[f"{2.0 ** t:g}x" for t in ticks])))
    fig.update_yaxes(autorange="reversed")
    figures.dropdown(fig, groups)
    s = Section("speedups", TITLE)
    clipped = (f" {beyond} cell(s) beyond {2 ** COLOUR_LIMIT}x either way are drawn in the scale's end colour "
               "(their text shows the value)." if beyond else "")
    s.figure("heatmap", fig, "Colour: log2 of the speedup, so 2x faster and 2x slower are equally far from 1x; "
                             "an empty cell was not timed beside that baseline." + clipped)
    return s
