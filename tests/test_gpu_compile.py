"""bench/gpu_compile: the occupancy arithmetic, ptxas -v parsing, and (in a child process
without the simulators, which replace the kernels with stand-ins) one tiny Triton kernel
and one tiny Numba CUDA kernel captured from their launches and compiled for sm_90, plus
a planted bad constexpr reported as a failure with the compiler's message. The full
compile of every kernel is `arsenal gpu-compile` in `make gpu-dry` (CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.gpu_compile.occupancy import CHIPS, occupancy
from bench.gpu_compile.ptxas import parse

REPO = Path(__file__).resolve().parent.parent


def test_occupancy_limits():
    h100, a100 = CHIPS["sm_90"], CHIPS["sm_80"]
    small = occupancy(h100, registers=32, threads=128, shared_bytes=0)
    assert (small.blocks_per_sm, small.limiter, small.problems) == (16, "threads", ())  # 64 warps / 4
    heavy = occupancy(h100, registers=255, threads=256, shared_bytes=0)
    assert (heavy.blocks_per_sm, heavy.limiter) == (1, "registers")  # 8192 registers a warp: 8 warps
    # 100 KB a block: two fit the H100's 228 KB, one the A100's 164 KB
    assert occupancy(h100, 32, 128, 100 * 1024).blocks_per_sm == 2
    assert occupancy(a100, 32, 128, 100 * 1024).blocks_per_sm == 1
    too_much = occupancy(a100, 32, 128, 200 * 1024)
    assert too_much.blocks_per_sm == 0 and "shared memory" in too_much.problems[0]
    assert occupancy(h100, 32, 2048, 0).problems  # more threads than a block may have
    assert occupancy(h100, 32, 128, 0, grid=(1, 70000)).problems  # grid y beyond 65535


def test_parse_ptxas_log():
    log = textwrap.dedent("""\
        ptxas info    : 0 bytes gmem
        ptxas info    : Compiling entry function 'kern_a' for 'sm_90a'
        ptxas info    : Function properties for kern_a
            16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
        ptxas info    : Used 255 registers, used 1 barriers, 4096 bytes smem, 380 bytes cmem[0]
        ptxas info    : Compiling entry function 'kern_b' for 'sm_90a'
        ptxas info    : Function properties for kern_b
            0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 18 registers, used 0 barriers, 380 bytes cmem[0]
        """)
    found = parse(log)
    a, b = found["kern_a"], found["kern_b"]
    assert (a.registers, a.spill_stores, a.spill_loads, a.stack_bytes, a.static_smem) == (255, 8, 12, 16, 4096)
    assert (b.registers, b.spill_stores, b.spill_loads, b.static_smem) == (18, 0, 0, 0)


CHILD = '''
import json, sys
import torch
import triton
import triton.language as tl
from numba import cuda

from backends.numba_cuda._common import launch
from bench.gpu_compile import numba_cuda, records, table
from bench.gpu_compile import triton as triton_aot
from bench.gpu_compile.occupancy import CHIPS

chip = CHIPS["sm_90"]


SCALE = 2.0  # a plain float: a @triton.jit function may not read it (only constexpr globals)


@triton.jit
def scale_by_global(x, y, n, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y + i, SCALE * tl.load(x + i, mask=i < n), mask=i < n)


@triton.jit
def scale(x, y, n, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y + i, 2.0 * tl.load(x + i, mask=i < n), mask=i < n)


@cuda.jit(device=True)
def twice(v):
    return v + v


@cuda.jit
def scale_cuda(x, y):  # through a device function: Numba compiles it asking for the device's capability
    i = cuda.grid(1)
    if i < x.shape[0]:
        y[i] = twice(x[i])


def compiled(module, launches):
    (one,) = launches
    key, spec = module.specialise(one, chip)
    c = module.compile_one(spec, chip)
    c.uses = ["test"]
    return records.record(c, ["parallel_scan"], "forward", ["float32"], "test", None)


x = torch.empty(1000, device="meta")
out = {}
for name, block in (("good", 128), ("planted", 96)):  # 96: tl.arange needs a power of 2
    with triton_aot.captured(chip) as launches:
        scale[(8,)](x, torch.empty_like(x), 1000, BLOCK=block)
    out[name] = compiled(triton_aot, launches)
with triton_aot.captured(chip) as launches:
    scale_by_global[(8,)](x, torch.empty_like(x), 1000, BLOCK=128)
out["global"] = compiled(triton_aot, launches)
with numba_cuda.captured(chip) as launches:
    launch(scale_cuda, 8, 128, x, torch.empty_like(x))
out["numba"] = compiled(numba_cuda, launches)
out["failures"] = table.failures(list(out.values()))
json.dump(out, sys.stdout)
'''


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    """Run CHILD (a file: Triton reads a kernel's source) without the simulators."""
    script = tmp_path_factory.mktemp("gpu_compile") / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "NUMBA_ENABLE_CUDASIM")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["ARSENAL_CACHE_DIR"] = str(script.parent / "cache")
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_triton_kernel_compiles_for_sm90(child):
    good = child["good"]
    assert good["status"] == "ok", good["error"]
    assert 0 < good["registers"] <= 255 and good["spill_stores"] == good["spill_loads"] == 0
    assert good["threads_per_block"] == 128 and good["blocks_per_sm"] >= 1
    assert "BLOCK=128" in good["specialization"] and good["gpu"] == "H100"


def test_planted_bad_constexpr_is_a_failure_with_the_compilers_message(child):
    bad = child["planted"]
    assert bad["status"] == "error" and bad.get("registers") is None
    assert "power of 2" in bad["error"]  # Triton's own words about tl.arange(0, 96)
    (line,) = [f for f in child["failures"] if "power of 2" in f]
    assert ".scale [" in line


def test_compile_error_of_a_nested_cause_is_reported_with_the_reason(child):
    """Triton's CompilationError names the statement; the reason is its cause (here the
    plain-float global that the interpreter accepts and the compiler refuses)."""
    bad = child["global"]
    assert bad["status"] == "error" and "Cannot access global variable SCALE" in bad["error"]
    assert len(child["failures"]) == 2


def test_numba_cuda_kernel_compiles_for_sm90(child):
    """Its device function compiles without a driver (the chip stands in for the device)."""
    rec = child["numba"]
    assert rec["status"] == "ok", rec["error"]
    assert 0 < rec["registers"] <= 255 and rec["threads_per_block"] == 128 and rec["spill_stores"] == 0


def _entry(module, stages, dtype, use):
    from types import SimpleNamespace

    spec = dict(constexprs={(3,): 128}, options=SimpleNamespace(num_warps=4, num_stages=stages),
                signature={"x": f"*{dtype}", "n": "i32", "BLOCK": "constexpr"},
                attrs={(0,): [["tt.divisibility", 16]]}, grid=(8,))
    key = ("m", "k", "sm_90", repr(spec["signature"]), repr(spec["constexprs"]), "", 4, stages, 1)
    return dict(key=key, spec=spec, module=module, uses=[use], ops=["parallel_scan"], dtypes=[dtype],
                direction="forward", chip=None, variants=[])


def test_covering_set_compiles_each_dtype_once_at_the_most_stages():
    from bench.gpu_compile import triton as triton_aot
    from bench.gpu_compile.run import cover

    entries = [_entry(triton_aot, 2, "fp32", "a"), _entry(triton_aot, 3, "fp32", "b"),
               _entry(triton_aot, 2, "bf16", "c")]
    by_dtype = {e["spec"]["signature"]["x"]: e for e in cover(entries)}
    assert sorted(by_dtype) == ["*bf16", "*fp32"]
    fp32 = by_dtype["*fp32"]
    assert fp32["spec"]["options"].num_stages == 3 and sorted(fp32["uses"]) == ["a", "b"]
    assert fp32["variants"] == ["num_stages=2, 1 aligned arguments"]
    assert by_dtype["*bf16"]["variants"] == []
