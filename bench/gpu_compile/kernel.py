"""One compiled kernel: what the two compilers' modules (triton.py, numba_cuda.py) hand
back for a kernel at one specialisation on one chip, before it becomes a record."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.gpu_compile.ptxas import Resources


@dataclass
class Compiled:
    backend: str  # "triton" | "numba_cuda"
    kernel: str  # the Python function's name ("_forward_chunked")
    module: str  # where it lives ("backends.triton.parallel_scan")
    chip: str  # "sm_90"
    specialization: str  # what the launcher fixed: constexprs, num_warps, argument types
    threads: int  # per block
    dynamic_smem: int  # bytes, set at launch
    grid: tuple[int, ...]  # the largest grid the cases launch
    uses: list[str] = field(default_factory=list)  # "op direction dtype case" labels that launch it
    resources: Resources | None = None  # None when it did not compile
    error: str | None = None  # the compiler's message
    seconds: float = 0.0  # compile and assemble time (0 when cached)
