"""The bake-off (DESIGN.md 8.3, ``arsenal bakeoff``): the cells of a grid (suites/bakeoff.py),
each trained by bench.train at one budget under its fastest correct mix.

    from bench.bakeoff import plan, run
    specs = plan("smoke", steps=2)            # one picklable spec per cell and seed
    records = run(specs, out="out/results.jsonl", executor="inline")

Modules:
    mixes.py      the mix a cell trains under: --mix, the model profile's fastest, or the default
    plan.py       grid -> cell specs (TrainConfig fields, the budget, the cell's identity)
    cell.py       one cell: train, then the peak memory of a training step; its records
    executors.py  inline (one after another) and Ray (one cell per worker, records as they finish)
    summary.py    the final records as a table (the console's; the report has its own)
"""

from __future__ import annotations

from bench.bakeoff.executors import EXECUTORS, run
from bench.bakeoff.plan import plan

__all__ = ["plan", "run", "EXECUTORS"]
