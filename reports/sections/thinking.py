"""The stackformer's thinking: how many steps it takes per token, and where the stack's
mass goes (pushed, popped, dropped past the bottom, left when it halted), from the
``thinking`` field of model records (bench/modelbench/metrics.py) and of training
evaluations (bench/train/run.py)."""

from __future__ import annotations

import numbers

import pandas as pd
import plotly.graph_objects as go

from reports import figures
from reports.blocks import Section, skipped
from reports.context import Context

TITLE = "Stackformer thinking"
MASSES = ("pushed_mass", "popped_mass", "dropped_mass", "left_mass")


def _summary(value) -> dict | None:
    """A thinking summary with a usable histogram, else None (the field is free-form JSON)."""
    if not isinstance(value, dict):
        return None
    hist = value.get("steps_hist")
    if not isinstance(hist, list) or not hist or not all(isinstance(h, numbers.Real) for h in hist) or sum(hist) <= 0:
        return None
    return value


def _model_rows(ctx: Context) -> list[tuple[str, dict]]:
    models = ctx.frame("model")
    if not len(models) or "thinking" not in models:
        return []
    return [(f"{r.family}-{r.config_id} · {r.mix_id} · {r.case_id}", t)
            for r in models.itertuples() if (t := _summary(getattr(r, "thinking", None))) is not None]


def _train_rows(ctx: Context) -> pd.DataFrame:
    train = ctx.frame("train")
    if not len(train) or "thinking" not in train:
        return pd.DataFrame()
    rows = [{"run": f"{r.family} · {r.task} · {r.train_id}", "step": r.step, "split": r.split,
             "steps_mean": t.get("steps_mean")}
            for r in train.itertuples() if (t := _summary(getattr(r, "thinking", None))) is not None]
    return pd.DataFrame(rows)


def build(ctx: Context) -> Section:
    models, train = _model_rows(ctx), _train_rows(ctx)
    if not models and not len(train):
        return skipped("thinking", TITLE, "No thinking records: the stackformer's model and training records carry them.")
    s = Section("thinking", TITLE)
    if models:
        hist = figures.new("Thinking steps per token", "steps taken", "share of tokens", barmode="group")
        mass = figures.new("Stack mass per token", "", "mass per token (mean)", barmode="group")
        for label, t in models:
            total = sum(t["steps_hist"])
            hist.add_trace(go.Bar(x=list(range(len(t["steps_hist"]))), y=[h / total for h in t["steps_hist"]],
                                  name=f"{label} (mean {t.get('steps_mean', float('nan')):.2f})"))
            mass.add_trace(go.Bar(x=[m.replace("_mass", "") for m in MASSES],
                                  y=[t.get(m) if isinstance(t.get(m), numbers.Real) else None for m in MASSES],
                                  name=label))
        s.figure("steps", hist, "From the model profile's batch: the share of tokens that took each number of "
                                "steps (the step limit is the last bar).")
        s.figure("mass", mass, "Pushed and popped: summed over a token's steps; dropped: pushed past the stack's "
                               "bottom; left: on the stack when the token halted.")
    if len(train):
        curve = figures.new("Thinking steps per token during training", "optimizer step", "mean steps per token")
        for run, g in train[train["split"] == "val"].groupby("run", sort=False):
            curve.add_trace(go.Scatter(x=g["step"], y=g["steps_mean"], mode="lines+markers", name=run))
        s.figure("training", curve, "Mean over the validation tokens at each evaluation.")
    return s
