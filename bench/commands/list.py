"""``arsenal list``: the op x candidate coverage matrix, with the reason for every gap."""

from __future__ import annotations

NAME = "list"
HELP = "the op x backend coverage matrix, with the reason for every gap"
TIMING = False


def add_arguments(sp) -> None:
    sp.add_argument("--simulate", action="store_true", help="as for check")


def coverage() -> tuple[list[str], list[tuple[str, dict]]]:
    """(candidate names, [(op, {name: None (no implementation) | "" (runs) | reason})])."""
    import backends
    from bench.ops import candidates

    names = candidates.names()
    rows = []
    for op in backends.OPS:
        have = set(candidates.of_op(op))
        rows.append((op, {n: None if n not in have else
                          (candidates.why_unavailable(op, n, candidates.home_device(n)) or "") for n in names}))
    return names, rows


def run(args, console) -> int:
    from rich.table import Table

    from bench.ops import candidates

    names, rows = coverage()
    table = Table(title="Coverage: op x backend (and peers)")
    table.add_column("op")
    for n in names:
        table.add_column(n + ("" if candidates.is_backend(n) else " (peer)"))
    reasons = {}
    for op, cells in rows:
        row = [op]
        for n in names:
            reason = cells[n]
            if reason is None:
                row.append("-")
            elif reason == "":
                row.append("[green]yes[/]")
            else:
                row.append(f"[yellow]no [{reasons.setdefault(reason, len(reasons) + 1)}][/]")
        table.add_row(*row)
    console.print(table)
    console.print("  - no implementation: no file backends/<backend>/<op>.py, or no adapter in the peer",
                  markup=False, highlight=False)
    for reason, tag in reasons.items():
        console.print(f"  [{tag}] {reason}", markup=False, highlight=False)
    return 0
