"""The environment the figures were measured in, the measured ceilings, and warnings:
a busy machine or high steal time, failed gates, mixed devices or commits, records or
values the schema refused (each named, file:line: field: why, under "Reading the files")."""

from __future__ import annotations

import html
from collections import Counter

import pandas as pd

from reports.blocks import Section, fmt
from reports.context import Context
from reports.data import listed

STEAL_WARN_PCT = 5.0  # bench.ops.runner warns past this share of CPU time taken by the hypervisor
LISTED = 6  # failed pairs named in a warning


def _envs(ctx: Context) -> list[dict]:
    return [r["env"] for r in ctx.results.records if isinstance(r.get("env"), dict)]


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _commit(env: dict) -> str | None:
    git = _dict(env.get("git"))
    commit = git.get("commit")
    return None if commit is None else commit[:12] + (" (uncommitted changes)" if git.get("dirty") else "")


def _facts(ctx: Context) -> list[tuple[str, str]]:
    envs, recs = _envs(ctx), ctx.results.records
    kinds = Counter(r.get("kind") or "op" for r in recs)
    facts = [("records", ", ".join(f"{n} {k}" for k, n in kinds.items())),
             ("runs", str(len({r.get("run_id") for r in recs if r.get("run_id")}))),
             ("devices", ", ".join(sorted({str(r["device"]) for r in recs if r.get("device")})) or "not recorded")]
    commits = Counter(c for c in map(_commit, envs) if c)
    facts.append(("git commit", ", ".join(commits) or "not recorded"))
    if envs:
        common = envs[-1]  # the newest record's; the warnings name what differs between records
        packages = _dict(common.get("packages"))
        facts += [("CPU", f"{common.get('cpu')} ({common.get('cpu_count')} cores)"),
                  ("GPU", str(common.get("gpu") or "none")),
                  ("platform", str(common.get("platform"))),
                  ("packages", ", ".join(f"{k} {v}" for k, v in packages.items() if v)),
                  ("threads", ", ".join(f"{k} {v}" for k, v in _dict(common.get("threads")).items())),
                  ("runtime settings", ", ".join(f"{k}={v}" for k, v in _dict(common.get("runtime")).items())
                   or "defaults"),
                  ("malloc", ", ".join(f"{k} {v}" for k, v in _dict(common.get("malloc")).items()) or "defaults")]
        loads = [e["loadavg"][0] for e in envs if isinstance(e.get("loadavg"), list) and e["loadavg"]]
        if loads:
            facts.append(("load average (1 min)", f"{fmt(min(loads))} - {fmt(max(loads))}"))
    steal = ctx.ops["steal_pct"].dropna() if len(ctx.ops) else pd.Series(dtype=float)
    if len(steal):
        facts.append(("steal time", f"median {fmt(steal.median())}%, max {fmt(steal.max())}%"))
    return facts


def ceilings(ctx: Context) -> pd.DataFrame:
    """The measured ceilings the op records were set against, per machine fingerprint:
    copy bandwidth (the curve's lowest and highest point the records used) and the
    matrix-multiply rates."""
    rows = []
    ops = ctx.timed
    for r in (ops.to_dict("records") if len(ops) else []):
        roof = r.get("roofline")
        if isinstance(roof, dict):
            rows.append({"device": r["device"], "fingerprint": roof.get("fingerprint"), "dtype": r["dtype"],
                         "gbps": roof.get("gbps"), "gflops": roof.get("gflops")})
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    out = []
    for (device, fp), g in frame.groupby(["device", "fingerprint"], dropna=False):
        row = {"device": device, "machine fingerprint": fp,
               "copy GB/s (main memory)": g["gbps"].min(), "copy GB/s (largest, cache-sized sets)": g["gbps"].max()}
        for dtype, d in g.groupby("dtype"):
            row[f"matmul GFLOP/s ({dtype} ops)"] = d["gflops"].max()
        out.append(row)
    return pd.DataFrame(out)


def _refused(ctx: Context) -> list[str]:
    out = []
    for res, which in ((ctx.results, "the results"), (ctx.baseline, "the baseline")):
        if res is not None and (res.dropped or res.missing):
            out.append(f"{which} hold {res.dropped} line(s) skipped (damaged, or a record that cannot be placed) "
                       f"and {res.missing} value(s) that fail the results schema (bench/results.py), read as "
                       "missing: each is named under \"Reading the files\"")
    return out


def warnings(ctx: Context) -> list[str]:
    out = _refused(ctx)
    busy = [(env["loadavg"][0], env["cpu_count"]) for env in _envs(ctx)
            if isinstance(env.get("loadavg"), list) and env["loadavg"] and isinstance(env.get("cpu_count"), int)
            and env["loadavg"][0] > env["cpu_count"]]
    if busy:
        load, cores = max(busy)
        out.append(f"busy machine: load average up to {load} on {cores} cores while measuring ({len(busy)} "
                   "record(s)); the figures carry other processes' noise")
    disturbed = [r for r in ctx.results.records if isinstance(r.get("load"), dict)
                 and r["load"].get("verdict") == "disturbed"]  # op and model timings
    if disturbed:
        out.append(f"{len(disturbed)} measurement(s) stayed disturbed by other processes on the machine (the "
                   "records' load verdict, bench/load.py) after being timed again: their figures are noisy")
    ops = ctx.ops
    if len(ops):
        steal = ops[ops["steal_pct"] > STEAL_WARN_PCT]
        if len(steal):
            out.append(f"the hypervisor took more than {STEAL_WARN_PCT:g}% of the CPU (steal time, up to "
                       f"{fmt(steal['steal_pct'].max())}%) while {len(steal)} measurement(s) were timed: "
                       "those timings are noisy")
        for status, what in (("incorrect", "failed the correctness gate (not timed)"),
                             ("error", "raised an error"),
                             ("wrong_model", "exceeded 100% of the roofline (the contract's bytes or flops model)")):
            bad = ops[ops["status"] == status]
            if len(bad):
                pairs = list(dict.fromkeys(f"{r.op}[{r.backend}] {r.dtype} {r.mode}" for r in bad.itertuples()))
                more = f" and {len(pairs) - LISTED} more" if len(pairs) > LISTED else ""
                out.append(f"{len(pairs)} pair(s) {what}: {', '.join(pairs[:LISTED])}{more}")
    eq = ctx.frame("equivalence")
    if len(eq):
        failed = eq[eq["ok"] == False]  # noqa: E712 (a column of objects: True, False, None)
        if len(failed):
            out.append(f"training equivalence failed for {', '.join(f'{r.family} {r.mix_id}' for r in failed.itertuples())}")
    devices = {r.get("device") for r in ctx.results.records if r.get("device")}
    if len(devices) > 1:
        out.append(f"mixed devices ({', '.join(sorted(map(str, devices)))}): compare figures within one device")
    commits = {c for c in map(_commit, _envs(ctx)) if c}
    if len(commits) > 1:
        out.append(f"mixed commits ({', '.join(sorted(commits))}): the records come from different code")
    elif any(c.endswith("(uncommitted changes)") for c in commits):
        out.append("measured from a checkout with uncommitted changes: the commit alone does not reproduce it")
    return out


def build(ctx: Context) -> Section:
    s = Section("environment", "Environment and ceilings")
    facts = "".join(f"<div><span>{html.escape(k)}:</span> {html.escape(v)}</div>" for k, v in _facts(ctx))
    s.html(f"<div class=\"facts\">{facts}</div>")
    roof = ceilings(ctx)
    if len(roof):
        s.add_table(roof, "Measured ceilings (bench/roofline.py), as stored in the op records' roofline field: "
                          "each figure is set against the copy bandwidth at its own working set and the "
                          "matrix-multiply rate of its dtype.")
    else:
        s.text("No measured ceilings: no timed op record.")
    warn = warnings(ctx)
    s.html("<h3>Warnings</h3>" + ("<ul class=\"warnings\">" + "".join(f"<li>{html.escape(w)}</li>" for w in warn)
                                   + "</ul>" if warn else "<p>None.</p>"))
    if ctx.results.notes or (ctx.baseline and ctx.baseline.notes):
        notes = listed(ctx.results.notes + (ctx.baseline.notes if ctx.baseline else []))
        s.html("<h3>Reading the files</h3><ul class=\"notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
               + "</ul>")
    return s
