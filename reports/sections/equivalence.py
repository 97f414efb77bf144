"""Training equivalence (kind="equivalence"): the same seed trained under a mix and
under all-torch; the loss curves must agree within tolerance."""

from __future__ import annotations

import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, skipped
from reports.context import Context

TITLE = "Training equivalence"


def build(ctx: Context) -> Section:
    eq = ctx.frame("equivalence")
    if not len(eq):
        return skipped("equivalence", TITLE, "No training-equivalence records (kind=\"equivalence\").")
    s = Section("equivalence", TITLE)
    cols = [c for c in ("family", "mix_id", "steps", "tolerance", "max_abs_diff", "noise_floor", "agreement", "ok")
            if c in eq.columns]
    s.add_table(eq[cols], "ok: every step's loss under the mix is within the tolerance of the all-torch loss "
                          "(agreement 'tolerance'), or, where training is chaotic, within twice the noise floor: "
                          "all-torch trained again from weights moved by one float32 ulp (agreement 'noise').")
    fig = figures.new("Loss per step: the mix against all-torch, same seed", "step", "training loss")
    groups = []
    for r in eq.itertuples():
        mix, ref = r.losses_mix, r.losses_torch
        if not (isinstance(mix, list) and isinstance(ref, list)):
            continue
        label = f"{r.family} · {r.mix_id}"
        fig.add_trace(go.Scatter(y=mix, mode="lines", name=r.mix_id, meta=label, line=dict(color=ctx.palette(r.mix_id)),
                                 hovertemplate="step %{x}: %{y:.5g}<extra>" + str(r.mix_id) + "</extra>"))
        fig.add_trace(go.Scatter(y=ref, mode="lines", name="torch", meta=label,
                                 line=dict(color=ctx.palette("torch"), dash="dash"),
                                 hovertemplate="step %{x}: %{y:.5g}<extra>torch</extra>"))
        floor = getattr(r, "losses_floor", None)
        if isinstance(floor, list):
            fig.add_trace(go.Scatter(y=floor, mode="lines", name="torch, weights moved 1 ulp", meta=label,
                                     line=dict(color=ctx.palette("torch"), dash="dot"),
                                     hovertemplate="step %{x}: %{y:.5g}<extra>noise floor</extra>"))
        groups.append(label)
    if groups:
        figures.dropdown(fig, groups)
        s.figure("losses", fig)
    return s
