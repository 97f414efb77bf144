"""What a section of the report is made of: figures, tables and short texts.

A section builder returns a ``Section``; ``Section.skipped`` is the one-line note shown
in place of a section whose records are absent (never an empty chart). Figure ids are
``fig-<section>-<name>``: deterministic, so two reports of the same results are the
same page and a test can look a figure up by its id.
"""

from __future__ import annotations

import html
import math
import numbers
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

# The modebar without the logo or the cloud buttons (plotly.js 3 calls its share button
# sendChartToCloud): nothing in it reaches the network.
CONFIG = {"displaylogo": False, "showLink": False, "showSendToCloud": False,
          "modeBarButtonsToRemove": ["sendDataToCloud", "sendChartToCloud"], "responsive": True}


@dataclass
class Figure:
    id: str
    figure: go.Figure
    caption: str = ""


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)  # Figure or HTML text (str, already escaped)
    skipped: str | None = None

    def figure(self, name: str, figure: go.Figure, caption: str = "") -> None:
        self.blocks.append(Figure(f"fig-{self.id}-{name}", figure, caption))

    def text(self, text: str) -> None:
        self.blocks.append(f"<p>{html.escape(text)}</p>")

    def html(self, markup: str) -> None:
        self.blocks.append(markup)

    def add_table(self, frame: pd.DataFrame, caption: str = "", sortable: bool = False) -> None:
        self.blocks.append(table(frame, caption, sortable))

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


def skipped(id: str, title: str, note: str) -> Section:
    return Section(id, title, skipped=note)


def fmt(value, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` significant digits, thousands grouped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral) or abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def table(frame: pd.DataFrame, caption: str = "", sortable: bool = False, scroll: bool = False) -> str:
    """An HTML table (escaped); ``sortable``: a click on a header sorts by that column;
    ``scroll``: a box of bounded height (a long table)."""
    cls = "data sortable" if sortable else "data"
    body = frame.to_html(index=False, escape=True, classes=cls, border=0, na_rep="",
                         formatters={c: fmt for c in frame.columns})
    cap = f"<p class=\"caption\">{html.escape(caption)}</p>" if caption else ""
    return f"<div class=\"table{' scroll' if scroll else ''}\">{cap}{body}</div>"


def interval(lo, hi, digits: int = 3) -> str:
    return "" if lo is None or hi is None else f"{fmt(lo, digits)} - {fmt(hi, digits)}"
