"""Plotly helpers shared by the sections: one look, log axes, IQR bands, dropdowns.

Every trace is SVG (``go.Scatter``, ``go.Bar``, ``go.Box``, ``go.Heatmap``, never
``Scattergl``): the page renders in any browser, WebGL or not.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative

HEIGHT = 440
GRID = "#e5ecf6"
# A small template of its own: plotly's default templates are large and copied into every
# figure (most of a report's build time and some of its size).
TEMPLATE = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", colorway=list(qualitative.Plotly),
    xaxis=dict(gridcolor=GRID, linecolor="#c8d4e3", zeroline=False, automargin=True),
    yaxis=dict(gridcolor=GRID, linecolor="#c8d4e3", zeroline=False, automargin=True),
))
LAYOUT = dict(
    template=TEMPLATE,
    height=HEIGHT,
    margin=dict(l=70, r=30, t=80, b=60),
    font=dict(family="system-ui, -apple-system, 'Segoe UI', sans-serif", size=13),
    legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"),
    hoverlabel=dict(namelength=-1),
)


def new(title: str, x: str, y: str, xlog: bool = False, ylog: bool = False, **layout) -> go.Figure:
    """An empty figure with titled axes (titles carry their units)."""
    fig = blank()
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"))
    fig.update_layout(**layout)
    # "~g" labels every tick of a log axis in full (20, 50, 100) where plotly's default
    # labels the ticks between decades with their first digit only (2, 5, 100)
    fig.update_xaxes(title_text=x, **(dict(type="log", tickformat="~g") if xlog else {}))
    fig.update_yaxes(title_text=y, **(dict(type="log", tickformat="~g") if ylog else {}))
    return fig


def blank() -> go.Figure:
    """A figure with the report's layout and nothing else (also for make_subplots)."""
    return go.Figure(layout=LAYOUT)


def rgba(colour: str, alpha: float) -> str:
    r, g, b = hex_to_rgb(colour) if colour.startswith("#") else (127, 127, 127)
    return f"rgba({r},{g},{b},{alpha})"


def band(fig: go.Figure, x, lo, hi, colour: str, group: str, **trace) -> None:
    """A shaded band between ``lo`` and ``hi`` (an interquartile range), in the legend
    group of its line so that hiding the line hides the band."""
    fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(hi) + list(lo)[::-1], fill="toself", mode="lines",
                             fillcolor=rgba(colour, 0.18), line=dict(width=0), hoverinfo="skip",
                             showlegend=False, legendgroup=group, **trace))


def dropdown(fig: go.Figure, groups: list[str], layouts: dict | None = None) -> None:
    """A menu that shows one group of traces at a time. Each trace's ``meta`` names its
    group; ``layouts`` maps a group to the layout it needs (an axis title)."""
    if not groups:
        return
    layouts = layouts or {}
    trace_groups = [t.meta for t in fig.data]
    for trace, g in zip(fig.data, trace_groups):
        trace.visible = g == groups[0]
    if groups[0] in layouts:
        fig.update_layout(layouts[groups[0]])
    if len(groups) < 2:
        return
    buttons = [dict(label=g, method="update", args=[{"visible": [tg == g for tg in trace_groups]}, layouts.get(g, {})])
               for g in groups]
    fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", showactive=True, x=1.0, xanchor="right",
                                        y=1.02, yanchor="bottom", pad=dict(r=4, t=4))])
