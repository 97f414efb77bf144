"""HOW benchmarks run: the CLI (``arsenal``, ``python -m bench``), prepared closures,
interleaved timing, the correctness gate, roofline ceilings, results records,
comparisons and profiles. WHAT runs lives in suites/.

Importing this package imports nothing heavy: the CLI sets the runtime environment
(simulation switches) before torch, Triton or Numba is loaded.
"""
