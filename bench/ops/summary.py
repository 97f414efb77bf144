"""The console view of op records: a table per op, the pairs that could not run, and
the warnings about the conditions of the timing (steal, contention, busy ceilings)."""

from __future__ import annotations

import os

from bench.ops import candidates

from bench import load

STEAL_WARN_PCT = 5.0  # warn when the hypervisor took more of the CPU than this while timing
COLUMNS = ("case", "dtype", "mode", "backend", "status", "median", "IQR", "GB/s", "GFLOP/s", "% roofline",
           "x torch", "x compile", "compile s", "load")
TEXT_COLUMNS = ("case", "dtype", "mode", "backend", "status", "load")


def num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def duration(ns) -> str:
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


def _speedup(r: dict, base: str) -> str:
    """"1.86 (1.71-2.02)": the ratio and its bootstrap 95% interval."""
    x, ci = r.get(f"speedup_vs_{base}"), r.get(f"speedup_vs_{base}_ci95")
    if x is None:
        return "-"
    return f"{x:.2f}" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")


def _load_flag(r: dict) -> str:
    """"[red]disturbed[/]" for a record timed while other work competed for the cores."""
    return "[bold red]disturbed[/]" if load.disturbed(r.get("load")) else ("quiet" if r.get("load") else "-")


def print_summary(console, records: list[dict]) -> None:
    """Per op: each backend's median, spread, figures, % of roofline, speedups and load;
    the pairs that could not run are listed under the table with their reasons."""
    from rich.table import Table

    by_op = {}
    for r in records:
        by_op.setdefault(r["op"], []).append(r)
    for op, recs in by_op.items():
        table = Table(title=op)
        for col in COLUMNS:
            table.add_column(col, justify="left" if col in TEXT_COLUMNS else "right")
        skipped = {}
        for r in recs:
            status = r["status"]
            if status == "unavailable":
                skipped.setdefault(r["error"], set()).add(r["backend"])
                continue
            timed = r.get("median_ns") is not None
            roof = {"ok": num(r.get("pct_roofline"), ".1f"), "wrong_model": "[red]wrong model[/]"}.get(status, "-")
            table.add_row(r["case_id"], r["dtype"], r["mode"], r["backend"],
                          status if timed else f"[red]{status}[/]", duration(r.get("median_ns")),
                          num(r.get("rel_iqr") and 100 * r["rel_iqr"], ".0f") + "%" if timed else "-",
                          num(r.get("gbps"), ".2f"), num(r.get("gflops"), ".2f"), roof,
                          _speedup(r, "torch"), _speedup(r, "torch_compile"), num(r.get("compile_seconds"), ".2f"),
                          _load_flag(r))
        console.print(table)
        for r in recs:
            if r["status"] not in ("ok", "unavailable"):
                console.print(f"  {r['backend']} {r['case_id']} {r['mode']}: {r['status']}: {r['error']}",
                              markup=False, highlight=False)
        for reason, names in skipped.items():
            console.print(f"  not run ({', '.join(sorted(names))}): {reason}", markup=False, highlight=False)


def warn_steal(console, records: list[dict]) -> None:
    steals = [r["steal_pct"] for r in records if r.get("steal_pct") is not None]
    if steals and max(steals) > STEAL_WARN_PCT:
        console.print(f"note: the hypervisor took up to {max(steals):.0f}% of the CPU time while groups were timed "
                      f"(median {sorted(steals)[len(steals) // 2]:.0f}%; per record: steal_pct): other virtual "
                      "machines shared the cores, and spinning OpenMP workers suffer most from it; repeat the run "
                      "and compare (arsenal compare)", markup=False, highlight=False)


def warn_disturbed(console, records: list[dict]) -> None:
    """One line naming the records that stayed disturbed after their re-measurement."""
    bad = [r for r in records if load.disturbed(r.get("load"))]
    if not bad:
        return
    worst = max((r["load"].get("runnable") or 0.0) for r in bad)
    shares = [r["load"]["thread_share"] for r in bad if r["load"].get("thread_share") is not None]
    names = ", ".join(f"{r['op']}[{r['backend']}] {r['mode']}" for r in bad[:8]) + (" ..." if len(bad) > 8 else "")
    console.print(f"WARNING: {len(bad)} of {len(records)} record(s) were timed while other work competed for the "
                  f"cores, and stayed so when measured again (load.verdict = disturbed: up to {worst:.1f} other "
                  f"runnable task(s) on {bad[0]['load']['cores']} cores, the timing thread got as little as "
                  f"{min(shares, default=1.0):.0%} of the wall time): {names}; their figures can be many times "
                  "too slow: repeat on a quiet machine", markup=False, highlight=False)


def warn_busy_ceilings(console, ceil: dict) -> None:
    avg, cores = ceil.get("loadavg"), os.cpu_count() or 1
    if avg and avg[0] > cores:
        console.print(f"note: the ceilings were measured at load average {avg[0]} on {cores} cores; they may be "
                      "low (arsenal roofline --refresh on a quiet machine)", markup=False, highlight=False)


def exit_status(console, records: list[dict]) -> int:
    """1 when one of this project's backends is incorrect or raised. A peer that fails
    the gate is recorded and reported as incorrect, never timed, and does not fail the
    command: it is a finding about the public kernel, not a defect here."""
    bad = [r for r in records if r["status"] in ("incorrect", "error")]
    failed_peers = sorted({r["backend"] for r in bad if not candidates.is_backend(r["backend"])})
    if failed_peers:
        console.print(f"peers that failed the correctness gate (recorded, not timed; not a failure of this run): "
                      f"{', '.join(failed_peers)}")
    return 1 if any(candidates.is_backend(r["backend"]) for r in bad) else 0
