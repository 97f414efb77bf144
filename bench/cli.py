"""The ``arsenal`` command (also ``python -m bench``): parser plumbing, environment set-up
and dispatch. Every subcommand is a module of bench/commands/ (its protocol is in
bench/commands/__init__.py):

    arsenal list                         op x backend coverage, with every reason
    arsenal check [--op] [--backend] [--dtype] [--peers] [--simulate]
    arsenal ops [--suite quick|full|stable] [--op] [--backend] [--peers] [--mode] [--dtype]
                [--case B=4,T=256,D=64] [--out out/results.jsonl]
    arsenal compare OLD.jsonl NEW.jsonl
    arsenal profile --op OP --backend NAME [--case ...]
    arsenal roofline [--refresh]
    arsenal run                          check, then the quick suite with peers, then the report
    arsenal regress [--base HEAD~1]      this checkout's kernels against a git revision's

Lists are comma-separated. Exit codes: 0 success, 1 a failed check of one of this
project's backends (or, with ``compare --fail-on-slower``, a slower result; with ``check
--peers``, a failed peer; for ``regress``, a confirmed regression), 2 bad usage. In
``ops`` and ``run`` a peer that fails the correctness gate is recorded "incorrect" and
reported, not timed, and the exit code stays 0.

Environment: torch, Triton and Numba read their settings at import, so ``main`` sets
them before importing anything heavy: ``--simulate`` (list, check) turns on Triton's
interpreter and Numba's CUDA simulator so the GPU backends are checked on the CPU; the
timing commands (``TIMING = True`` in their module) turn them off (an interpreter's
timings mean nothing). OpenMP keeps its default wait policy (bench/timing.py explains
why and how its spinning is handled).
"""

from __future__ import annotations

import argparse
import os
import sys

SIMULATION = {"TRITON_INTERPRET": "1", "NUMBA_ENABLE_CUDASIM": "1"}


class UsageError(ValueError):
    """Bad names or values on the command line (exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    from bench import commands

    p = argparse.ArgumentParser(prog="arsenal", description="Arsenal: kernels of fast recurrent sequence models, "
                                "checked against float64 references and timed against the machine's roofline.")
    sub = p.add_subparsers(dest="command", required=True)
    for mod in commands.load():
        mod.add_arguments(sub.add_parser(mod.NAME, help=mod.HELP))
    return p


def _module(command: str):
    from bench import commands

    return next(mod for mod in commands.load() if mod.NAME == command)


def configure_environment(args, notes: list[str]) -> None:
    """Set before torch, Triton or Numba is imported (nothing can change afterwards)."""
    if "torch" in sys.modules:  # imported already (in-process use, tests): nothing can change now
        return
    if getattr(args, "simulate", False):
        os.environ.update(SIMULATION)
    elif getattr(_module(args.command), "TIMING", False):
        for k in SIMULATION:
            if os.environ.pop(k, None) is not None:
                notes.append(f"{k} unset: simulated backends are not timed")


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False)


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage and the problem
        return int(exc.code or 0)
    notes: list[str] = []
    configure_environment(args, notes)
    if hasattr(args, "device") and args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    console = _console()
    for note in notes:
        console.print(note, markup=False, highlight=False)
    try:
        return _module(args.command).run(args, console)
    except UsageError as exc:
        print(f"arsenal {args.command}: {exc}", file=sys.stderr)
        return 2
