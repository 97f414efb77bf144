"""Console tables of model records (kind="model"): the grid, the scaling fits with
break-even lengths, and the swap ablation with its best mix."""

from __future__ import annotations




def _ms(ns) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3g}"


def _x(v, ci=None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def top_share(rec) -> str:
    shares = rec.get("op_breakdown") or {}
    total = sum(shares.values())
    ops = {k: v for k, v in shares.items() if k != "rest"}
    if not total or not ops:
        return "-"
    op, ns = max(ops.items(), key=lambda kv: kv[1])
    return f"{op} {100 * ns / total:.0f}%"


def rows_over_step(rec) -> str:
    """The breakdown's rows (the clocked step) over the timed median step: how much of
    the measured step the per-op rows account for ("1.03x": 3% more)."""
    clocked, median = rec.get("breakdown_step_ns"), rec.get("median_ns")
    return "-" if not clocked or not median else f"{clocked / median:.2f}x"


def print_grid(console, records) -> None:
    from rich.table import Table

    table = Table(title="Model training step (forward, backward, optimizer), median")
    for col in ("family", "case", "mix", "status", "step ms", "x torch [95%]", "x compile [95%]", "tokens/s",
                "prefill tok/s", "decode us/tok", "peak MiB", "top op", "rows/step", "compile s", "load"):
        table.add_column(col)
    for r in records:
        if r.get("kind") != "model":
            continue
        table.add_row(f"{r['family']}-{r['config_id']}", r["case_id"], r["mix_id"], r["status"] or "-",
                      _ms(r.get("median_ns")), _x(r.get("speedup_vs_torch"), r.get("speedup_vs_torch_ci95")),
                      _x(r.get("speedup_vs_torch_compile"), r.get("speedup_vs_torch_compile_ci95")),
                      "-" if r.get("tokens_per_s") is None else f"{r['tokens_per_s']:,.0f}",
                      "-" if r.get("prefill_tokens_per_s") is None else f"{r['prefill_tokens_per_s']:,.0f}",
                      "-" if r.get("decode_ns_per_token") is None else f"{r['decode_ns_per_token'] / 1e3:.0f}",
                      "-" if r.get("peak_mem_bytes") is None else f"{r['peak_mem_bytes'] / 2**20:.1f}",
                      top_share(r), rows_over_step(r), "-" if r.get("compile_seconds") is None else f"{r['compile_seconds']:.1f}",
                      (r.get("load") or {}).get("verdict", "-"))
    console.print(table)
    stayed = sorted({f"{r['family']}-{r['config_id']} {r['case_id']}" for r in records
                     if (r.get("load") or {}).get("verdict") == "disturbed"})
    if stayed:
        console.print(f"WARNING: disturbed by other work even when measured again (times and ratios unreliable): "
                      f"{', '.join(stayed)}", markup=False, highlight=False)
    for r in records:
        if r.get("status") in ("incorrect", "error", "unavailable") and r.get("kind") == "model":
            console.print(f"  {r['family']}-{r['config_id']} {r['mix_id']}: {r['status']}: {r['error']}",
                          markup=False, highlight=False)


def print_scaling(console, fits: list[dict]) -> None:
    """The scaling_fit records (bench.modelbench.fits.scaling_fits) as a table."""
    from rich.table import Table

    table = Table(title="Scaling: log-log slope of step time against length (95% interval); "
                        "break-even length against the transformer (same mix)")
    for col in ("model", "mix", "lengths", "slope", "memory slope", "break-even vs transformer"):
        table.add_column(col)
    for f in fits:
        be = f["break_even_T"]
        if f["family"] == "transformer":
            text = "-"
        elif be is None:
            text = "never within the lengths measured" if f["reference_mix"] else "no transformer reference"
        else:
            text = f"{be:,.0f} tokens"
        table.add_row(f"{f['family']}-{f['config_id']}", f["mix_id"], f"{min(f['lengths'])}-{max(f['lengths'])}",
                      _x(f["slope"], f["slope_ci95"]), _x(f["memory_slope"]), text)
    console.print(table)


def print_ablation(console, family, config_id, swaps, finals, best) -> None:
    from rich.table import Table

    table = Table(title=f"Swap ablation of {family}-{config_id}: each op moved alone from all-torch")
    for col in ("mix", "status", "step ms", "x torch [95%]"):
        table.add_column(col)
    for r in swaps:
        table.add_row(r["mix_id"], r["status"], _ms(r.get("median_ns")),
                      _x(r.get("speedup_vs_torch"), r.get("speedup_vs_torch_ci95")))
    console.print(table)
    table = Table(title=f"Best mix of {family}-{config_id}, measured end to end: {best}")
    for col in ("mix", "status", "step ms", "x torch [95%]", "x compile [95%]"):
        table.add_column(col)
    for r in finals:
        table.add_row(r["mix_id"], r["status"], _ms(r.get("median_ns")),
                      _x(r.get("speedup_vs_torch"), r.get("speedup_vs_torch_ci95")),
                      _x(r.get("speedup_vs_torch_compile"), r.get("speedup_vs_torch_compile_ci95")))
    console.print(table)
