"""Records ``kind="gpu_compile"``, one per kernel x specialisation x chip, in the results
format (bench/results.py declares the kind), and the verdict on each.

Fields, besides ``kind, schema, run_id, time, device, status, error, env``:
    op                  the first op whose launcher launches the kernel; ops: all of them
    backend, kernel,    "triton" | "numba_cuda"; the kernel function; its module
    module
    direction           "forward" | "backward" (the first use's)
    dtypes              the input dtypes of the calls that launch it
    chip, gpu           "sm_90" (H100) | "sm_80" (A100)
    specialization      what the launcher fixed (constexprs, num_warps, argument types)
    uses                every "op direction dtype source case" that launches it
    registers           per thread; spill_stores, spill_loads, stack_bytes: bytes (ptxas -v)
    static_smem_bytes   shared memory the kernel declares; dynamic_smem_bytes: set at launch
    threads_per_block, grid (the largest the uses launch)
    blocks_per_sm, warps_per_sm, occupancy (resident warps / 64), limiter
    launch_problems     every chip limit the launch exceeds (empty: it can launch)
    spill_accepted      why a spill is accepted (the op contract's ACCEPTED_SPILLS), or None
    compile_seconds     compile and assemble (0 when both were cached)
status is "ok", or "error" with ``error`` saying why: the compiler's message, the
limits a launch exceeds, or the spill.
"""

from __future__ import annotations

from bench.gpu_compile.kernel import Compiled
from bench.gpu_compile.occupancy import CHIPS, occupancy

KIND = "gpu_compile"


def accepted_spill(op: str, backend: str, kernel: str) -> str | None:
    """Why the op's contract accepts a spill of this kernel (``ACCEPTED_SPILLS`` in
    backends/ops/<op>.py: {"backend/kernel": reason}), or None."""
    import importlib

    contract = importlib.import_module(f"backends.ops.{op}")
    return getattr(contract, "ACCEPTED_SPILLS", {}).get(f"{backend}/{kernel}")


def record(c: Compiled, ops: list[str], direction: str, dtypes: list[str], run_id: str, fingerprint: dict) -> dict:
    import bench.results as results

    chip = CHIPS[c.chip]
    fields = dict(device="cpu", op=ops[0], ops=ops, backend=c.backend, kernel=c.kernel, module=c.module,
                  direction=direction, dtypes=dtypes, chip=c.chip, gpu=chip.gpu, specialization=c.specialization,
                  uses=c.uses, threads_per_block=c.threads, dynamic_smem_bytes=c.dynamic_smem, grid=list(c.grid),
                  compile_seconds=round(c.seconds, 3))
    if c.error is not None:
        return results.new_record(KIND, run_id=run_id, env=fingerprint, status="error", error=c.error, **fields)
    r = c.resources
    occ = occupancy(chip, r.registers, c.threads, r.static_smem + c.dynamic_smem, c.grid)
    spill = r.spill_stores + r.spill_loads
    accepted = accepted_spill(ops[0], c.backend, c.kernel) if spill else None
    fields.update(registers=r.registers, spill_stores=r.spill_stores, spill_loads=r.spill_loads,
               stack_bytes=r.stack_bytes, static_smem_bytes=r.static_smem, blocks_per_sm=occ.blocks_per_sm,
               warps_per_sm=occ.warps_per_sm, occupancy=round(occ.occupancy, 4), limiter=occ.limiter,
               launch_problems=list(occ.problems), spill_accepted=accepted)
    problems = list(occ.problems)
    if spill and accepted is None:
        problems.append(f"spills registers to local memory ({r.spill_stores} bytes stored, {r.spill_loads} bytes "
                        f"loaded): change the kernel or its launcher's block sizes, or accept it in "
                        f"backends/ops/{ops[0]}.py ACCEPTED_SPILLS with the reason")
    return results.new_record(KIND, run_id=run_id, env=fingerprint, status="error" if problems else "ok",
                              error="; ".join(problems) if problems else None, **fields)
