"""The bake-off (kind="train" records of `arsenal bakeoff`, grids other than the ladder):
LRA's two tables for these families (accuracy per task with the trivial baseline and the
published anchors; speed and memory relative to the transformer by length, from the
scaling records) and the LM grid against the transformer at equal minutes."""

from __future__ import annotations

import numbers

import pandas as pd

from bench.results import beats
from reports.blocks import Section, fmt, skipped
from reports.context import Context
from reports.sections.learning import _anchors, model_label

TITLE = "Bake-off"
# Tasks that stand in for an LRA task (another corpus, a generated or cut data set): the
# published figures beside them are context, not a like-for-like comparison.
STAND_INS = {"text": "Brown genres, not IMDb", "retrieval": "Brown windows, not AAN", "image": "Fashion-MNIST, not CIFAR-10",
             "pathfinder": "own renderer"}
BASELINE = "transformer"


def finals(ctx: Context, grids=None, exclude=()) -> pd.DataFrame:
    """The final record of every bake-off cell (and seed) in ``grids`` (None: all but ``exclude``)."""
    train = ctx.frame("train")
    if not len(train) or "grid" not in train:
        return train.iloc[:0]
    f = train[(train["final"] == True) & train["grid"].notna()]  # noqa: E712 (object column)
    f = f[f["grid"].isin(grids)] if grids is not None else f[~f["grid"].isin(exclude)]
    # a cell run again (a grid that went on after an interruption, --redo) counts once: its last run
    key = [c for c in ("grid", "cell", "seed", "budget_minutes", "budget_steps") if c in f]
    f = f.drop_duplicates(subset=key, keep="last")
    return f.assign(model=[model_label(r) for r in f.itertuples()])


def _context(task: str, task_args) -> str:
    if task in STAND_INS:
        return f"context: {STAND_INS[task]}"
    if isinstance(task_args, dict) and task_args:
        return "context: cut to " + ", ".join(f"{k}={v}" for k, v in sorted(task_args.items())
                                               if k in ("max_length", "length", "seq_len", "window", "resolution"))
    return ""


def accuracy_table(final: pd.DataFrame) -> pd.DataFrame:
    """Rows: each model (mean over seeds), the trivial baseline, every published anchor;
    columns: the tasks. A failed cell shows its status."""
    tasks = list(dict.fromkeys(final["task"]))
    rows = []
    for model, g in final.groupby("model", sort=False):
        row = {"model": model, "mix": ", ".join(sorted(set(g["mix_id"].dropna().astype(str)))) or "-"}
        for task in tasks:
            t = g[g["task"] == task]
            ok = t[t["status"] == "ok"]["value"].dropna()
            row[task] = (fmt(ok.mean()) + (f" ± {fmt(ok.std())}" if len(ok) > 1 else "")) if len(ok) else \
                (", ".join(sorted(set(t["status"]))) if len(t) else "")
        rows.append(row)
    base = {"model": "trivial baseline", "mix": ""}
    anchors: dict[str, dict] = {}
    for task in tasks:
        t = final[final["task"] == task]
        b = t["baseline"].dropna()
        base[task] = fmt(b.mean()) if len(b) else ""
        r = t.iloc[0]
        note = _context(task, r.get("task_args"))
        for name, value in _anchors(r["anchors"], r["metric"]).items():
            anchors.setdefault(name, {"model": f"{name} (published)", "mix": ""})[task] = \
                fmt(value) + (f" ({note})" if note else "")
    return pd.DataFrame(rows + [base] + list(anchors.values())).fillna("")


def speed_table(final: pd.DataFrame) -> pd.DataFrame:
    """Per task: each model's tokens/s and peak memory relative to the transformer's."""
    rows = []
    for task, t in final[final["status"] == "ok"].groupby("task", sort=False):
        ref = t[t["family"] == BASELINE]
        for model, g in t.groupby("model", sort=False):
            row = {"task": task, "model": model, "steps": g["step"].mean(), "tokens/s": g["tokens_per_s"].mean(),
                   "peak MiB": g["peak_mem_bytes"].mean() / 2**20, "metric": g["value"].mean()}
            if len(ref):
                row["tokens/s vs transformer"] = row["tokens/s"] / ref["tokens_per_s"].mean()
                row["memory vs transformer"] = g["peak_mem_bytes"].mean() / ref["peak_mem_bytes"].mean()
                row["metric - transformer"] = row["metric"] - ref["value"].mean()
            rows.append(row)
    return pd.DataFrame(rows)


def unlearned(final: pd.DataFrame) -> pd.DataFrame:
    """The cells that did not learn their task above its trivial baseline at the budget,
    or did not finish, with what says why: steps reached, training tokens/s and time a
    step (a cell a step of seconds leaves a few steps within minutes), or the error."""
    rows = []
    for r in final.itertuples():
        ok = r.status == "ok" and pd.notna(r.value) and pd.notna(r.baseline)
        if ok and beats(r.metric, r.value, r.baseline):
            continue
        steps = r.step if pd.notna(r.step) else 0
        wall = getattr(r, "wall_s", None)
        rows.append({"model": r.model, "task": r.task, "metric": r.metric,
                     "value": fmt(r.value) if ok else r.status, "baseline": fmt(r.baseline) if pd.notna(r.baseline) else "",
                     "steps": int(steps), "tokens/s": fmt(r.tokens_per_s) if pd.notna(r.tokens_per_s) else "",
                     "s/step": fmt(wall / steps) if steps and wall is not None and pd.notna(wall) else "",
                     "why": _why(r, ok, steps)})
    return pd.DataFrame(rows)


def _why(r, ok: bool, steps: int) -> str:
    """A failed cell's error; a finished one's budget that ended inside the learning-rate
    warmup (its recipe in ``train_config``), where the rate never reached its peak."""
    if not ok:
        return r.error[:200] if isinstance(getattr(r, "error", None), str) else ""
    recipe = getattr(r, "train_config", None)
    warmup = recipe.get("warmup") if isinstance(recipe, dict) else None
    if isinstance(warmup, int) and steps < warmup:
        return f"the budget ended in the warmup (step {int(steps)} of {warmup}): the learning rate never reached its peak"
    return ""


def add_unlearned(s: Section, final: pd.DataFrame, grid: str) -> None:
    table = unlearned(final)
    if len(table):
        s.add_table(table, f"Grid {grid}: the cells at or below their trivial baseline at the budget (or that did not "
                           "finish). Steps reached and the time of a step say why where the budget allowed few steps; "
                           "the others learned nothing above the baseline in the steps they had.")
    else:
        s.text(f"Grid {grid}: every cell learned its task above its trivial baseline at the budget.")


def scaling_table(ctx: Context) -> pd.DataFrame:
    """LRA's efficiency table from the model scaling records: steps/s and memory relative
    to the transformer at each length (the fastest ok mix or peer of each model, named in
    ``mix``); models named as the bake-off names them ("elman-rung3")."""
    models = ctx.frame("model")
    if not len(models) or "role" not in models:
        return pd.DataFrame()
    s = models[(models["role"] == "scaling") & (models["status"] == "ok") & (models["median_ns"] > 0)]
    if not len(s):
        return pd.DataFrame()
    s = s.assign(T=[c.get("T") if isinstance(c, dict) else None for c in s["case"]],
                 model=s["family"].astype(str) + "-" + s["config_id"].astype(str))
    best = s.sort_values("median_ns").groupby(["model", "T"], sort=False).head(1)
    ref = best[best["family"] == BASELINE].set_index("T")
    rows = []
    for model, g in best.groupby("model", sort=False):
        row = {"model": model, "mix": ", ".join(dict.fromkeys(g.sort_values("T")["mix_id"].astype(str)))}
        for r in g.sort_values("T").itertuples():
            if r.T in ref.index:
                row[f"T={r.T} steps/s"] = float(ref.loc[r.T, "median_ns"]) / r.median_ns
                mem, ref_mem = r.peak_mem_bytes, ref.loc[r.T, "peak_mem_bytes"]
                if isinstance(mem, numbers.Real) and ref_mem and pd.notna(mem) and pd.notna(ref_mem):
                    row[f"T={r.T} memory"] = mem / float(ref_mem)
        rows.append(row)
    return pd.DataFrame(rows)


def build(ctx: Context) -> Section:
    final = finals(ctx, exclude=("ladder",))
    scaling = scaling_table(ctx)
    if not len(final) and not len(scaling):
        return skipped("bakeoff", TITLE, "No bake-off records: run arsenal bakeoff --grid lra (or lm, smoke).")
    s = Section("bakeoff", TITLE)
    for grid, g in final.groupby("grid", sort=False):
        budget = sorted({f"{m:g} min" if pd.notna(m) else f"{int(n)} steps"
                         for m, n in zip(g["budget_minutes"], g["budget_steps"])})
        s.add_table(accuracy_table(g), f"Grid {grid} at {', '.join(budget)} per cell: the final test metric "
                                       f"({', '.join(sorted(set(g['metric'].dropna())))}) of each model and task, "
                                       "mean ± spread over seeds; the trivial baseline and the published "
                                       "anchors beneath, marked context where the task differs from theirs.")
        s.add_table(speed_table(g), f"Grid {grid}: steps reached, training tokens/s and peak memory of a "
                                    "training step, each against the transformer on the same task at the same "
                                    "budget.", sortable=True)
        add_unlearned(s, g, grid)
    if len(scaling):
        s.add_table(scaling, "Speed (steps/s) and memory relative to the transformer at each length, from the "
                             "model scaling records (LRA's table 2; above 1: faster or larger).")
    return s
