"""Op benchmarking: which candidates exist (backends and peers), which (op, case, dtype,
mode) pairs a selection plans, the correctness gate, the prepared closures, the runner
that times them through bench/measure.py, the summary table, drift, overhead and profiles.

    candidates.py  the one table of candidates: registry backends and peers (peers.py)
    cases.py       case ids and the cases of a suite (suites/op_shapes.py)
    dtypes.py      dtype names
    plan.py        Selection -> the planned pairs (the CLI, regress, asv, pytest-benchmark)
    gate.py        the correctness gate of a pair before it is timed
    prepare.py     a pair's inputs and its timed closure
    pipeline.py    gate, then prepare: what every front end calls
    runner.py      a planned group timed interleaved; records appended
    summary.py     the console table
    drift.py       numerical drift against float64 as T grows
    overhead.py    the cost of the checked call
    profile.py     torch.profiler trace of one pair
"""
