"""GPU readiness without a GPU: every Triton and Numba CUDA kernel of every op, forward
and backward, compiled ahead of time for sm_90 (H100) and sm_80 (A100) at the
specialisations the suites and the model grids use, with what ptxas reports and the
occupancy it allows (``arsenal gpu-compile``, a step of ``make gpu-dry`` and of
``make gpu``).

    specs.py       which kernels at which specialisations: op suites' cases (and the
                   model grids' op calls, models.py) run through each backend's own
                   launcher on meta tensors, launches captured
    triton.py      capture Triton launches (every autotune config); compile with
                   triton.compile for a GPUTarget
    numba_cuda.py  capture Numba CUDA launches; numba.cuda.compile_ptx for the chip
    ptxas.py       ptxas -v: registers, spills, stack, static shared memory (cached)
    occupancy.py   the chips' limits; blocks per SM from registers, threads, shared memory
    records.py     kind="gpu_compile" records and the verdict (compile error, spill,
                   launch beyond a chip's limits)
    table.py       the console table and the failure lines
    run.py         GpuCompileConfig and compile_all: the whole pass
"""
