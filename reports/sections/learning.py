"""Learning (kind="train"): loss and metric against steps and wall clock; final figures
beside the published anchors and the trivial baseline; quality against cost."""

from __future__ import annotations

import numbers

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.palette import OTHERS

from reports import figures
from reports.blocks import Section, skipped
from reports.context import Context

TITLE = "Learning"
BASELINE_COLOUR = "#b2182b"
DASH = {"train": "solid", "val": "dash", "test": "dot"}
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star")  # one per mix
# Config fields that only size a model: left out of its short label (kept in the hover)
SIZE_FIELDS = ("d_model", "n_layers", "n_heads", "vocab_size", "head", "n_classes", "seed", "causal")


def model_label(r) -> str:
    """A short name of the model (family config): the bake-off cell's name, else the family
    and its config fields other than size ("elman rung=4")."""
    cell = getattr(r, "cell", None)
    if isinstance(cell, str) and "/" in cell:
        return cell.split("/")[0]
    parts = [p for p in str(r.config_id).split(",") if p.split("=")[0] not in SIZE_FIELDS and p != "default"]
    return " ".join([str(r.family)] + parts)


def _label(r) -> str:
    return f"{model_label(r)} · {r.mix_id}"


def _full(r) -> str:
    return f"{r.family}/{r.config_id} · {r.mix_id} · {r.task}"


def model_colours(labels) -> dict[str, str]:
    """One colour per model (family config), in sorted order."""
    return {m: OTHERS[i % len(OTHERS)] for i, m in enumerate(sorted(set(labels)))}


def _anchors(value, metric) -> dict[str, float]:
    """{model: figure} in the units of the record's ``value``, from its anchors: a list of
    suites.tasks.anchors.Anchor dicts (model, value, unit, source, note) or a plain
    {name: figure}. "accuracy %" becomes a fraction for the accuracy metric (the records'
    accuracy is one); an anchor in another unit than the metric (perplexity beside bits per
    byte) is left out of the chart."""
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items() if isinstance(v, numbers.Real)}
    out = {}
    for a in value if isinstance(value, list) else []:
        if not (isinstance(a, dict) and isinstance(a.get("value"), numbers.Real)):
            continue
        unit = str(a.get("unit") or "")
        figure = float(a["value"])
        if unit.startswith("accuracy") and metric == "accuracy":
            figure = figure / 100 if "%" in unit else figure
        elif unit and unit.replace(" ", "_") != metric:
            continue
        name = str(a.get("model") or a.get("name"))
        out[name + (f" ({a['note']})" if a.get("note") else "")] = figure
    return out


def _curves(ctx: Context, train: pd.DataFrame) -> go.Figure:
    metric = ", ".join(sorted({m for m in train["metric"] if isinstance(m, str)})) or "metric"
    fig = make_subplots(rows=2, cols=2, shared_xaxes="columns", vertical_spacing=0.09, horizontal_spacing=0.08,
                        figure=figures.blank())
    fig.update_layout(height=680, title=dict(text="Loss and metric against steps and wall clock", x=0))
    shown = set()
    colours = model_colours(model_label(r) for r in train.itertuples())
    symbols = {m: SYMBOLS[i % len(SYMBOLS)] for i, m in enumerate(sorted(set(train["mix_id"].astype(str))))}
    for (run, split), g in train.groupby(["train_id", "split"], sort=False, dropna=False):
        g = g.sort_values("step")
        r = next(g.itertuples())
        name = f"{_label(r)} · {r.task} ({split})"
        colour = colours[model_label(r)]
        full = _full(r)
        for row, field in ((1, "loss"), (2, "value")):
            for col, x in ((1, "step"), (2, "wall_s")):
                keep = g[field].notna() & g[x].notna()
                if not keep.any():
                    continue
                fig.add_trace(go.Scatter(x=g.loc[keep, x], y=g.loc[keep, field], mode="lines+markers", name=name,
                                         legendgroup=name, showlegend=name not in shown,
                                         line=dict(color=colour, dash=DASH.get(split, "dashdot")),
                                         marker=dict(size=5, symbol=symbols[str(r.mix_id)]),
                                         hovertemplate=f"{full} ({split})<br>{field} %{{y:.4g}} at {x} %{{x}}"
                                                       "<extra></extra>"),
                              row=row, col=col)
                shown.add(name)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_xaxes(title_text="wall clock (s)", row=2, col=2)
    for col in (1, 2):
        fig.update_yaxes(title_text="loss (nats per token)", row=1, col=col)
        fig.update_yaxes(title_text=metric, row=2, col=col)
    return fig


def _finals(train: pd.DataFrame) -> pd.DataFrame:
    final = train[train["final"] == True]  # noqa: E712 (object column: True, False, None)
    if not len(final):
        final = train.sort_values("step").groupby("train_id", sort=False).tail(1)
    return final.assign(label=[_label(r) for r in final.itertuples()], full=[_full(r) for r in final.itertuples()],
                        model=[model_label(r) for r in final.itertuples()])


def _final_figure(ctx: Context, final: pd.DataFrame) -> go.Figure:
    fig = figures.new("Final figures beside the published anchors and the trivial baseline", "task / run",
                      "final metric", height=500)
    fig.update_xaxes(tickangle=0, automargin=False)
    x = [list(final["task"]), list(final["label"])]
    colours = model_colours(final["model"])
    fig.add_trace(go.Bar(x=x, y=final["value"], marker_color=[colours[m] for m in final["model"]], name="this run",
                         customdata=list(zip(final["full"], final["metric"])),
                         hovertemplate="%{customdata[0]}: %{y:.4g} %{customdata[1]}<extra></extra>"))
    ax, ay, at = [[], []], [], []
    bx, by = [[], []], []
    for r in final.itertuples():
        for name, value in _anchors(r.anchors, r.metric).items():
            ax[0].append(r.task)
            ax[1].append(r.label)
            ay.append(value)
            at.append(name)
        if isinstance(r.baseline, numbers.Real) and pd.notna(r.baseline):
            bx[0].append(r.task)
            bx[1].append(r.label)
            by.append(r.baseline)
    if ay:
        fig.add_trace(go.Scatter(x=ax, y=ay, text=at, mode="markers", name="published anchors",
                                 marker=dict(symbol="diamond", size=10, color="#333"),
                                 hovertemplate="%{text}: %{y:.4g}<extra>published</extra>"))
    if by:
        fig.add_trace(go.Scatter(x=bx, y=by, mode="markers", name="trivial baseline",
                                 marker=dict(symbol="line-ew-open", size=28, line=dict(width=3, color=BASELINE_COLOUR)),
                                 hovertemplate="trivial baseline: %{y:.4g}<extra></extra>"))
    return fig


def _cost(ctx: Context, final: pd.DataFrame) -> go.Figure | None:
    final = final[final["wall_s"].notna() & final["value"].notna() & (final["wall_s"] > 0)]
    if not len(final):
        return None
    fig = figures.new("Quality against cost", "training wall clock (s, log scale)", "final metric", xlog=True)
    colours = model_colours(final["model"])
    for label, g in final.groupby("label", sort=True):
        model = g["model"].iloc[0]
        fig.add_trace(go.Scatter(x=g["wall_s"], y=g["value"], mode="markers+text", text=g["task"],
                                 textposition="top center", name=label, marker=dict(size=11, color=colours[model]),
                                 customdata=g["full"], hovertemplate="%{customdata}: %{y:.4g} in %{x:.3g} s<extra></extra>"))
    return fig


def build(ctx: Context) -> Section:
    train = ctx.frame("train")
    if not len(train):
        return skipped("learning", TITLE, "No training records (kind=\"train\"): run arsenal train.")
    train = train.assign(train_id=train["train_id"].fillna("?").astype(str), split=train["split"].fillna("?"))
    if "cell" in train:  # a bake-off run names its cell on the final record only: every record of the run gets it
        cells = train.dropna(subset=["cell"]).groupby("train_id")["cell"].first()
        train = train.assign(cell=train["train_id"].map(cells))
    s = Section("learning", TITLE)
    s.figure("curves", _curves(ctx, train), "Colour: the model (family config); marker: the mix; line style: "
                                            "the split (solid train, dashed validation, dotted test).")
    final = _finals(train)
    s.figure("final", _final_figure(ctx, final), "Bars: each run's final test metric, coloured by model; dark "
                                                 "diamonds: published figures for the task (DESIGN section 12); "
                                                 "short dark-red horizontal lines: the trivial baseline (most "
                                                 "frequent label, or unigram bits per byte).")
    table = final[["full", "task", "split", "step", "metric", "value", "baseline"]].assign(
        anchors=[", ".join(f"{k} {v:.4g}" for k, v in _anchors(a, m).items()) for a, m in zip(final["anchors"],
                                                                                              final["metric"])])
    s.add_table(table, "Final figures.")
    cost = _cost(ctx, final)
    if cost is not None:
        s.figure("cost", cost)
    return s
