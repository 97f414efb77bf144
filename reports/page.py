"""Build the report page from results files and write it.

    report = build(["out/results.jsonl"], baseline="old.jsonl")
    report.html, report.figure_ids, report.notes
    write_report(["out/results.jsonl"], "out/report.html")   # -> Path

The page is one file: plotly.js once in the head (about 4.8 MB), then each figure's
JSON. ``BUDGET_BYTES`` is the size a report may reach (README, "Report"); the sections
keep their data bounded (raw samples as at most 100 quantiles per measurement, long
routing examples cut) so that a full run stays inside it.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from reports import data, sections, template
from reports.blocks import CONFIG, Section, skipped
from reports.context import Context
from reports.palette import Palette

BUDGET_BYTES = 8_000_000
TITLE = "Arsenal performance report"


@dataclass
class Report:
    html: str
    sections: list[Section]
    notes: list[str]  # damaged lines skipped, values refused and the like, as the page's header lists them

    @property
    def figure_ids(self) -> list[str]:
        return [f.id for s in self.sections for f in s.figures]


def _spec(figure) -> str:
    """The figure's JSON, safe inside a <script> element (no "</" can close it)."""
    return pio.to_json(figure, validate=False, pretty=False).replace("</", "<\\/")


def _names(res: data.Results) -> list[str]:
    """Every backend, peer and mix name of the results: the palette's keys."""
    names = set()
    for r in res.records:
        for k in ("backend", "mix_id"):
            if isinstance(r.get(k), str):
                names.add(r[k])
    return sorted(names)


def _subtitle(res: data.Results) -> str:
    times = sorted(r["time"] for r in res.records if isinstance(r.get("time"), str))
    span = f", measured {times[0]} to {times[-1]}" if times else ""
    return f"{len(res.records)} records from {', '.join(str(p) for p in res.paths)}{span}"


def _section(build_section, ctx: Context, failures: list[str]) -> Section:
    """One section; a builder that raises on records the schema let through becomes a
    one-line section naming the error (and a note), never a report that is not written.
    The tests hold every builder to never getting here."""
    try:
        return build_section(ctx)
    except Exception as exc:  # noqa: BLE001 (any error of one section must leave the others standing)
        name = build_section.__module__.rsplit(".", 1)[-1]
        where = traceback.extract_tb(exc.__traceback__)[-1]
        why = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
        failures.append(f"section {name} failed on these records: {why}")
        title = getattr(sys.modules[build_section.__module__], "TITLE", name)
        return skipped(name, title, f"Not drawn: building it from these records raised {why}.")


def build(paths, baseline=None) -> Report:
    """The report of ``paths`` (raises data.NoRecords, FileNotFoundError)."""
    res = data.read(paths)
    base = data.read([baseline]) if baseline is not None else None
    ctx = Context(res, Palette(_names(res) + (_names(base) if base else [])), base)
    failures: list[str] = []
    built = [_section(build_section, ctx, failures) for build_section in sections.BUILDERS]
    specs = {f.id: _spec(f.figure) for s in built for f in s.figures}
    html = template.PAGE.render(title=TITLE, subtitle=_subtitle(res), sections=built, specs=specs,
                                figure_count=len(specs), style=template.STYLE, script=template.SCRIPT,
                                plotlyjs=get_plotlyjs(), config=json.dumps(CONFIG))
    return Report(html, built, failures + data.listed(res.notes + (base.notes if base else [])))


def write(report: Report, out) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
    return out


def write_report(paths, out="out/report.html", baseline=None) -> Path:
    """Write the report of ``paths`` to ``out`` and return its path."""
    return write(build(paths, baseline), out)
