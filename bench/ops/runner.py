"""The op benchmark run: each planned group (one op, case, dtype and mode, its
candidates interleaved) is gated and prepared (``bench.ops.pipeline``), timed together
(``bench.timing``), checked for contention (``bench.load``), derived against the
roofline and appended.

Every record of a group comes from one interleaved timing, so its speedups (median of
the baseline / median of the candidate) are ratios from the same minutes of the same
run. A group in which a candidate's blocks were disturbed by other work is timed once
more after a pause; the records keep the second timing, its ``load`` and
``load["remeasured"] = True``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

import backends
from bench import env, load, measure, results, roofline
from bench.ops import pipeline
from bench.ops.dtypes import name as dtype_name
from bench.ops.gate import Gate
from bench.ops.plan import Group
from bench.timing import CpuClock, CudaClock, TimingConfig

@dataclass(frozen=True)
class RunConfig:
    device: str = "cpu"
    seed: int = 0
    gate_max_elements: int = 1 << 24  # the benchmark case joins the gate up to this size (gate.case_elements)
    gate_case_grad: bool = False  # benchmark-case gradients against the reference, not the oracle (O(T^2))
    timing: TimingConfig = field(default_factory=TimingConfig)
    load: load.LoadConfig = field(default_factory=load.LoadConfig)


def group_label(group: Group) -> str:
    """'op case dtype mode': how progress lines and logs name a group."""
    return f"{group.op} {group.items[0].case_id} {dtype_name(group.dtype)} {group.mode}"


class Runner:
    """Runs groups and appends one record per candidate to ``out`` (when given)."""

    def __init__(self, cfg: RunConfig = RunConfig(), out=None, ceilings: dict | None = None,
                 log: Callable[[str], None] = lambda msg: None, watch: Callable[[], load.Reading] = load.read,
                 sleep: Callable[[float], None] = time.sleep):
        self.cfg, self.out, self.log, self.watch, self.sleep = cfg, out, log, watch, sleep
        self.ceilings = ceilings if ceilings is not None else roofline.ceilings(cfg.device)
        self.gate = Gate(cfg.device, cfg.gate_max_elements, cfg.seed, cfg.gate_case_grad)
        self.run_id = results.new_run_id()
        self.groups_done = 0
        self.cpu = torch.device(cfg.device).type != "cuda"
        self.clock = CpuClock() if self.cpu else CudaClock(cfg.device)
        self.measure_cfg = measure.MeasureConfig(timing=cfg.timing, load=cfg.load, cpu=self.cpu)

    def _base(self, group: Group, name: str) -> dict:
        return results.new_record("op", run_id=self.run_id, env=None, group=self.groups_done, op=group.op,
                                  backend=name, variant=None, case=group.case, case_id=group.items[0].case_id,
                                  dtype=dtype_name(group.dtype), mode=group.mode, device=self.cfg.device, status=None,
                                  error=None, compile_seconds=None, gate=None, load=None)

    def run_group(self, group: Group) -> list[dict]:
        records = {i.name: self._base(group, i.name) for i in group.items}
        prepared = {}
        for item in group.items:
            got = pipeline.gate_then_prepare(self.gate, item, seed=self.cfg.seed, log=self.log)
            rec = records[item.name]
            rec["gate"] = got.gate.record() if got.gate is not None else None
            if got.status != pipeline.READY:
                rec.update(status=got.status, error=got.error)
                continue
            rec["compile_seconds"] = got.prepared.compile_seconds
            prepared[item.name] = got.prepared
        label = group_label(group)
        self.log(f"{label}: timing {', '.join(prepared)}")
        got = measure.group({n: (p.fn, p.sync) for n, p in prepared.items()}, self.measure_cfg, clock=self.clock,
                            log=lambda msg: self.log(f"{label}: {msg}"), sleep=self.sleep, watch=self.watch)
        for name, why in got.errors.items():
            records[name].update(status="error", error=why)
        for name, fields in got.fields.items():
            records[name].update(fields)
        timed = got.measurements
        self._derive(group, timed, records)
        out = [records[name] for name in group.names]
        env_fp = env.environment(self.cfg.device)
        for rec in out:
            rec["env"] = env_fp
            if self.out is not None:
                results.append(self.out, rec)
        self.groups_done += 1
        return out

    def _busy_note(self) -> str:
        avg, cores = self.ceilings.get("loadavg"), os.cpu_count() or 1
        if avg and avg[0] > cores:
            return (f", or the ceilings are low (measured at load average {avg[0]} on {cores} cores: "
                    "arsenal roofline --refresh on a quiet machine)")
        return ""

    def _derive(self, group: Group, timed: dict, records: dict) -> None:
        spec = backends.OPS[group.op]
        flops = float(spec.flops(group.case, group.mode))
        nbytes = float(spec.bytes(group.case, group.dtype, group.mode))
        for name in timed:
            rec = records[name]
            rec.update(flops=flops, bytes=nbytes)
            rec.update(roofline.derive(self.ceilings, flops, nbytes, rec["median_ns"] / 1e9, dtype_name(group.dtype)))
            if rec["pct_roofline"] > 100.0:
                rec.update(status="wrong_model",
                           error=f"{rec['pct_roofline']:.0f}% of the roofline: the contract's bytes or flops "
                                 f"model of {group.op} is wrong for this case{self._busy_note()}")
            else:
                rec["status"] = "ok"
