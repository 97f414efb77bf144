"""Shared plumbing of the numba_cpu kernels: zero-copy views between torch and NumPy (or
a tensor's address, read in a kernel as an array), code-generation hints for LLVM, scan
job layout, huge-page advice for fresh outputs."""

import ctypes
import sys

import numpy as np
import torch
from llvmlite import binding as llvm
from llvmlite import ir
import numba
from numba import njit, types
from numba.extending import intrinsic


def as_array(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU tensor (copied only if it is not contiguous)."""
    return t.detach().contiguous().numpy()


def optional_array(t, shape, dtype=np.float32) -> tuple[np.ndarray, bool]:
    """(array, present): a zero array of ``shape`` stands in for a None tensor."""
    if t is None:
        return np.zeros(shape, dtype=dtype), False
    return as_array(t), True


def dense(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` itself when contiguous (or None), else a contiguous copy: keep it alive while
    a kernel reads its address."""
    return t if t is None or t.is_contiguous() else t.contiguous()


def address(t: torch.Tensor | None) -> int:
    """``t.data_ptr()``, or 0 for an absent optional tensor (the kernel reads it as a
    zero-length array and never indexes it)."""
    return 0 if t is None else t.data_ptr()


@intrinsic
def wide_vectors(typingctx):
    """Call first in a Numba function whose loops should use 512-bit vectors: LLVM's
    default for AVX-512 CPUs is 256-bit (the ``prefer-vector-width`` tuning), which halves
    the throughput of compute-bound loops. No effect on CPUs without AVX-512."""

    def codegen(context, builder, sig, args):
        # llvmlite's attribute set accepts only its known names; this is a plain string
        # attribute of the enclosing function (as clang's -mprefer-vector-width=512 emits)
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def always_inline(typingctx):
    """Call first in a small Numba helper: LLVM then inlines it into every caller (its
    own threshold leaves large helpers as calls, and a call stops vectorisation)."""

    def codegen(context, builder, sig, args):
        builder.function.attributes.add("alwaysinline")
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def _float32_pointer(typingctx, address):
    """``(float *) address``: the integer a tensor's ``data_ptr()`` gives, as a pointer."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], ir.PointerType(ir.FloatType()))

    return types.CPointer(types.float32)(address), codegen


@njit(cache=True)
def floats_at(address, n):
    """The ``n`` float32 values at ``address`` (a contiguous float32 CPU tensor's
    ``data_ptr()``) as a 1-D array, no copy: how a streaming kernel takes its tensors.

    A kernel that takes NumPy views pays, between two kernels that stream megabytes, for
    each torch and NumPy call on the way in and out: the interpreter's and torch's code
    and data are out of the core's caches then, and a ``.numpy()`` costs 36 us there
    against 1.3 us a second time (scripts/scan_vs_add.py; 2-core development CPU). An
    address is one ``data_ptr()`` call and no NumPy array at all. The caller keeps the
    tensor alive during the call and has checked its dtype, device and contiguity."""
    always_inline()
    return numba.carray(_float32_pointer(address), n)


@intrinsic
def nonneg(typingctx, i):
    """``i`` unchanged, with LLVM told that it is >= 0. Numba wraps negative array indices
    with a select, which leaves LLVM two candidate addresses per access and stops it from
    vectorising; an index known to be non-negative drops the select."""
    if not isinstance(i, types.Integer) or not i.signed:
        return None

    def codegen(context, builder, sig, args):
        builder.assume(builder.icmp_signed(">=", args[0], args[0].type(0)))
        return args[0]

    return i(i), codegen


def relax_alias_check_limits() -> None:
    """Let LLVM's loop vectoriser guard a loop with more runtime alias checks.

    Numba cannot mark arrays as non-aliasing, so a loop that reads ~100 parameter vectors
    and updates ~80 gradient accumulators needs runtime checks that its pointers do not
    overlap; past LLVM's default limits (8 checks, 100 comparisons when merging them) the
    vectoriser gives up and the loop runs scalar. The checks are still made, so this only
    changes which loops vectorise. The options are process-wide LLVM settings; they take
    effect for code compiled after the call (cached code is unaffected by them)."""
    llvm.set_option("", "-runtime-memory-check-threshold=64")
    llvm.set_option("", "-memory-check-merge-threshold=100000")


relax_alias_check_limits()  # before any kernel of this backend compiles


@njit  # not cacheable: Numba's thread count is read through a ctypes pointer
def num_threads() -> int:
    """``numba.get_num_threads()`` for Python callers of this backend's kernels. Called
    from Python, Numba's own function takes the threading layer's process lock on every
    call: about 10 us between two parallel kernels on the 2-core development CPU (a
    parallel_scan forward, B=4, T=1024, D=256: 279 against 290 us a call), where this
    compiled call reads the same thread-local count (0.04 us alone). Its price is one compile a
    process, 0.5 s there, at the first op call that needs it."""
    return numba.get_num_threads()


@njit(cache=True)
def scan_job(job, chunk, D):
    """(b, d0, width) of job ``job`` of a scan whose rows of D lanes are cut into chunks."""
    per_row = (D + chunk - 1) // chunk
    d0 = (job % per_row) * chunk
    return job // per_row, d0, min(chunk, D - d0)


def empty_like(t: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(t)``, contiguous whatever t's strides: the kernels write their
    results as flat C-order arrays, and ``empty_like`` of a transposed (dense) input keeps
    its strides, so a gradient written flat would come back transposed, or a contiguous
    copy of it be written and it left unwritten. (Looked up at call time, so the
    correctness check's NaN-filled allocator applies.)"""
    return torch.empty_like(t, memory_format=torch.contiguous_format)


def scan_gradients(a: torch.Tensor):
    """The gradient tensors of a scan over a [B, T, D]: da, db of a's shape, contiguous
    whatever a's strides (the kernels write them as flat arrays), and a zero dh0 [B, D]."""
    da = prefer_huge_pages(empty_like(a))
    db = prefer_huge_pages(empty_like(a))
    return da, db, torch.zeros((a.shape[0], a.shape[2]), dtype=a.dtype)


def scan_chunk(B: int, D: int) -> int:
    """Lanes per job for a scan over [B, T, D] (jobs = B x ceil(D / chunk)): whole rows
    when B alone gives each thread two jobs, else D cut into pieces of whole 64-byte
    vectors, at least 64 lanes so each step of a job still streams 256 bytes."""
    pieces = max(1, -(-2 * num_threads() // max(B, 1)))
    chunk = -(-D // pieces)
    return min(D, max(64, -(-chunk // 16) * 16))


_MADV_HUGEPAGE = 14  # Linux <sys/mman.h>
_HUGE_PAGE = 2 << 20
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
if _libc is not None:
    _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def prefer_huge_pages(t: torch.Tensor) -> torch.Tensor:
    """Advise Linux to back a fresh CPU tensor with 2 MB pages before a kernel first writes
    it; returns t. A fresh 64 MB output otherwise costs 16k page faults on first write,
    which on the project machine took longer than the kernel's own traffic (allocate and
    fill 64 MB: 45 ms; with this advice 20 ms; into memory already mapped 14 ms). Only
    advice: a no-op off Linux, where transparent huge pages are off, and below 16 MB (8
    huge pages), where a tensor holds few aligned huge pages and the system call costs
    about what it saves (parallel_scan's 4 MB output, B=4, T=1024, D=256: 337 us a call
    without it, 351 us with it, on the 2-core development CPU)."""
    nbytes = t.nbytes
    if _libc is None or nbytes < 8 * _HUGE_PAGE:
        return t
    start = -(-t.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
    end = (t.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if end > start:
        _libc.madvise(start, end - start, _MADV_HUGEPAGE)
    return t
