"""``arsenal gpu-compile``: every Triton and Numba CUDA kernel of every op, forward and
backward, at the specialisations the suites and the model grids use, compiled for
sm_90 (H100) and sm_80 (A100) on a machine without a GPU; records and a verdict.

    from bench.gpu_compile.run import GpuCompileConfig, compile_all
    records = compile_all(GpuCompileConfig(ops=("parallel_scan",)))

It needs the kernels as compilers see them: Triton's interpreter and Numba's CUDA
simulator must be off when the backends are imported (``arsenal gpu-compile`` turns
them off; in a process that imported them simulated, ``compile_all`` refuses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.gpu_compile.specs import DIRECTIONS, GPU_BACKENDS, Call, run_call, suite_calls

SIMULATION = ("TRITON_INTERPRET", "NUMBA_ENABLE_CUDASIM")
DTYPES = ("float32", "bfloat16")  # what the GPU backends may take; each takes those its registry entry lists


@dataclass(frozen=True)
class GpuCompileConfig:
    chips: tuple[str, ...] = ("sm_90", "sm_80")
    backends: tuple[str, ...] = GPU_BACKENDS
    ops: tuple[str, ...] | None = None  # None: every op
    suites: tuple[str, ...] | None = None  # op suites; None: every suite
    models: bool = True  # also the op calls of the model grids (suites/model_runs.py)
    out: Path | None = None  # results file the records are appended to
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)  # compiling processes
    extra_calls: tuple[Call, ...] = field(default=())  # more calls (tests)
    every: bool = False  # every specialisation; False: the covering set (see cover)


def _modules(backend: str):
    from bench.gpu_compile import numba_cuda, triton

    return {"triton": triton, "numba_cuda": numba_cuda}[backend]


def _impl(backend: str, op: str):
    """The backend's Impl of the op, imported whether or not the backend can run here
    (Backend.impl refuses a backend without its device); None when it has no file."""
    import importlib

    import backends

    if op not in backends.BACKENDS[backend].op_names():
        return None
    importlib.import_module(f"backends.{backend}.{op}")
    return backends.IMPLS[(op, backend)]


_PENDING: list[dict] = []  # what the forked workers compile, by index (kernels do not pickle)


def _compile_pending(i: int):
    entry = _PENDING[i]
    return entry["module"].compile_one(entry["spec"], entry["chip"])


def _compile(entries: list[dict], jobs: int):
    """The compiled kernels in order, ``jobs`` forked processes at a time (compiling is
    CPU-bound Python and LLVM; each process holds the captured kernels by inheritance)."""
    if jobs <= 1 or len(entries) < 2:
        yield from (e["module"].compile_one(e["spec"], e["chip"]) for e in entries)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _PENDING[:] = entries
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            yield from pool.map(_compile_pending, range(len(entries)))
    finally:
        _PENDING.clear()


def cover(entries: list[dict]) -> list[dict]:
    """The covering set: each kernel once per chip at each of its constexpr, warp and
    argument-type (dtype) choices (for Numba: each argument typing and block), at the
    variant its backend's ``preference`` picks; the others (an autotune config's
    pipeline stages, the arguments' alignment) are named in ``variants`` and their uses
    become its uses. Two thirds of the specialisations of the suites and grids, so
    that CI's 2 cores compile them in minutes; ``every`` compiles all of them."""
    groups: dict[tuple, list[dict]] = {}
    for e in entries:
        groups.setdefault(e["module"].cover_key(e["key"], e["spec"]), []).append(e)
    out = []
    for members in groups.values():
        module = members[0]["module"]
        chosen = max(members, key=lambda e: module.preference(e["spec"]))
        merged = dict(chosen, uses=[u for e in members for u in e["uses"]], variants=sorted(
            {module.variant(e["spec"]) for e in members if e is not chosen}))
        merged["ops"] = list(dict.fromkeys(op for e in members for op in e["ops"]))
        merged["dtypes"] = list(dict.fromkeys(d for e in members for d in e["dtypes"]))
        out.append(merged)
    return out


def check_environment() -> None:
    """Refuse to run where the kernels were imported as the simulators' stand-ins."""
    on = [k for k in SIMULATION if os.environ.get(k) == "1"]
    if on:
        raise RuntimeError(f"gpu-compile: {', '.join(on)} is set: the kernels are the simulators' stand-ins, not "
                           f"compilable; unset it before torch, triton and numba are imported")


def calls(cfg: GpuCompileConfig) -> list[Call]:
    found = suite_calls(cfg.suites)
    if cfg.models:
        from bench.gpu_compile.models import model_calls

        found += model_calls()
    found += list(cfg.extra_calls)
    return [c for c in found if cfg.ops is None or c.op in cfg.ops]


def compile_all(cfg: GpuCompileConfig, progress: Callable[[str], None] = print) -> list[dict]:
    """Capture, specialise, compile, assemble and judge; the records, also appended to
    cfg.out when given."""
    check_environment()
    import torch

    import backends
    from bench import env, results
    from bench.gpu_compile.occupancy import CHIPS
    from bench.gpu_compile.records import record

    todo = calls(cfg)
    unique: dict[tuple, dict] = {}  # key -> {"spec", "module", "uses", "ops", "direction", "dtypes", "chip"}
    for chip_name in cfg.chips:
        chip = CHIPS[chip_name]
        for backend in cfg.backends:
            module = _modules(backend)
            for call in todo:
                impl = _impl(backend, call.op)
                if impl is None:
                    continue
                for dtype_name in DTYPES:
                    dtype = getattr(torch, dtype_name)
                    if dtype not in impl.dtypes:
                        continue
                    for direction, launches in run_call(impl, call, dtype, module.captured, chip).items():
                        for launch in launches:
                            key, spec = module.specialise(launch, chip)
                            entry = unique.setdefault(key, {"key": key, "spec": spec, "module": module, "uses": [],
                                                            "ops": [], "direction": direction, "dtypes": [],
                                                            "chip": chip, "variants": []})
                            entry["uses"].append(f"{call.op} {direction} {dtype_name} {call.source} {call.case_id}")
                            if call.op not in entry["ops"]:
                                entry["ops"].append(call.op)
                            if dtype_name not in entry["dtypes"]:
                                entry["dtypes"].append(dtype_name)
                            if spec["grid"] > entry["spec"]["grid"]:
                                entry["spec"] = dict(entry["spec"], grid=spec["grid"])
    entries = list(unique.values()) if cfg.every else cover(list(unique.values()))
    progress(f"{len(todo)} op calls x {len(cfg.chips)} chips: {len(unique)} kernel specialisations, "
             + ("all compiled" if cfg.every else f"{len(entries)} compiled, each standing for its variants "
                                                 f"(pipeline stages, alignment; --all compiles every one)"))
    run_id, fingerprint = results.new_run_id(), env.environment("cpu")
    out = []
    for i, (entry, compiled) in enumerate(zip(entries, _compile(entries, cfg.jobs)), 1):
        compiled.uses = sorted(set(entry["uses"]))
        if entry["variants"]:
            compiled.specialization += f" [stands for: {'; '.join(entry['variants'])}]"
        rec = record(compiled, entry["ops"], entry["direction"], entry["dtypes"], run_id, fingerprint)
        out.append(rec)
        if cfg.out is not None:
            results.append(cfg.out, rec)
        mark = "ok" if rec["status"] == "ok" else "FAILED"
        progress(f"[{i}/{len(entries)}] {rec['chip']} {rec['backend']} {rec['op']} {rec['kernel']} "
                 f"({rec['specialization']}): {mark} {compiled.seconds:.1f} s")
    return out
