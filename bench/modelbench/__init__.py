"""Model profiling (DESIGN.md 9): every family under every backend mix.

    bench.py        a grid group: gate, prepare, time interleaved, profile, records
    gate.py         a mix against the all-torch build of the same weights
    peers.py        the whole-model peers (torch_compile)
    profile.py      peak memory and each op's share of a step
    metrics.py      the registered model metrics (one function per metric)
    fits.py         slopes, break-even lengths, swap mixes and the best mix
    summary.py      the console tables
    equivalence.py  the same seed trained under a mix and under all-torch
"""
