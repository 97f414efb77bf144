"""``arsenal regress``: this checkout's kernels against a git revision's (bench/regress/).
Also ``python -m bench.regress`` (CI's make bench-ci). Exit 1 when a pair's slowdown
is confirmed (or the head cannot run a pair)."""

from __future__ import annotations

import sys

from bench.commands import _args

NAME = "regress"
HELP = "regression check: this checkout's kernels against a git revision's (CI)"
TIMING = True


def add_arguments(sp) -> None:
    from bench.regress.sides import REPS, ROUNDS
    from bench.regress.verdict import ALPHA, FACTOR
    from suites.op_shapes import DEFAULT_MODES

    _args.add_selection(sp, modes=True, suite=True, threads=True)
    sp.set_defaults(suite="stable", mode=",".join(DEFAULT_MODES))
    sp.add_argument("--base", default="HEAD~1", help="git revision to compare against (default HEAD~1)")
    sp.add_argument("--out", help="write the rows as JSON here")
    sp.add_argument("--factor", type=float, default=FACTOR, help=f"fail past this slowdown (default {FACTOR})")
    sp.add_argument("--alpha", type=float, default=ALPHA, help=f"significance level (default {ALPHA})")
    sp.add_argument("--rounds", type=int, default=ROUNDS,
                    help=f"alternating turns per side and pair (default {ROUNDS})")
    sp.add_argument("--reps", type=int, default=REPS, help=f"timed calls per turn (default {REPS})")


def run(args, console) -> int:
    import json
    from pathlib import Path

    from bench.cli import UsageError
    from bench.regress import check, report, worktree

    if args.rounds < 2 or args.reps < 1:
        raise UsageError(f"--rounds must be >= 2 and --reps >= 1, got {args.rounds} and {args.reps}")
    sel = _args.selection(args)
    if worktree.resolve(args.base) is None:
        print(f"regression check: no revision {args.base} (first commit or shallow clone): nothing to compare")
        return 0
    cfg = check.RegressConfig(base=args.base, factor=args.factor, alpha=args.alpha, rounds=args.rounds,
                              reps=args.reps, threads=args.threads)
    rows = check.run_check(cfg, check.pairs(sel), log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(report.report(rows, args.factor, args.alpha, args.base), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 1 if any(r.fails for r in rows) else 0
