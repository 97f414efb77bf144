"""The chips the ahead-of-time compile targets and the blocks per SM a kernel's
resources allow on each (the arithmetic of NVIDIA's occupancy calculator).

Limits per SM from the CUDA C++ Programming Guide's table of compute capabilities (8.0
and 9.0): 65,536 32-bit registers, at most 255 per thread, allocated per warp in units
of 256; at most 64 resident warps (2,048 threads) and 32 resident blocks; 1,024 threads
per block. Shared memory: 164 KB per SM on the A100 (163 KB per block with the opt-in),
228 KB on the H100 (227 KB per block); every block also reserves 1 KB for the system,
and shared memory is allocated in units of 128 bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Chip:
    name: str  # "sm_90"
    gpu: str  # "H100"
    capability: int  # 90
    sms: int  # streaming multiprocessors (SXM parts)
    smem_per_sm: int  # bytes of shared memory an SM can give its blocks
    smem_per_block: int  # bytes one block may use (dynamic above 48 KB with the opt-in)
    regs_per_sm: int = 65536
    max_regs_per_thread: int = 255
    reg_unit: int = 256  # registers are allocated per warp in multiples of this
    max_warps_per_sm: int = 64
    max_blocks_per_sm: int = 32
    max_threads_per_block: int = 1024
    smem_reserved_per_block: int = 1024
    smem_unit: int = 128
    max_grid_yz: int = 65535
    max_grid_x: int = 2**31 - 1


CHIPS: dict[str, Chip] = {
    "sm_90": Chip("sm_90", "H100", 90, sms=132, smem_per_sm=228 * 1024, smem_per_block=227 * 1024),
    "sm_80": Chip("sm_80", "A100", 80, sms=108, smem_per_sm=164 * 1024, smem_per_block=163 * 1024),
}


@dataclass(frozen=True)
class Occupancy:
    blocks_per_sm: int  # resident blocks per SM (0: the launch cannot run on this chip)
    warps_per_sm: int
    occupancy: float  # resident warps / the SM's maximum
    limiter: str  # "registers", "shared memory", "threads", "blocks"
    problems: tuple[str, ...]  # why the launch cannot run (empty when it can)


def _round_up(x: int, unit: int) -> int:
    return -(-x // unit) * unit


def occupancy(chip: Chip, registers: int, threads: int, shared_bytes: int, grid: tuple[int, ...] = (1,)) -> Occupancy:
    """Blocks of ``threads`` threads using ``registers`` per thread and ``shared_bytes``
    of shared memory (static plus dynamic) resident on one SM of ``chip``; ``problems``
    names every limit the launch exceeds (then blocks_per_sm is 0)."""
    problems = []
    if threads > chip.max_threads_per_block:
        problems.append(f"{threads} threads per block > {chip.max_threads_per_block}")
    if registers > chip.max_regs_per_thread:
        problems.append(f"{registers} registers per thread > {chip.max_regs_per_thread}")
    if shared_bytes > chip.smem_per_block:
        problems.append(f"{shared_bytes} bytes of shared memory per block > {chip.smem_per_block} ({chip.gpu})")
    x, *yz = tuple(grid) + (1, 1)
    if x > chip.max_grid_x or any(g > chip.max_grid_yz for g in yz[:2]):
        problems.append(f"grid {tuple(grid)} exceeds ({chip.max_grid_x}, {chip.max_grid_yz}, {chip.max_grid_yz})")
    warps = math.ceil(threads / 32)
    limits = {"threads": chip.max_warps_per_sm // warps, "blocks": chip.max_blocks_per_sm}
    regs_per_warp = _round_up(max(registers, 1) * 32, chip.reg_unit)
    limits["registers"] = (chip.regs_per_sm // regs_per_warp) // warps
    if shared_bytes:
        limits["shared memory"] = chip.smem_per_sm // _round_up(shared_bytes + chip.smem_reserved_per_block,
                                                                chip.smem_unit)
    limiter = min(limits, key=limits.get)
    if limits[limiter] == 0:
        problems.append(f"not one block fits an SM ({limiter})")
    blocks = 0 if problems else limits[limiter]
    return Occupancy(blocks, blocks * warps, blocks * warps / chip.max_warps_per_sm, limiter, tuple(problems))
