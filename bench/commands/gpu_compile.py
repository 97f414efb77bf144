"""``arsenal gpu-compile``: every Triton and Numba CUDA kernel compiled ahead of time for
sm_90 (H100) and sm_80 (A100), no GPU needed (``bench.gpu_compile``); prints the kernel
x chip table and appends kind="gpu_compile" records. Exit 1 when a kernel does not
compile, spills, or launches beyond a chip's limits. By default each kernel is compiled
once per chip at each constexpr and warp choice the suites and grids make, standing for
its variants in pointer dtype and pipeline stages (bench.gpu_compile.run.cover); --all
compiles every variant."""

from __future__ import annotations

import os

from bench.commands import _args

NAME = "gpu-compile"
HELP = "compile every triton and numba_cuda kernel for sm_90 and sm_80 (no GPU): registers, spills, occupancy"
TIMING = False


def add_arguments(sp) -> None:
    sp.add_argument("--op", help="comma-separated ops (default: every op)")
    sp.add_argument("--backend", help="comma-separated: triton, numba_cuda (default: both)")
    sp.add_argument("--chip", help="comma-separated: sm_90, sm_80 (default: both)")
    sp.add_argument("--suite", help="comma-separated op suites (default: every suite of suites/op_shapes.py)")
    sp.add_argument("--no-models", action="store_true", help="leave out the op calls of the model grids")
    sp.add_argument("--all", action="store_true",
                    help="every specialisation (each pointer dtype and pipeline-stage count too); default: each "
                         "kernel x chip once at each constexpr and warp choice, standing for the rest")
    sp.add_argument("--out", default="out/results.jsonl", help="results file (appended)")


def run(args, console) -> int:
    # the compilers need the real kernels: the simulators' stand-ins cannot be compiled
    # (nothing heavy is imported yet, so unsetting them here takes effect)
    for k in ("TRITON_INTERPRET", "NUMBA_ENABLE_CUDASIM"):
        if os.environ.pop(k, None) is not None:
            console.print(f"{k} unset: gpu-compile compiles the kernels, it does not simulate them",
                          markup=False, highlight=False)
    import backends
    from bench.gpu_compile.occupancy import CHIPS
    from bench.gpu_compile.run import GpuCompileConfig, compile_all
    from bench.gpu_compile.specs import GPU_BACKENDS
    from bench.gpu_compile.table import failures, table
    from suites.op_shapes import SUITES

    ops = _args.names(args.op, list(backends.OPS), "op")
    cfg = GpuCompileConfig(
        chips=tuple(_args.names(args.chip, list(CHIPS), "chip") or CHIPS),
        backends=tuple(_args.names(args.backend, list(GPU_BACKENDS), "backend") or GPU_BACKENDS),
        ops=None if ops is None else tuple(ops),
        suites=None if args.suite is None else tuple(_args.names(args.suite, list(SUITES), "suite")),
        models=not args.no_models, out=args.out, every=args.all)
    records = compile_all(cfg, progress=lambda msg: console.print(msg, markup=False, highlight=False, style="dim"))
    console.print(table(records))
    bad = failures(records)
    for line in bad:
        console.print(line, markup=False, highlight=False, style="bold red")
    console.print(f"{len(records)} kernel specialisations x chips compiled, {len(bad)} failed; records: {args.out}",
                  markup=False, highlight=False)
    return 1 if bad else 0
