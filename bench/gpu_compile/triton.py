"""The Triton kernels, compiled ahead of time for a chip without one.

Launches are captured, not run: while ``captured(chip)`` is active, ``kernel[grid](...)``
of every ``@triton.jit`` kernel (and of every ``@triton.autotune`` wrapper: each of its
configs, since the autotuner may pick any on the GPU) is recorded with its arguments.
Each launch is then specialised exactly as Triton's runtime would specialise it (its
own binder: pointer dtypes, 16-byte alignment, integers equal to 1 or divisible by 16,
constexprs) and compiled by ``triton.compile`` for a ``GPUTarget("cuda", 90 | 80, 32)``:
TTIR, TTGIR, LLVM IR, PTX and a cubin through the ptxas of the triton wheel; no GPU,
no driver. Triton caches the compiled kernels (~/.triton/cache) by source and options.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass

from bench.gpu_compile.kernel import Compiled
from bench.gpu_compile.occupancy import Chip
from bench.gpu_compile import ptxas


@dataclass
class Launch:
    fn: object  # the JITFunction
    args: tuple
    kwargs: dict  # with the autotune config's block sizes and num_warps / num_stages
    grid: object  # a tuple, or a function of the bound arguments


@contextlib.contextmanager
def captured(chip: Chip):
    """Record the Triton launches of the code run inside (the launchers choose as on
    ``chip``: its SM count); yields the list of Launch."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    from backends.triton._common import assume_sm_count

    launches: list[Launch] = []

    def jit_run(self, *args, grid, warmup, **kwargs):
        launches.append(Launch(self, args, kwargs, grid))

    def autotune_run(self, *args, **kwargs):
        grid = kwargs.pop("grid")
        kwargs.pop("warmup", None)
        for config in self.configs:
            launches.append(Launch(self.fn, args, {**kwargs, **config.all_kwargs()}, grid))
        self.best_config = self.configs[0]  # launchers that read back the choice get one

    saved = JITFunction.run, Autotuner.run
    JITFunction.run, Autotuner.run = jit_run, autotune_run
    try:
        with assume_sm_count(chip.sms):
            yield launches
    finally:
        JITFunction.run, Autotuner.run = saved


def _target(chip: Chip):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend

    target = GPUTarget("cuda", chip.capability, 32)
    return target, make_backend(target)


def specialise(launch: Launch, chip: Chip) -> tuple[tuple, dict]:
    """(the key that tells two launches compile to the same kernel, what compile() takes)."""
    from triton.runtime.jit import create_function_from_signature

    fn = launch.fn
    target, backend = _target(chip)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, spec, opts = binder(*launch.args, **launch.kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, launch.kwargs, bound, spec, opts)
    grid = launch.grid(bound) if callable(launch.grid) else launch.grid
    grid = tuple(int(g) for g in grid)
    key = (fn.__module__, fn.__name__, chip.name, repr(sorted(signature.items())), repr(sorted(constexprs.items())),
           repr(sorted(attrs.items())), options.num_warps, options.num_stages, options.num_ctas)
    return key, dict(fn=fn, target=target, signature=signature, constexprs=constexprs, attrs=attrs,
                     options=options, grid=grid)


def cover_key(key: tuple, spec: dict) -> tuple:
    """What the covering compile (run.py) compiles once: the kernel on the chip at its
    constexprs, warp count and argument types (pointer dtypes). The variants it stands
    for differ only in the pipeline stages of an autotune config and in which integer
    and pointer arguments are 16-byte aligned (Triton's ``tt.divisibility``)."""
    return (*key[:3], repr(sorted(spec["constexprs"].items())), spec["options"].num_warps,
            repr(sorted(spec["signature"].items())))


def _aligned(spec: dict) -> int:
    return sum(1 for values in spec["attrs"].values() for name, _ in values if name == "tt.divisibility")


def preference(spec: dict) -> tuple:
    """The variant a covering compile picks: the most pipeline stages (the most shared
    memory and live registers a software-pipelined loop takes), then the most aligned
    arguments (vectorised loads, the usual case on a GPU), then the largest grid."""
    return spec["options"].num_stages, _aligned(spec), spec["grid"]


def variant(spec: dict) -> str:
    """"num_stages=2, 9 aligned arguments": how a variant of a covering group differs."""
    return f"num_stages={spec['options'].num_stages}, {_aligned(spec)} aligned arguments"


def describe(spec: dict) -> str:
    """"BLOCK_T=64 BLOCK_D=32 HAS_H0=True num_warps=4 num_stages=2 a:*fp32 ..." (the
    constexprs by name, then the launch options, then the pointer types)."""
    names = [p.name for p in spec["fn"].params]
    consts = [f"{names[path[0]]}={value}" for path, value in sorted(spec["constexprs"].items())
              if value is not None and len(path) == 1]
    options = spec["options"]
    pointers = sorted({t for t in spec["signature"].values() if t.startswith("*")})
    return " ".join(consts + [f"num_warps={options.num_warps}", f"num_stages={options.num_stages}"] + pointers)


def message(exc: BaseException) -> str:
    """The exception and its causes: Triton's CompilationError names the outermost call
    of a nested @triton.jit function; the reason (a type or shape error inside it) is
    in the chain of causes."""
    parts = []
    while exc is not None and len(parts) < 8:
        parts.append(f"{type(exc).__name__}: {exc}".strip())
        exc = exc.__cause__ or exc.__context__
    return "\ncaused by ".join(parts)


def compile_one(spec: dict, chip: Chip) -> Compiled:
    """triton.compile for the chip, then ptxas -v on its PTX (as Triton runs it)."""
    import triton
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability
    from triton.compiler import ASTSource

    fn, options = spec["fn"], spec["options"]
    out = Compiled(backend="triton", kernel=fn.__name__, module=fn.__module__, chip=chip.name,
                   specialization=describe(spec), threads=32 * options.num_warps * options.num_ctas, dynamic_smem=0,
                   grid=spec["grid"])
    start = time.perf_counter()
    noise = io.StringIO()  # a failing ptxas makes Triton print the whole PTX: the message is in the exception
    try:
        with contextlib.redirect_stdout(noise):
            kernel = triton.compile(ASTSource(fn, spec["signature"], spec["constexprs"], spec["attrs"]),
                                    target=spec["target"], options=options.__dict__)
        out.dynamic_smem = kernel.metadata.shared
        flags = ("-lineinfo", "--regAllocOptLevel=2") + (() if options.enable_fp_fusion else ("--fmad=false",))
        found = ptxas.assemble(kernel.asm["ptx"], sm_arch_from_capability(chip.capability),
                               get_ptxas(chip.capability).path, flags)
        out.resources = found[kernel.metadata.name]
    except Exception as exc:  # a compile error is a finding: recorded with the compiler's message
        out.error = message(exc)
    out.seconds = time.perf_counter() - start
    return out
