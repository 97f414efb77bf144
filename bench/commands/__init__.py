"""Subcommands of ``arsenal`` that live in their own modules.

Each module here defines:

    NAME = "data"                      # the subcommand
    HELP = "one line for arsenal --help"
    TIMING = False                     # True: the command times things (simulators are turned off)
    def add_arguments(parser): ...     # argparse options (import nothing heavy at module level)
    def run(args, console) -> int: ... # the exit code (0 ok, 1 failure, 2 bad usage via UsageError)

and is listed in MODULES; bench/cli.py builds the parser and dispatches from this list.
"""

from __future__ import annotations

import importlib

# Order is the order of `arsenal --help`.
MODULES: tuple[str, ...] = ("list", "check", "ops", "compare", "profile", "roofline", "run", "regress", "models", "report", "data", "train",
                             "generate", "overhead", "drift", "gpu_compile", "bakeoff")


def load():
    """The command modules, imported (they import nothing heavy at module level)."""
    return [importlib.import_module(f"bench.commands.{m}") for m in MODULES]
