"""Appendix: every record as a sortable table, and the commands that reproduce the run
(from the records' environment: commit, thread counts, runtime settings, what ran)."""

from __future__ import annotations

import html
import shlex

import pandas as pd

from reports.blocks import Section, table
from reports.context import Context, first_seen
from reports.data import kind_of

COLUMNS = ("kind", "run_id", "time", "op", "family", "config_id", "backend", "mix_id", "role", "task", "case_id", "T",
           "layer", "step", "split", "dtype", "mode", "device", "status", "median_us", "rel_iqr", "gbps", "gflops",
           "pct_roofline", "speedup_vs_torch", "speedup_vs_torch_compile", "steal_pct", "load", "tokens_per_s",
           "peak_mem_bytes", "loss", "value", "max_abs_diff", "ok", "error")
ERROR_CHARS = 120


def _row(r: dict) -> dict:
    row = {c: r.get(c) for c in COLUMNS}
    row["kind"] = kind_of(r)
    row["load"] = r["load"].get("verdict") if isinstance(r.get("load"), dict) else None
    median = r.get("median_ns")
    row["median_us"] = median / 1e3 if isinstance(median, (int, float)) else None
    if isinstance(r.get("error"), str):
        row["error"] = r["error"][:ERROR_CHARS] + ("..." if len(r["error"]) > ERROR_CHARS else "")
    elif not isinstance(r.get("error"), (int, float, type(None))):
        row["error"] = str(r["error"])[:ERROR_CHARS]
    return {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v)) for k, v in row.items()}


def records_table(ctx: Context) -> pd.DataFrame:
    frame = pd.DataFrame([_row(r) for r in ctx.results.records], columns=list(COLUMNS))
    return frame.dropna(axis=1, how="all")


def _prefix(env: dict) -> str:
    runtime = env.get("runtime") if isinstance(env.get("runtime"), dict) else {}
    return "".join(f"{k}={shlex.quote(str(v))} " for k, v in runtime.items())


def commands(ctx: Context) -> list[str]:
    """One block per run: the checkout, then the command that times what it holds."""
    lines, paths = [], " ".join(shlex.quote(str(p)) for p in ctx.results.paths)
    runs = first_seen(r.get("run_id") for r in ctx.results.records)
    for run in runs:
        recs = [r for r in ctx.results.records if r.get("run_id") == run]
        env = next((r["env"] for r in recs if isinstance(r.get("env"), dict)), {})
        git = env.get("git") if isinstance(env.get("git"), dict) else {}
        lines.append(f"# run {run}: {len(recs)} records, {recs[0].get('time', '')}")
        if git.get("commit"):
            lines.append(f"git checkout {git['commit']}" + ("   # the run had uncommitted changes" if git.get("dirty")
                                                            else ""))
        threads = (env.get("threads") or {}).get("torch")
        ops = [r for r in recs if kind_of(r) == "op"]
        if ops:
            def names(field):
                return ",".join(first_seen(str(r[field]) for r in ops if r.get(field) is not None))
            parts = ["arsenal", "ops", "--op", names("op"), "--backend", names("backend"), "--dtype", names("dtype"),
                     "--mode", names("mode"), "--device", names("device")]
            if threads:
                parts += ["--threads", str(threads)]
            cases = first_seen(str(r.get("case_id")) for r in ops)
            lines.append(_prefix(env) + " ".join(shlex.quote(p) for p in parts)
                         + f"   # the suite's cases; this run timed {', '.join(cases)}")
        for kind, command in (("model", "arsenal models"), ("train", "arsenal train"), ("drift", "arsenal models"),
                              ("equivalence", "arsenal models")):
            mine = [r for r in recs if kind_of(r) == kind]
            if mine:
                what = ", ".join(first_seen(str(r.get("family") or r.get("op")) for r in mine))
                lines.append(f"{_prefix(env)}{command}   # {len(mine)} {kind} records: {what}")
        lines.append("")
    lines.append(f"arsenal report {paths}")
    return lines


def build(ctx: Context) -> Section:
    s = Section("appendix", "Appendix: records and commands")
    s.html("<h3>Commands that reproduce the run</h3><pre>" + html.escape("\n".join(commands(ctx))) + "</pre>")
    s.html("<h3>Every record</h3>")
    s.html(table(records_table(ctx), "Click a column header to sort. Raw samples and the environment are in the "
                                     "results file.", sortable=True, scroll=True))
    return s
