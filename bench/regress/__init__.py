"""Regression check for CI: this checkout's kernels against a git revision's (its parent).

    arsenal regress [--base HEAD~1] [--op] [--backend] [--mode] [--dtype] [--suite stable]
                    [--threads] [--out rows.json] [--factor 1.5] [--alpha 0.01] [--rounds 6] [--reps 9]
    python -m bench.regress --base HEAD~1        (the same command; CI's make bench-ci)

Rule (verdict.py): a pair (op, case, mode, backend) FAILS when
- its median time (all rounds pooled) is more than ``FACTOR`` = 1.5 times the base's,
- the Mann-Whitney U test on the pooled raw samples gives p < ``ALPHA`` = 0.01,
- the slowdown shows in every round (each round's head median above the base median of
  the same round): samples of one round are not independent, and a burst of other load
  that slows one side for a moment would otherwise look significant,
- and all of that holds again when the pair is measured a second time, by new worker
  processes (``confirm``): a pair fails only if two separate measurements say so.
A slowdown below 1.5x, or one the samples cannot tell from noise, does not fail the
build (it is printed). The factor is wide on purpose: CI machines are shared and small
(2 cores), and a kernel that loses a third of its speed is caught by the benchmark
reports, not by a gate that must never cry wolf.

Method (asv's ``continuous`` would rebuild and reinstall the project at both commits,
too slow and fragile for CI's budget, so the comparison uses the harness's own timing):
- worktree.py: the base commit is checked out into a temporary ``git worktree``; the
  head is this checkout as it is (uncommitted edits included; CI's checkout is clean).
  Each side runs in a directory whose ``backends`` package is that side's while the
  harness (``bench``, ``suites``) is this checkout's, so both sides are measured by the
  same code and only the kernels differ;
- worker.py: each side is served by one long-lived worker process (``python -m
  bench.regress.worker``) speaking JSON lines over its pipes: prepare a pair, time a
  turn; sides.py is the client and the turn-taking: pair by pair, both workers prepare
  the pair, take one untimed turn each, then take turns timing it, ``--reps`` calls a
  turn, head first in even rounds and base first in odd ones, for ``--rounds`` rounds:
  the two sides of a ratio are measured milliseconds apart, so drift of the machine
  (other load, heat) falls on both alike. A worker that is not timing waits on its pipe;
  each turn starts with the harness's settle sleep (``TimingConfig.settle_s``, longer
  than OpenMP's spin after a region, see bench/timing.py), so the other side's threads
  are asleep, then one untimed call;
- check.py: the pairs come from the one planner (``bench.ops.plan``): the "stable" suite x
  the backends available on this machine (peers excluded: they are not this project's
  code) x forward and forward_backward. A pair the base cannot run (new op, new backend,
  a base that predates the harness: its worker fails to start or to prepare) is
  reported as new and not compared. A load average above the number of cores during
  the check is reported as a warning: on a 2-core machine shared with other work no
  comparison means much;
- report.py: the table printed at the end.
"""
