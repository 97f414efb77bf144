"""A grid (suites/bakeoff.py) as cell specs: plain dicts (they travel to Ray workers)
holding the cell's identity, its TrainConfig fields and the mix it trains under."""

from __future__ import annotations

import os


def _bad(name: str, expected: str, given) -> ValueError:
    return ValueError(f"bakeoff: argument '{name}' expected {expected}, got {given!r}")


def profile_records(paths, records=()) -> list[dict]:
    """The model-profile records (kind="model") of the files that exist among ``paths``,
    and of ``records`` already read."""
    from bench import results

    out = [r for r in records if r.get("kind") == "model"]
    for path in paths:
        if path and os.path.exists(path):
            out += [r for r in results.read(path) if r.get("kind") == "model"]
    return out


def finished(specs: list[dict], records) -> tuple[list[dict], list[dict]]:
    """(specs still to run, specs whose cell already has a final "ok" record in
    ``records`` at the same grid, seed and budget): an interrupted grid goes on where it
    stopped; a failed cell runs again."""
    done = {(r.get("grid"), r.get("cell"), r.get("seed"), r.get("budget_minutes"), r.get("budget_steps"))
            for r in records if r.get("kind") == "train" and r.get("final") and r.get("status") == "ok"}
    todo, skipped = [], []
    for spec in specs:
        t = spec["train"]
        key = (spec["grid"], spec["cell"], t["seed"], t["minutes"], t["steps"])
        (skipped if key in done else todo).append(spec)
    return todo, skipped


def plan(grid: str, minutes: float | None = None, steps: int | None = None, seeds: int = 1, mix: str | None = None,
         profiles=(), threads: int | None = None, device: str = "cpu", tasks=None, families=None,
         models=None, records=()) -> list[dict]:
    """One spec per cell and seed. The budget: ``minutes`` and/or ``steps``; neither: the
    grid's default. ``profiles``: results files whose model records rank the mixes, with
    ``records`` (a results file the caller has read already).
    ``tasks``/``families``/``models`` (family-config ids, "elman-rung0-free"): only the
    grid's cells of these (None: all)."""
    from bench.bakeoff import mixes
    from bench.train.config import MINUTES_ONLY_STEPS
    from suites import bakeoff

    g = bakeoff.get(grid)
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
        raise _bad("minutes", "None or a float > 0", minutes)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise _bad("steps", "None or an int >= 1", steps)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise _bad("seeds", "an int >= 1", seeds)
    if minutes is None and steps is None:
        minutes, steps = g.minutes, g.steps
    cells = g.cells
    for name, wanted, of in (("tasks", tasks, lambda c: c.task), ("families", families, lambda c: c.family),
                             ("models", models, lambda c: c.model_id)):
        if wanted:
            known = sorted({of(c) for c in g.cells})
            unknown = sorted(set(wanted) - set(known))
            if unknown:
                raise _bad(name, f"names among grid {grid!r}'s {', '.join(known)}", ",".join(unknown))
            cells = tuple(c for c in cells if of(c) in wanted)
    records = profile_records(profiles, records)
    specs = []
    for cell in cells:
        chosen, source = mixes.choose(cell.family, cell.model, records, mix)
        for seed in range(seeds):
            train = {**cell.train, "family": cell.family, "model": dict(cell.model), "task": cell.task,
                     "task_args": dict(cell.task_args), "mix": chosen, "seed": seed, "device": device,
                     "minutes": minutes, "steps": steps if steps is not None else MINUTES_ONLY_STEPS,
                     "out": None, "progress": False}
            if threads is not None:
                train["threads"] = threads
            specs.append({"grid": g.name, "cell": cell.cell_id, "config_label": cell.config_id,
                          "mix_source": source, "train": train})
    return specs
