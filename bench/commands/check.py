"""``arsenal check``: the correctness gate (``backends.check.check_pair`` over each op's
test cases) for every selected (op, candidate, dtype); exit 1 when one fails."""

from __future__ import annotations

from bench.commands import _args

NAME = "check"
HELP = "the correctness gate for every available pair"
TIMING = False


def add_arguments(sp) -> None:
    _args.add_selection(sp)
    sp.add_argument("--simulate", action="store_true",
                    help="run Triton in its interpreter and Numba CUDA in its simulator (CPU)")


def run(args, console) -> int:
    from bench.ops.check import check

    return check(_args.selection(args), console)[0]
