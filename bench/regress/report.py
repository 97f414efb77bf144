"""The regression check's table, as printed at the end of ``arsenal regress``."""

from __future__ import annotations

from bench.regress.verdict import Row


def report(rows: list[Row], factor: float, alpha: float, base: str) -> str:
    lines = [f"regression check against {base}: fail when slower than {factor}x with p < {alpha} in every round, "
             "twice",
             f"{'pair':60s} {'verdict':14s} {'ratio':>7s} {'p':>9s}  note"]
    for r in rows:
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
        p = f"{r.p:.2g}" if r.p is not None else "-"
        lines.append(f"{r.key:60s} {r.verdict + (' FAIL' if r.fails else ''):14s} {ratio:>7s} {p:>9s}  {r.note[:100]}")
    failed = sum(r.fails for r in rows)
    lines.append(f"{failed} of {len(rows)} pairs failed" if failed else f"no regression in {len(rows)} pairs")
    return "\n".join(lines)
