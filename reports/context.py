"""What every section builder receives: the results, their frames and the palette."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from bench.results import BASELINES  # noqa: F401  (re-exported: the speedup_vs_<name> fields of a record)
from reports.data import TIMED, Results
from reports.palette import Palette


@dataclass
class Context:
    results: Results
    palette: Palette
    baseline: Results | None = None

    @cached_property
    def ops(self) -> pd.DataFrame:
        return self.results.frame("op")

    @cached_property
    def timed(self) -> pd.DataFrame:
        """Op records that carry samples and figures (ok or over the roofline) and a median
        above 0 (the schema reads a 0 as missing; every ratio divides by it)."""
        ops = self.ops
        return ops[ops["status"].isin(TIMED) & (ops["median_ns"] > 0)] if len(ops) else ops

    def frame(self, kind: str) -> pd.DataFrame:
        return self.ops if kind == "op" else self.results.frame(kind)

    def backends(self, names) -> list[str]:
        return self.palette.order(names)


def first_seen(values) -> list:
    """The distinct values in order of first appearance (the records' own order)."""
    return list(dict.fromkeys(values))
