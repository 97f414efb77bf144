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


def _names(recs: list[dict], field: str, skip=()) -> str:
    return ",".join(v for v in first_seen(str(r[field]) for r in recs if r.get(field) is not None) if v not in skip)


def _command(*parts) -> str:
    """A shell line from (flag, value) pairs and words; a pair with no value is left out."""
    words = []
    for part in parts:
        if isinstance(part, tuple):
            if part[1]:
                words += [part[0], str(part[1])]
        else:
            words.append(part)
    return " ".join(shlex.quote(w) for w in words)


def _kind_commands(kind: str, recs: list[dict], threads) -> list[str]:
    """The commands that write records of ``kind``, with the options the records show
    (options they do not record take their defaults)."""
    device = ("--device", _names(recs, "device"))
    if kind == "op":
        cases = ", ".join(first_seen(str(r.get("case_id")) for r in recs))
        return [_command("arsenal", "ops", ("--op", _names(recs, "op")), ("--backend", _names(recs, "backend")),
                         ("--dtype", _names(recs, "dtype")), ("--mode", _names(recs, "mode")), device,
                         ("--threads", threads)) + f"   # the suite's cases; this run timed {cases}"]
    if kind == "drift":
        return [_command("arsenal", "drift", ("--op", _names(recs, "op")), ("--backend", _names(recs, "backend")),
                         ("--dtype", _names(recs, "dtype")), ("--T", _names(recs, "T")), device, ("--threads", threads))]
    if kind == "model":
        lines = []
        for family in first_seen(str(r.get("family")) for r in recs):
            mine = [r for r in recs if str(r.get("family")) == family]
            lengths = ",".join(first_seen(str(r["case"]["T"]) for r in mine if isinstance(r.get("case"), dict)
                                          and "T" in r["case"]))
            grid = [r for r in mine if r.get("role") in ("grid", "scaling", None)]
            if grid:
                # a peer's record has no backend mix (bench/modelbench/bench.py)
                peers = first_seen(str(r["mix_id"]) for r in grid if r.get("mix") is None and r.get("mix_id"))
                flags = ["--no-peers"] if not peers else [] if peers == ["torch_compile"] else [("--peers", ",".join(peers))]
                lines.append(_command("arsenal", "models", "run", ("--family", family),
                                      ("--mix", _names(grid, "mix_id", skip=tuple(peers))), ("--length", lengths),
                                      *flags, device, ("--threads", threads)))
            if any(r.get("role") in ("swap", "best") for r in mine):
                lines.append(_command("arsenal", "models", "ablate", ("--family", family), ("--length", lengths), device,
                                      ("--threads", threads)))
        return lines
    if kind == "equivalence":
        return [_command("arsenal", "models", "equivalence", ("--family", r.get("family")), ("--mix", r.get("mix_id")),
                         ("--steps", r.get("steps")), device) for r in recs]
    if kind == "train":
        lines = []
        for run in first_seen(r.get("train_id") for r in recs):
            mine = [r for r in recs if r.get("train_id") == run]
            steps = max((r["step"] for r in mine if isinstance(r.get("step"), int)), default=None)
            lines.append(_command("arsenal", "train", ("--family", mine[0].get("family")), ("--mix", mine[0].get("mix_id")),
                                  ("--task", mine[0].get("task")), ("--steps", steps),
                                  *(["--bf16"] if mine[0].get("dtype") == "bfloat16" else []), device,
                                  ("--threads", threads)) + "   # model options: the record's config")
        return lines
    return []


def commands(ctx: Context) -> list[str]:
    """One block per run: the checkout, then the commands that write what it holds."""
    lines, paths = [], " ".join(shlex.quote(str(p)) for p in ctx.results.paths)
    for run in first_seen(r.get("run_id") for r in ctx.results.records):
        recs = [r for r in ctx.results.records if r.get("run_id") == run]
        env = next((r["env"] for r in recs if isinstance(r.get("env"), dict)), {})
        git = env.get("git") if isinstance(env.get("git"), dict) else {}
        lines.append(f"# run {run}: {len(recs)} records, {recs[0].get('time', '')}")
        if git.get("commit"):
            lines.append(f"git checkout {git['commit']}" + ("   # the run had uncommitted changes" if git.get("dirty")
                                                            else ""))
        threads = (env.get("threads") or {}).get("torch")
        for kind in first_seen(kind_of(r) for r in recs):
            lines += [_prefix(env) + c for c in _kind_commands(kind, [r for r in recs if kind_of(r) == kind], threads)]
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
