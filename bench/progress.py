"""Progress that reaches a log: one plain line per finished step when the console is not a
terminal (rich's live bar prints nothing to a file or a pipe until it ends)."""

from __future__ import annotations

import time


class ProgressLines:
    """A plain progress line per finished step when the console is not a terminal (a log
    file, a pipe, CI), where rich's live bar prints nothing until it ends:
    ``<what> <i>/<n>: <label> (<elapsed> s)``. On a terminal the bar shows it and this is silent."""

    def __init__(self, console, what: str, total: int):
        self.console, self.what, self.total, self.done = console, what, total, 0
        self.clock = time.monotonic
        self.t0 = self.clock()
        self.on = not console.is_terminal

    def step(self, label: str) -> None:
        self.done += 1
        if self.on:
            self.console.print(f"{self.what} {self.done}/{self.total}: {label} ({self.clock() - self.t0:.0f} s)",
                               markup=False, highlight=False)
