"""``arsenal compare OLD.jsonl NEW.jsonl``: each measurement's change (bench.compare)."""

from __future__ import annotations

from pathlib import Path

from bench.cli import UsageError

NAME = "compare"
HELP = "changes between two result files (Mann-Whitney U)"
TIMING = False
COLORS = {"faster": "green", "slower": "bold red", "unchanged": "white", "ambiguous": "yellow"}


def add_arguments(sp) -> None:
    sp.add_argument("old")
    sp.add_argument("new")
    sp.add_argument("--alpha", type=float, default=0.01)
    sp.add_argument("--threshold", type=float, default=0.05, help="relative change that matters")
    sp.add_argument("--fail-on-slower", action="store_true", help="exit 1 if anything is slower")


def run(args, console) -> int:
    from rich.table import Table

    from bench import compare, results
    from bench.ops.summary import duration, num

    for path in (args.old, args.new):
        if not Path(path).exists():
            raise UsageError(f"no such results file: {path}")
    import warnings

    with warnings.catch_warnings(record=True) as refused:  # named below, not as Python warnings
        warnings.simplefilter("always", results.DamagedLineWarning)
        old, new = results.read_valid(args.old), results.read_valid(args.new)
    for w in refused:
        console.print(f"skipped or read as missing: {w.message}", markup=False, highlight=False)
    changes = compare.compare(old, new, args.alpha, args.threshold)
    table = Table(title=f"{args.old} -> {args.new} (ratio = new / old median; Mann-Whitney U p)")
    for col in ("op", "backend", "case", "dtype", "mode", "verdict", "ratio", "p", "old", "new"):
        table.add_column(col)
    for c in changes:
        lab = c.label
        table.add_row(lab["op"], lab["backend"], lab["case_id"], lab["dtype"], lab["mode"],
                      f"[{COLORS.get(c.verdict, 'cyan')}]{c.verdict}[/]" + (f" {c.note}" if c.note else ""),
                      num(c.ratio, ".3f"), num(c.p, ".2g"), duration(c.old_median_ns), duration(c.new_median_ns))
    console.print(table)
    slower = [c for c in changes if c.verdict == "slower"]
    return 1 if (args.fail_on_slower and slower) else 0
