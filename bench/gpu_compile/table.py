"""The kernel x chip table of gpu_compile records, for the console, and the failures."""

from __future__ import annotations


def _row_key(r: dict) -> tuple:
    return r["op"], r["backend"], r["kernel"], r["specialization"]


def table(records: list[dict]):
    """A rich Table: one row per kernel specialisation, per chip registers / spills /
    shared memory / blocks per SM (occupancy); failures in red."""
    from rich.table import Table

    chips = sorted({r["chip"] for r in records}, reverse=True)
    t = Table(title="Kernels compiled ahead of time: registers/thread, spill bytes (stores+loads), shared memory "
                    "(static+dynamic bytes), threads/block, blocks/SM (occupancy)")
    for col in ("op", "backend", "kernel", "specialization", *chips):
        t.add_column(col, overflow="fold")
    rows: dict[tuple, dict] = {}
    for r in records:
        rows.setdefault(_row_key(r), {})[r["chip"]] = r
    for key, by_chip in sorted(rows.items()):
        cells = []
        for chip in chips:
            r = by_chip.get(chip)
            if r is None:
                cells.append("-")
            elif r.get("registers") is None:
                cells.append("[red]does not compile[/red]")
            else:
                text = (f"{r['registers']} regs, spill {r['spill_stores'] + r['spill_loads']}, "
                        f"smem {r['static_smem_bytes']}+{r['dynamic_smem_bytes']}, {r['threads_per_block']} thr, "
                        f"{r['blocks_per_sm']} blk ({r['occupancy']:.0%})")
                cells.append(text if r["status"] == "ok" else f"[red]{text}[/red]")
        t.add_row(*key, *cells)
    return t


def failures(records: list[dict]) -> list[str]:
    """One line per failed kernel x chip: what, where it is launched, and the compiler's
    (or the limit's) message."""
    return [f"FAILED {r['chip']} ({r['gpu']}) {r['backend']} {r['module']}.{r['kernel']} [{r['specialization']}], "
            f"launched by {r['uses'][0]}{' and more' if len(r['uses']) > 1 else ''}:\n{r['error']}"
            for r in records if r["status"] != "ok"]
