"""The Elman ladder (the bake-off's ``ladder`` grid): one row per rung and R_h mode with
its cost (step time, tokens/s, memory) and each task's metric, and beneath each row the
difference its added feature makes: the row minus the row below (the rung before, same
R_h mode; rung 4 against rung 3 free), with the spread over seeds where two or more ran."""

from __future__ import annotations

import re

import pandas as pd

from reports.blocks import Section, fmt, skipped
from reports.context import Context
from reports.sections.bakeoff import add_unlearned, finals

TITLE = "Elman ladder"
ADDS = {0: "plain Elman", 1: "delta gate", 2: "compete x silu output", 3: "signed log-space state",
        4: "diagonal, parallel (no R_h)"}


def _rung_mode(model: str) -> tuple[int, str] | None:
    m = re.search(r"rung(\d+)-(\w+)", model)
    return (int(m.group(1)), m.group(2)) if m else None


def _cell(values: pd.Series) -> str:
    v = values.dropna()
    return "" if not len(v) else fmt(v.mean()) + (f" ± {fmt(v.std())}" if len(v) > 1 else "")


def _paired_difference(cur: pd.Series, below: pd.Series) -> pd.Series:
    """cur - below per seed where both ran the seed (its spread is the seeds'), else the
    difference of the means."""
    both = cur.dropna().index.intersection(below.dropna().index)
    if len(both):
        return (cur[both] - below[both]).reset_index(drop=True)
    return pd.Series([cur.mean() - below.mean()])


def ladder_rows(final: pd.DataFrame) -> pd.DataFrame:
    final = final[final["status"] == "ok"]
    if "seed" not in final:
        final = final.assign(seed=0)
    tasks = list(dict.fromkeys(final["task"]))
    per = {}
    for model, g in final.groupby("model", sort=False):
        key = _rung_mode(model)
        if key is None:
            continue
        # per seed (index): a task's metric, and the cost figures averaged over the seed's tasks
        by_seed = g.groupby("seed")
        steps = g["step"].where(g["step"] > 0)
        per[key] = {"step ms": (1e3 * g["wall_s"] / steps).groupby(g["seed"]).mean(),
                    "tokens/s": by_seed["tokens_per_s"].mean(), "peak MiB": by_seed["peak_mem_bytes"].mean() / 2**20,
                    **{t: g[g["task"] == t].groupby("seed")["value"].mean() for t in tasks}}
    rows = []
    for rung, mode in sorted(per):
        cur = per[(rung, mode)]
        rows.append({"rung": rung, "R_h": mode, "adds": ADDS.get(rung, ""), "row": "figures",
                     **{k: _cell(v.reset_index(drop=True)) for k, v in cur.items()}})
        below = per.get((rung - 1, mode)) or per.get((rung - 1, "free"))
        if below is not None:
            diff = {k: _cell(_paired_difference(cur[k], below[k])) for k in cur}
            rows.append({"rung": rung, "R_h": mode, "adds": ADDS.get(rung, ""), "row": "minus the row below", **diff})
    return pd.DataFrame(rows)


def build(ctx: Context) -> Section:
    final = finals(ctx, grids=("ladder",))
    if not len(final):
        return skipped("ladder", TITLE, "No ladder records: run arsenal bakeoff --grid ladder --minutes 2.")
    s = Section("ladder", TITLE)
    metrics = ", ".join(f"{t}: {m}" for t, m in final.groupby("task")["metric"].first().items())
    budget = sorted({f"{m:g} min" if pd.notna(m) else f"{int(n)} steps"
                     for m, n in zip(final["budget_minutes"], final["budget_steps"])})
    s.add_table(ladder_rows(final), f"Each rung and R_h mode at {', '.join(budget)} per cell ({metrics}); mean "
                                    "± spread over seeds. Step ms: training wall clock over steps; the second "
                                    "row of a rung is it minus the rung below (same R_h mode): what the feature "
                                    "costs and buys.")
    add_unlearned(s, final, "ladder")
    return s
