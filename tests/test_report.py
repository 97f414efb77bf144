"""The HTML report (reports/, arsenal report) on small results files written here: one
plotly.js bundle, nothing fetched at view time, every expected figure present with
parseable JSON, SVG traces only, one colour per backend, and clear handling of NaN,
missing fields, failed statuses, a single record, an empty file and a damaged line.
The browser test (test_report_browser.py) opens the same reports in Chromium."""

import ast
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import reports
from bench import cli
from reports import page
from reports.blocks import CONFIG
from reports import data
from reports.context import Context
from reports.palette import FIXED, Palette
from reports.sections import bakeoff as bakeoff_section
from tests import report_records as rr

REPO = Path(__file__).resolve().parents[1]
SVG_TRACES = {"scatter", "bar", "box", "heatmap"}


class Figures(HTMLParser):
    """The figure divs and JSON specs of a report page, and its <script>/<link> tags."""

    def __init__(self, html: str):
        super().__init__()
        self.divs, self.specs, self.tags, self._spec = [], {}, [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "link", "img", "iframe"):
            self.tags.append((tag, attrs))
        if tag == "div" and "figure" in (attrs.get("class") or "").split():
            self.divs.append(attrs["id"])
        if tag == "script" and attrs.get("data-figure"):
            self._spec = attrs["data-figure"]
            self.specs[self._spec] = ""

    def handle_data(self, data):
        if self._spec is not None:
            self.specs[self._spec] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._spec = None


def parse(html: str) -> dict:
    found = Figures(html)
    assert found.divs == list(found.specs), "every figure div has its spec, in order"
    return {fid: json.loads(spec) for fid, spec in found.specs.items()}


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    path = rr.write(tmp_path_factory.mktemp("report") / "results.jsonl", rr.every_kind())
    return path, page.build([path])


def test_plotly_js_is_embedded_once(every_kind):
    _, report = every_kind
    assert report.html.count("* plotly.js v") == 1
    scripts = [a for t, a in Figures(report.html).tags if t == "script" and not a.get("type", "").endswith("json")]
    assert len(scripts) == 2  # plotly.js in the head, the loader at the end


def test_nothing_is_fetched_at_view_time(every_kind):
    _, report = every_kind
    for tag, attrs in Figures(report.html).tags:
        assert "src" not in attrs, f"<{tag}> loads {attrs['src']}"
        assert not re.match(r"(https?:)?//", attrs.get("href") or ""), f"<{tag}> links {attrs['href']}"
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=[\"']?(https?:)?//", report.html)
    assert not re.search(r"@import|url\(\s*[\"']?https?://", report.html.split("<script", 1)[0])


def test_every_expected_figure_is_present_and_parses(every_kind):
    _, report = every_kind
    specs = parse(report.html)
    assert list(specs) == list(rr.EVERY_KIND_FIGURES) == report.figure_ids
    assert f'<meta name="arsenal-figures" content="{len(specs)}">' in report.html
    for fid, spec in specs.items():
        assert spec["data"], f"{fid} has no trace"
        assert spec["layout"]["title"]["text"], f"{fid} has no title"


def test_traces_are_svg_and_axes_titled(every_kind):
    _, report = every_kind
    for fid, spec in parse(report.html).items():
        types = {t.get("type", "scatter") for t in spec["data"]}
        assert types <= SVG_TRACES, f"{fid}: {types - SVG_TRACES}"
        axes = {k: v for k, v in spec["layout"].items() if re.fullmatch(r"[xy]axis\d*", k)}
        for name, axis in axes.items():
            if axis.get("showticklabels", True):  # a shared axis of subplots is titled once
                assert axis.get("title", {}).get("text"), f"{fid} {name} has no title"


def test_modebar_has_no_cloud_button(every_kind):
    _, report = every_kind
    config = json.loads(re.search(r'id="plotly-config">(.*?)</script>', report.html).group(1))
    assert config == CONFIG
    assert config["displaylogo"] is False and config["showLink"] is False
    assert "sendDataToCloud" in config["modeBarButtonsToRemove"]


def test_one_colour_per_backend_in_every_figure(every_kind):
    _, report = every_kind
    seen = 0
    for fid, spec in parse(report.html).items():
        for trace in spec["data"]:
            name = trace.get("name")
            if name in FIXED and trace.get("type") != "heatmap":
                colour = (trace.get("marker") or {}).get("color") or (trace.get("line") or {}).get("color")
                assert colour == FIXED[name], f"{fid}: {name} drawn in {colour}"
                seen += 1
    assert seen > 20


def test_speedup_heatmap_is_log_centred_with_a_menu(every_kind):
    _, report = every_kind
    spec = parse(report.html)["fig-speedups-heatmap"]
    axis = spec["layout"]["coloraxis"]
    assert axis["cmid"] == 0 and axis["cmin"] == -axis["cmax"]
    assert "1x" in axis["colorbar"]["ticktext"]
    labels = [b["label"] for b in spec["layout"]["updatemenus"][0]["buttons"]]
    assert "float32 · forward · vs torch" in labels and "bfloat16 · forward_backward · vs torch_compile" in labels
    assert len(spec["data"]) == len(labels)


def test_roofline_draws_the_measured_ceilings(every_kind):
    _, report = every_kind
    names = [t["name"] for t in parse(report.html)["fig-roofline-chart"]["data"]]
    assert "copy 24 GB/s (main memory)" in names
    assert "matmul 290 GFLOP/s (float32 ops)" in names and "matmul 580 GFLOP/s (bfloat16 ops)" in names


def test_header_names_failed_gates_and_ceilings(every_kind):
    _, report = every_kind
    assert "failed the correctness gate" in report.html and "parallel_scan[mingru]" in report.html
    assert "copy GB/s (main memory)" in report.html
    assert rr.COMMIT[:12] in report.html


def test_anchors_are_drawn_in_the_metric_units(every_kind):
    _, report = every_kind
    final = parse(report.html)["fig-learning-final"]
    anchors = next(t for t in final["data"] if t["name"] == "published anchors")
    assert sorted(anchors["y"]) == pytest.approx([0.3637, 0.3637, 0.596, 0.596, 0.602, 0.602])  # % as a fraction


def test_models_section_fits_slopes_and_efficiency(every_kind):
    path, report = every_kind
    html = report.html
    assert "1.93 - 2.06" in html  # the transformer's time slope interval (quadratic by construction)
    assert "T=2048 steps/s" in html
    table = bakeoff_section.scaling_table(Context(data.read([path]), Palette([])))
    assert {"fastlane-small", "transformer-small"} <= set(table["model"])  # the bake-off's model names
    assert set(table["mix"]) == {"torch"}


def test_report_is_deterministic_and_within_its_budget(every_kind):
    path, report = every_kind
    assert page.build([path]).html == report.html
    assert len(report.html.encode()) < page.BUDGET_BYTES
    assert f"{page.BUDGET_BYTES / 1e6:.0f} MB" in (REPO / "README.md").read_text(), "README states the budget"


def test_absent_kinds_are_skipped_with_a_note(tmp_path):
    report = page.build([rr.write(tmp_path / "ops.jsonl", rr.op_records())])
    html = report.html
    for note in ("No model records", "No training records", "No routing records", "No drift records",
                 "No overhead records", "No training-equivalence records"):
        assert note in html
    assert not [f for f in report.figure_ids
                if f.split("-")[1] in ("models", "learning", "routing", "drift", "overhead")]


def test_overhead_section_draws_the_registry_cost_and_tabulates_the_medians(tmp_path):
    records = rr.overhead_records()
    failed = dict(records[0], op="elman_scan", status="error", error="boom", overhead_ns=None, overhead_ci95_ns=None)
    report = page.build([rr.write(tmp_path / "overhead.jsonl", records + [failed])])
    spec = parse(report.html)["fig-overhead-overhead"]
    bars = {t["name"]: t for t in spec["data"]}
    assert sorted(bars) == ["numba_cpu", "torch"]
    assert list(bars["numba_cpu"]["x"]) == ["parallel_scan", "stack_step"]  # the failed record is not drawn
    assert list(bars["numba_cpu"]["y"]) == [4.1, 4.1]  # us
    assert list(bars["torch"]["error_y"]["array"]) == pytest.approx([0.6, 0.6])
    section = report.html[report.html.index('id="overhead"'):]
    for cell in ("98.5", "105", "6.5", "6.1 - 7.1", "5.3", "elman_scan", "error"):
        assert f">{cell}<" in section, cell
    assert "have no section" not in report.html


def test_nan_missing_fields_and_failed_statuses(tmp_path):
    records = rr.op_records(dtypes=("float32",), modes=("forward",))
    records[0].update(median_ns=math.nan, gbps=math.nan, speedup_vs_torch=math.inf)
    records[1].update(status="wrong_model", pct_roofline=130.0, error="130% of the roofline")
    records[2].update(status="error", error="timing: RuntimeError: boom")
    for field in ("roofline", "samples_ns", "speedup_vs_torch", "env", "case", "flops"):
        del records[5][field]
    del records[6]["status"]
    records[7].update(steal_pct=12.0, load=dict(records[7]["load"], verdict="disturbed"))
    models = rr.model_records()
    models[0]["op_breakdown"] = {"parallel_scan": math.nan, "rest": 1e6}
    for field in ("peak_mem_bytes", "case", "speedup_vs_torch_ci95"):
        models[-1].pop(field)
    train = rr.train_records()
    train[-1]["anchors"] = [{"model": "S4", "value": 59.6, "unit": "accuracy %"}, {"model": "broken"},
                            {"model": "LSTM", "value": 114.5, "unit": "perplexity"}, "not an anchor"]
    train[-3]["anchors"] = {"Transformer": 0.3637}
    routing = rr.routing_records()
    routing[0]["weights"] = "not a matrix"
    drift = rr.drift_records()[:3]
    drift[-1]["env"] = {"git": "abc", "packages": ["torch"], "threads": None, "loadavg": "high", "cpu_count": "2"}
    path = rr.write(tmp_path / "messy.jsonl", records + models + train + routing + drift)
    report = page.build([path])
    specs = parse(report.html)
    assert "fig-coverage-matrix" in specs and "fig-routing-weights" in specs
    coverage = json.dumps(specs["fig-coverage-matrix"])
    for status in ("incorrect", "unavailable", "error", "wrong_model"):
        assert status in coverage
    assert "stayed disturbed by other processes" in report.html and "steal time, up to 12%" in report.html


def test_a_single_record(tmp_path):
    rec = rr.op_records(dtypes=("float32",), modes=("forward",))[0]
    rec.update(speedup_vs_torch_compile=None, speedup_vs_torch_compile_ci95=None)  # timed alone
    report = page.build([rr.write(tmp_path / "one.jsonl", [rec])])
    assert set(report.figure_ids) == {"fig-roofline-chart", "fig-noise-samples", "fig-coverage-matrix"}
    assert len(parse(report.html)) == 3


def test_the_real_fixture(tmp_path):
    report = page.build([rr.FIXTURE])
    assert report.figure_ids == ["fig-summary-speedup", "fig-speedups-heatmap", "fig-roofline-chart",
                                 "fig-noise-samples", "fig-coverage-matrix"]
    parse(report.html)


def test_damaged_line_is_reported_and_skipped(tmp_path, capsys):
    path = rr.write(tmp_path / "r.jsonl", rr.op_records(dtypes=("float32",), modes=("forward",)),
                    damaged=['{"schema": 1, "op": "parallel_sc'])
    out = tmp_path / "report.html"
    assert cli.main(["report", str(path), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "damaged line skipped" in printed and f"report: {out}" in printed
    assert "damaged line skipped" in out.read_text()


def test_empty_and_missing_files_are_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli.main(["report", str(empty), "-o", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert "no records to report" in err and "Traceback" not in err
    assert cli.main(["report", str(tmp_path / "absent.jsonl")]) == 2
    assert "no such results file" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_baseline_counts_use_bench_compare(tmp_path, capsys):
    new = rr.op_records(dtypes=("float32",), modes=("forward",))
    old = json.loads(json.dumps(new))
    for r in old:
        if r["backend"] == "numba_cpu" and r.get("samples_ns"):
            r["samples_ns"] = [s // 2 for s in r["samples_ns"]]  # twice as fast then: slower now
            r["median_ns"] /= 2
    slower = sum(1 for r in new if r["backend"] == "numba_cpu")
    out = tmp_path / "r.html"
    assert cli.main(["report", str(rr.write(tmp_path / "new.jsonl", new)), "-o", str(out),
                     "--baseline", str(rr.write(tmp_path / "old.jsonl", old))]) == 0
    html = out.read_text()
    assert "Against the baseline" in html
    assert re.search(rf"<td>slower</td>\s*<td>{slower}</td>", html)
    assert re.search(r"<td>unchanged</td>\s*<td>\d+</td>", html)


def test_write_report_is_the_api_that_arsenal_run_calls(tmp_path):
    out = reports.write_report([rr.FIXTURE], tmp_path / "sub" / "report.html")
    assert out == tmp_path / "sub" / "report.html" and out.stat().st_size > 4_000_000


def test_report_code_reads_results_only():
    """reports/ imports no backend, model or suite (and so never torch)."""
    for path in (REPO / "reports").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("backends", "models", "suites", "torch"), f"{path}: {name}"
                if name.startswith("bench"):
                    assert name in ("bench", "bench.results", "bench.compare"), f"{path}: {name}"
