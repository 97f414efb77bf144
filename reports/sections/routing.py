"""NSM routing (kind="routing"): token x state weights per layer, each state's share of
the tokens, and the entropy of each token's routing."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, skipped
from reports.context import Context

TITLE = "NSM routing"
MAX_TOKENS = 256  # tokens of an example drawn in the heatmap


def _weights(r) -> np.ndarray | None:
    """[T, S] weights with masked-out tokens as NaN, or None when malformed."""
    try:
        w = np.asarray(r.weights, dtype=float)
    except (TypeError, ValueError):
        return None
    if w.ndim != 2 or w.size == 0:
        return None
    mask = np.asarray(r.mask, dtype=bool) if isinstance(r.mask, list) and len(r.mask) == len(w) else None
    if mask is not None:
        w[~mask] = np.nan
    return w


def build(ctx: Context) -> Section:
    routing = ctx.frame("routing")
    examples = [] if not len(routing) else [(r, w) for r in routing.itertuples() if (w := _weights(r)) is not None]
    if not examples:
        return skipped("routing", TITLE, "No routing records (kind=\"routing\"): only the nsm family writes them.")
    heat = figures.new("Routing weights of one example (token x state)", "token position", "state", height=460)
    usage = figures.new("State usage: mean routing weight per state", "state", "mean weight over tokens",
                        barmode="group")
    entropy = figures.new("Routing entropy per token (0: one state, 1: all states alike)", "token position",
                          "entropy / log(states)", height=420)
    groups = []
    layers = sorted({(str(r.family), str(r.config_id), int(r.layer) if np.isfinite(r.layer) else -1)
                     for r, _ in examples})
    for family, config, layer in layers:
        mine = [(r, w) for r, w in examples
                if (str(r.family), str(r.config_id), int(r.layer) if np.isfinite(r.layer) else -1) == (family, config, layer)]
        label = f"{family}/{config} layer {layer}"
        r, w = mine[0]
        w = w[:MAX_TOKENS]
        tokens = [str(t) for t in (r.tokens if isinstance(r.tokens, list) else range(len(w)))][:len(w)]
        heat.add_trace(go.Heatmap(z=w.T, x=list(range(len(w))), y=list(range(w.shape[1])), colorscale="Viridis",
                                  zmin=0, zmax=1, meta=label, customdata=[tokens] * w.shape[1],
                                  colorbar=dict(title="weight"),
                                  hovertemplate="token %{x} (%{customdata}) -> state %{y}: %{z:.3f}<extra></extra>"))
        groups.append(label)
        stacked = np.concatenate([x for _, x in mine])  # [tokens of every example, S]
        usage.add_trace(go.Bar(x=list(range(stacked.shape[1])), y=np.nanmean(stacked, axis=0), name=label))
        p = np.clip(w, 1e-12, 1.0)
        h = -(p * np.log(p)).sum(axis=1) / np.log(max(w.shape[1], 2))
        h[np.isnan(w).any(axis=1)] = np.nan
        entropy.add_trace(go.Scatter(x=list(range(len(h))), y=h, mode="lines", name=f"{label} (mean {np.nanmean(h):.2f})",
                                     hovertemplate="token %{x}: %{y:.3f}<extra>" + label + "</extra>"))
    heat.update_yaxes(dtick=1 if max(w.shape[1] for _, w in examples) <= 16 else None)
    figures.dropdown(heat, groups)
    s = Section("routing", TITLE)
    s.figure("weights", heat, f"The first example of each layer (at most {MAX_TOKENS} tokens); masked tokens blank.")
    s.figure("usage", usage, "Mean over every recorded example's unmasked tokens.")
    s.figure("entropy", entropy)
    comm = _communication(examples)
    if comm is not None:
        s.figure("communication", comm, "Each head's attention among the states (query state -> key state), mean "
                                        "over the chunks committed; one panel per layer and head in the menu.")
    return s


def _communication(examples) -> go.Figure | None:
    """Heatmaps of the communication attention [H][S][S] of the layers that have it."""
    fig = figures.new("Communication patterns: attention among the states", "key state", "query state", height=460)
    groups = []
    for r, _ in examples:
        try:
            c = np.asarray(getattr(r, "communication", None), dtype=float)
        except (TypeError, ValueError):
            continue
        if c.ndim != 3 or c.size == 0:
            continue
        for head, a in enumerate(c):
            label = f"{r.family}/{r.config_id} layer {r.layer} head {head}"
            fig.add_trace(go.Heatmap(z=a, colorscale="Viridis", zmin=0, zmax=1, meta=label,
                                     colorbar=dict(title="weight"),
                                     hovertemplate="state %{y} -> state %{x}: %{z:.3f}<extra></extra>"))
            groups.append(label)
    if not groups:
        return None
    figures.dropdown(fig, groups)
    return fig
