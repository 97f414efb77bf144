"""The report survives any results file whose lines are JSON (issue 22): what it cannot
use is read as missing or skipped, and named (file:line: field: why) in the header.

The cases issue 22 met (a timing of 0, a string among samples, a number where a commit
belongs, a list where an id belongs, a lone surrogate, a speedup of 1e300), each in its
own record of one worst file (tests/report_records.py HOSTILE); then hypothesis puts
arbitrary JSON values, and values the schema accepts at the ends of their ranges, into
the fields of real records. The browser test (test_report_browser.py) opens the worst
file in Chromium."""

from __future__ import annotations

import html
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import results
from reports import page
from reports.sections import speedup
from tests import report_records as rr

REAL = rr.real_records()
PATHS = [(i, p) for i, rec in enumerate(REAL) for p in rr.paths(rec)]
SURROGATE = re.compile("[\ud800-\udfff]")

# Arbitrary JSON, with the values that break arithmetic and drawing weighted in.
EDGES = st.sampled_from([0, -1, 1e300, -1e300, 1e-300, 2 ** 63, 10 ** 400, float("nan"), float("inf"), "", "\ud800",
                         "x\udfffy", [], {}, True, "2026-11-25T12:00:00+05:00"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.text(st.characters(codec=None, categories=["Cs"]), min_size=1, max_size=3) | EDGES)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                           max_size=4), max_leaves=8)
TIMES = ("2026-11-25T12:00:00Z", "0001-01-01T00:00:00", "9999-12-31T23:59:59+00:00")


def field_at(record: dict, path: tuple) -> results.Field | None:
    """The schema's field at ``path`` of ``record`` (None where it declares none)."""
    kind = results.KINDS.get(results.kind_of(record))
    spec = (kind.all_fields() if kind else results.COMMON).get(path[0])
    for step in path[1:]:
        if spec is None:
            return None
        spec = spec.items if isinstance(step, int) else (spec.members or {}).get(step, spec.values)
    return spec


def fitting(spec: results.Field, depth: int = 0):
    """Values the field accepts, its range's ends weighted in: the sections must draw
    whatever the schema lets through (a 0 where 0 is allowed, 1e15 ns, an empty list)."""
    out = []
    for t in spec.type if isinstance(spec.type, tuple) else (spec.type,):
        if t == "number":
            lo, hi = (-1e300 if spec.lo is None else spec.lo), (1e300 if spec.hi is None else spec.hi)
            ends = [x for x in (lo, hi, 0.0, 1.0) if lo <= x <= hi and not (spec.above and x == lo)]
            out.append(st.floats(lo, hi, exclude_min=spec.above) | st.sampled_from(ends or [hi]))
        elif t == "integer":
            out.append(st.integers(None if spec.lo is None else int(spec.lo), None if spec.hi is None else int(spec.hi)))
        elif t == "text":
            out.append(st.sampled_from(spec.choices) if spec.choices else st.text(max_size=8) | st.just("<b>x</b>"))
        elif t == "flag":
            out.append(st.booleans())
        elif t == "time":
            out.append(st.sampled_from(TIMES))
        elif t == "list" and spec.items is not None and depth < 3:
            out.append(st.lists(fitting(spec.items, depth + 1), min_size=spec.length or 0, max_size=spec.length or 5))
        elif t == "object" and spec.members and depth < 3:
            out.append(st.fixed_dictionaries({}, optional={k: st.none() | fitting(v, depth + 1)
                                                           for k, v in spec.members.items()}))
        elif t == "object" and spec.values is not None and depth < 3:
            out.append(st.dictionaries(st.text(max_size=6), fitting(spec.values, depth + 1), max_size=4))
        else:
            out.append(JSON)
    return st.one_of(out)


@st.composite
def substitution(draw):
    """(record index, path, value): any JSON value, or one the field's declaration accepts."""
    i, path = draw(st.sampled_from(PATHS))
    spec = field_at(REAL[i], path)
    return i, path, draw(JSON if spec is None else st.one_of(JSON, fitting(spec)))


def hostile_file(tmp_path, substitutions):
    """The real records with ``substitutions`` [(record index, path, value)] applied (one
    whose path an earlier one replaced is passed over), written one a line."""
    records = list(REAL)
    for i, path, value in substitutions:
        try:
            records[i] = rr.substitute(records[i], path, value)
        except (KeyError, IndexError, TypeError):
            continue
    return rr.write(tmp_path / "hostile.jsonl", records)


def expected_notes(file) -> list[str]:
    """The note each problem of each record of ``file`` should have in the header."""
    return [f"{file}:{number}: {p}" for number, rec, why in results.lines(file) if rec is not None
            for p in results.validate(rec)[1]]


def check(report, notes) -> None:
    """Written, every section drawn by its own builder, every problem named (or, past
    the header's limit, counted)."""
    assert not [n for n in report.notes if n.startswith("section ")], report.notes[:3]
    counted = bool(report.notes) and report.notes[-1].startswith("... and ")
    for note in notes:
        assert note in report.notes or counted
        if note in report.notes:
            assert html.escape(note, quote=True) in report.html


def test_the_worst_file_is_written_and_names_everything(tmp_path):
    """Every case of issue 22 in one file (rr.HOSTILE, one record each), then lines that
    are JSON a report cannot use: each named at its line."""
    file = rr.write_lines(tmp_path / "worst.jsonl", rr.hostile_lines())
    report = page.build([file], baseline=rr.FIXTURE)
    notes = expected_notes(file)
    check(report, notes)
    assert "Against the baseline" in report.html
    for name, (_, _, path, _) in rr.HOSTILE.items():
        field = ".".join(str(step) for step in path[:next((k for k, s in enumerate(path) if isinstance(s, int)),
                                                           len(path))])
        at = f"{file}:{rr.hostile_index(name) + 1}: {SURROGATE.sub(chr(0xFFFD), field)}: "
        named = [n for n in notes if n.startswith(at)]
        assert (named == []) == (name == "a speedup the colour scale clips"), (name, at)
    n = len(rr.hostile_records())
    for offset, why in enumerate(["not a JSON object", "not a JSON object", "line skipped: ValueError",
                                  "line skipped: RecursionError", "schema: 999 where this reader knows 1",
                                  "damaged line skipped"]):
        assert any(note.startswith(f"{file}:{n + 1 + offset}: {why}") for note in report.notes), why
    assert "line(s) skipped (damaged, or a record that cannot be placed)" in report.html
    assert "1 cell(s) beyond 1024x either way are drawn in the scale" in report.html
    colorbar = next(json.loads(s) for s in re.findall(r'data-figure="fig-speedups-heatmap">(.*?)</script>',
                                                      report.html))["layout"]["coloraxis"]
    assert len(colorbar["colorbar"]["tickvals"]) <= 2 * speedup.TICKS + 1
    assert colorbar["cmax"] == speedup.COLOUR_LIMIT
    assert page.write(report, tmp_path / "worst.html").read_text(encoding="utf-8") == report.html


def test_a_flood_of_problems_is_counted_not_listed(tmp_path):
    records = [dict(REAL[0], median_ns=0)] * 500
    report = page.build([rr.write(tmp_path / "flood.jsonl", records)])
    assert len(report.notes) == 61 and report.notes[-1] == "... and 440 more notes of the same kind (not listed)"


def test_a_section_that_raises_becomes_a_note(tmp_path, monkeypatch):
    def broken(ctx):
        raise KeyError("nothing")

    broken.__module__ = speedup.__name__
    monkeypatch.setattr(page.sections, "BUILDERS", (broken,) + page.sections.BUILDERS[3:])
    report = page.build([rr.FIXTURE])
    assert report.notes[0].startswith("section speedup failed on these records: KeyError: 'nothing' (at ")
    assert "Not drawn: building it from these records raised KeyError" in report.html


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(change=substitution())
def test_validate_never_raises_and_its_output_is_clean(change):
    i, path, value = change
    clean, problems = results.validate(rr.substitute(REAL[i], path, value))
    assert all(isinstance(p, results.Problem) for p in problems)
    if clean is not None:
        assert results.validate(clean) == (clean, [])
        json.dumps(clean, ensure_ascii=False).encode("utf-8")


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(substitutions=st.lists(substitution(), min_size=1, max_size=8))
def test_write_report_never_raises_and_names_the_problems(tmp_path, substitutions):
    """page.build then page.write is reports.write_report, keeping the Report to look at;
    the file is its own baseline too (bench.compare on hostile records)."""
    file = hostile_file(tmp_path, substitutions)
    report = page.build([file], baseline=file)
    check(report, expected_notes(file))
    assert page.write(report, tmp_path / "report.html").read_text(encoding="utf-8") == report.html
