"""The Numba CUDA kernels, compiled ahead of time for a chip without one.

Launches are captured from the launchers themselves (``recorded_launches`` in
backends/numba_cuda/_common.py: every kernel goes through its ``launch``), with their
grid, threads per block, dynamic shared memory and arguments. The arguments are typed
as Numba types them at a real launch (a contiguous CUDA tensor is a C-contiguous array
of its dtype and rank; a Python bool, int, float or NumPy scalar is typed by
``numba.typeof``), then ``numba.cuda.compile_ptx`` (NVVM, no GPU needed) produces the
PTX for the chip's compute capability, which ptxas assembles with ``-v``.

A kernel that calls a ``@cuda.jit(device=True)`` function makes Numba compile that
function while typing the call, and there Numba asks the driver for the current device's
compute capability (``CUDADispatcher.compile_device``: ``get_current_device()``), which
fails without a driver ("CUDA driver library cannot be found"). ``chip_as_current_device``
answers that question with the chip being compiled for, so no driver is touched. A device
function is compiled once per argument types and cached on its dispatcher, so a process
that compiles for sm_90 and then sm_80 reuses the first one's typed and lowered function;
its capability only picks among intrinsics at sm_60 and sm_53 (atomics on doubles, half
precision), which both chips exceed, and the NVVM IR is linked into the kernel whose PTX
is generated for the chip asked for, so the result is the same.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from bench.gpu_compile import ptxas
from bench.gpu_compile.kernel import Compiled
from bench.gpu_compile.occupancy import Chip


@dataclass
class Launch:
    kernel: object  # the numba CUDA dispatcher
    grid: tuple[int, ...]
    block: tuple[int, ...]
    args: tuple
    shared_bytes: int


def _dims(x) -> tuple[int, ...]:
    return tuple(int(v) for v in x) if isinstance(x, (tuple, list)) else (int(x),)


@contextlib.contextmanager
def captured(chip: Chip):
    """Record the Numba CUDA launches of the code run inside; yields the list of Launch.
    (No launcher here reads the SM count, so ``chip`` does not change their choice.)"""
    from backends.numba_cuda._common import recorded_launches

    launches: list[Launch] = []
    with recorded_launches() as raw:
        try:
            yield launches
        finally:
            launches.extend(Launch(k, _dims(g), _dims(b), a, int(s)) for k, g, b, a, s in raw)


def _numba_type(value):
    import numba
    import torch

    if isinstance(value, torch.Tensor):
        dtype = numba.from_dtype(torch.empty((), dtype=value.dtype).numpy().dtype)
        return numba.types.Array(dtype, value.dim(), "C")
    return numba.typeof(value)


def specialise(launch: Launch, chip: Chip) -> tuple[tuple, dict]:
    """(the key that tells two launches compile to the same kernel, what compile_one takes)."""
    types = tuple(_numba_type(a) for a in launch.args)
    fn = launch.kernel.py_func
    threads = 1
    for b in launch.block:
        threads *= b
    key = (fn.__module__, fn.__name__, chip.name, repr(types), threads, launch.shared_bytes)
    return key, dict(kernel=launch.kernel, types=types, threads=threads, shared=launch.shared_bytes,
                     grid=launch.grid)


def cover_key(key: tuple, spec: dict) -> tuple:
    """Numba specialises on the argument types (dtypes and ranks) and the block: each is
    its own kernel, so the covering compile (run.py) compiles every one."""
    return key


def preference(spec: dict) -> tuple:
    return ()


def variant(spec: dict) -> str:
    return describe(spec)


def describe(spec: dict) -> str:
    """"(array(float32, 3d, C), ..., bool)" plus the block size: what Numba specialises on."""
    return f"block={spec['threads']} ({', '.join(str(t) for t in spec['types'])})"


@dataclass(frozen=True)
class _CompileTarget:
    """What Numba reads of a device when it compiles for it: its compute capability."""
    compute_capability: tuple[int, int]


@contextlib.contextmanager
def chip_as_current_device(kernel, chip: Chip):
    """Inside, the module of ``kernel``'s dispatcher class (numba.cuda.dispatcher, or
    numba-cuda's when that package is installed) sees ``chip`` as the current device; it
    reads nothing else of it (the compute capability for the device functions it compiles)."""
    import sys

    module = sys.modules[type(kernel).__module__]
    if not hasattr(module, "get_current_device"):
        raise TypeError(f"gpu-compile numba_cuda: {module.__name__} has no get_current_device to stand a "
                        f"chip in for; this Numba CUDA target ({module.__file__}) is not one this supports")
    original = module.get_current_device
    target = _CompileTarget(divmod(chip.capability, 10))
    module.get_current_device = lambda: target
    try:
        yield
    finally:
        module.get_current_device = original


def compile_one(spec: dict, chip: Chip) -> Compiled:
    """compile_ptx for the chip's compute capability, then ptxas -v on the PTX."""
    from numba import cuda

    kernel = spec["kernel"]
    fn = kernel.py_func
    out = Compiled(backend="numba_cuda", kernel=fn.__name__, module=fn.__module__, chip=chip.name,
                   specialization=describe(spec), threads=spec["threads"], dynamic_smem=spec["shared"],
                   grid=spec["grid"])
    start = time.perf_counter()
    try:
        options = {k: v for k, v in kernel.targetoptions.items() if k in ("fastmath", "lineinfo", "debug", "opt")}
        with chip_as_current_device(kernel, chip):
            ptx, _ = cuda.compile_ptx(fn, spec["types"], cc=divmod(chip.capability, 10), **options)
        found = ptxas.assemble(ptx, chip.name, ptxas.newest())
        if len(found) != 1:
            raise ptxas.PtxasError(f"expected one entry function in the PTX of {fn.__name__}, found {sorted(found)}")
        out.resources = next(iter(found.values()))
    except Exception as exc:  # a compile error is a finding: recorded with the compiler's message
        out.error = f"{type(exc).__name__}: {exc}".strip()
    out.seconds = time.perf_counter() - start
    return out
