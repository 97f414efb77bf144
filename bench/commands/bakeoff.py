"""``arsenal bakeoff``: the cells of a grid (suites/bakeoff.py) trained at one budget.

    arsenal bakeoff --grid lra --minutes 3            # every family x LRA task, 3 min each
    arsenal bakeoff --grid ladder --minutes 2 --seeds 2
    arsenal bakeoff --grid lm --minutes 3 --executor ray --address ray://head:10001
    arsenal bakeoff --grid smoke --steps 2 --out out/smoke.jsonl
    arsenal bakeoff --grid lm --tasks ptb_char --minutes 3 --executor ray --workers 2 --threads 1
    arsenal bakeoff --grid ladder --tasks selective_copy --models elman-rung0-free --redo

Cells whose final record --out already holds (same grid, seed and budget, status ok)
are skipped, so an interrupted grid goes on where it stopped (--redo: run them all).
Each cell trains under its fastest correct mix from the model profile's records in the
results files (--out, and --profile), or numba_cpu where the family's ops have it, or
--mix. Records (kind="train") are appended to --out as each cell finishes.
"""

from __future__ import annotations

import os

NAME = "bakeoff"
HELP = "train every cell of a grid (families x tasks) at one budget: LRA, LM, the Elman ladder"
TIMING = False


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(parser) -> None:
    from suites.bakeoff import GRIDS

    a = parser.add_argument
    a("--grid", required=True, choices=tuple(GRIDS), help="; ".join(f"{g.name}: {g.doc}" for g in GRIDS.values()))
    a("--minutes", type=float, help="training wall clock per cell from its first step, evaluation excluded")
    a("--steps", type=int, help="optimizer steps per cell (with --minutes: whichever ends first)")
    a("--tasks", type=_names, help="only these tasks of the grid, comma-separated (default: all)")
    a("--families", type=_names, help="only these families of the grid, comma-separated (default: all)")
    a("--models", type=_names, help="only these models of the grid (family-config, as the report names them: "
      "elman-rung0-free), comma-separated (default: all)")
    a("--seeds", type=int, default=1, help="seeds per cell, 0..N-1 (default 1)")
    a("--mix", help="one mix for every cell (default: the fastest correct profiled mix, else numba_cpu)")
    a("--profile", action="append", default=[], help="a results file with model-profile records (repeatable)")
    a("--executor", choices=("inline", "ray"), default="inline", help="inline: one after another; ray: Ray tasks")
    a("--address", help="a Ray cluster's address (default: a local Ray)")
    a("--workers", type=int, help="CPUs of a local Ray (default: all)")
    a("--threads", type=int, help="torch threads per cell (default: the grid's, else torch's)")
    a("--redo", action="store_true", help="run every cell, also those --out already holds finished")
    a("--device", default="cpu", help="cpu or cuda (default cpu)")
    a("--out", default="out/results.jsonl", help="results file, appended (default out/results.jsonl)")


def run(args, console) -> int:
    from rich.table import Table

    from bench.bakeoff import plan, run as run_grid
    from bench.bakeoff.summary import COLUMNS, row
    from bench.cli import UsageError

    from bench import results

    if args.address and args.executor != "ray":
        raise UsageError("--address needs --executor ray")
    # --out read once: its model records rank the mixes, its final train records say which cells are done
    done = results.read(args.out) if args.out and os.path.exists(args.out) else []
    try:
        specs = plan(args.grid, minutes=args.minutes, steps=args.steps, seeds=args.seeds, mix=args.mix,
                     profiles=args.profile, records=done, threads=args.threads, device=args.device, tasks=args.tasks,
                     families=args.families, models=args.models)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out and not args.redo:  # an interrupted grid goes on: cells finished in --out are kept
        from bench.bakeoff.plan import finished

        specs, kept = finished(specs, done)
        if kept:
            console.print(f"{len(kept)} cells already finished in {args.out} (--redo runs them again)",
                          markup=False, highlight=False)
        if not specs:
            return 0
    budget = specs[0]["train"]
    console.print(f"bakeoff {args.grid}: {len(specs)} cells, budget "
                  + (f"{budget['minutes']:g} min" if budget["minutes"] else f"{budget['steps']} steps")
                  + f", executor {args.executor}", markup=False, highlight=False)
    table = Table(*COLUMNS)
    done = [0]

    def on_cell(spec, records):
        done[0] += 1
        for r in records:
            if r.get("final"):
                table.add_row(*row(r))
                console.print(f"[{done[0]}/{len(specs)}] " + "  ".join(row(r)), markup=False, highlight=False)

    options = {"address": args.address, "workers": args.workers} if args.executor == "ray" else {}
    try:
        records = run_grid(specs, out=args.out, executor=args.executor, on_cell=on_cell, **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    console.print(table)
    failed = [r for r in records if r.get("final") and r.get("status") != "ok"]
    if args.out:
        console.print(f"records appended to {args.out}; arsenal report {args.out} draws the tables",
                      markup=False, highlight=False)
    return 1 if failed else 0
