"""Realistic synthetic records of every kind (bench/results.py's fields) for the report
tests, and a writer of results files.

    records = every_kind()                 # op, model, train, routing, drift, equivalence
    path = write(tmp_path / "r.jsonl", records)
    real = real_records()                  # the fixtures' records as producers wrote them
    lines = hostile_lines()                # the worst results file issue 22 met, one line a record

Values are drawn from a seeded generator so every test sees the same file. The real
records in fixtures/report/quick_cpu.jsonl come from
``arsenal ops --suite quick --op parallel_scan,stack_step --backend torch,numba_cpu
--mode forward`` on a 2-core CPU, their samples_ns cut to the first 40. Those in
fixtures/report/kinds_cpu.jsonl are a cut of results/cpu/2026-11-25-xeon-2core (a model
grid group, the fastlane swap ablation, transformer and fastlane scaling up to T = 1024,
one routing record, six drift records, one equivalence record with its loss curves cut
to 30 steps) and the five records of ``arsenal train --family elman --model
d_model=16,rung=4 --task selective_copy --task-args n_train=64,n_test=32,n_valid=32
--steps 6 --batch-size 4 --eval-every 3 --eval-batches 1 --test-batches 1 --seq-len 32``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).parent / "fixtures" / "report" / "quick_cpu.jsonl"
KINDS_FIXTURE = Path(__file__).parent / "fixtures" / "report" / "kinds_cpu.jsonl"
RUN = "synthetic001"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ENV = {"git": {"commit": COMMIT, "dirty": False},
       "packages": {"python": "3.11.7", "torch": "2.5.1+cpu", "numpy": "2.1.0", "numba": "0.60.0", "triton": None},
       "platform": "Linux-6.1-x86_64-with-glibc2.36", "cpu": "Intel(R) Xeon(R) Processor", "cpu_count": 2,
       "gpu": None, "threads": {"torch": 2, "torch_interop": 2, "numba": 2}, "loadavg": [0.4, 0.5, 0.5],
       "runtime": {}, "malloc": {"mmap_threshold": 33554432, "trim_threshold": 1073741824}}
CEILINGS = {"fingerprint": "b9b03c338a2a", "copy": [(1 << 20, 60.0), (1 << 30, 24.0)],
            "matmul": {"float32": 290.0, "bfloat16": 580.0}}
# op -> (cases, flops(case), bytes per element of traffic)
OPS = {
    "parallel_scan": ([{"B": 4, "T": t, "D": 256} for t in (256, 1024, 4096)], lambda c: 2 * c["B"] * c["T"] * c["D"]),
    "banked_attention": ([{"B": 2, "T": t, "H": 4, "N": 4, "Dk": 32, "Dv": 32} for t in (256, 1024)],
                         lambda c: 8 * c["B"] * c["T"] * c["H"] * c["N"] * c["Dk"] * c["Dv"]),
    "micro_mlp": ([{"B": 8, "T": 256, "D": 128, "K": 8}], lambda c: 40 * c["B"] * c["T"] * c["D"] * c["K"]),
}
# backend -> how much faster than torch (None: unavailable; "incorrect": fails the gate)
SPEED = {"torch": 1.0, "numba_cpu": 3.0, "torch_compile": 1.6, "triton": None, "mingru": "incorrect"}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float64": 8}


def _base(**fields) -> dict:
    return dict({"schema": 1, "run_id": RUN, "time": "2026-11-25T12:00:00Z", "device": "cpu", "env": ENV}, **fields)


def _case_id(case: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in case.items())


def _roofline(flops: float, nbytes: float, seconds: float, dtype: str) -> dict:
    bw = next((gbps for size, gbps in CEILINGS["copy"] if nbytes <= size), CEILINGS["copy"][-1][1])
    peak = CEILINGS["matmul"]["bfloat16" if dtype == "bfloat16" else "float32"]
    gbps, gflops = nbytes / seconds / 1e9, flops / seconds / 1e9
    return {"gbps": gbps, "gflops": gflops, "pct_bandwidth": 100 * gbps / bw, "pct_flops": 100 * gflops / peak,
            "pct_roofline": max(100 * gbps / bw, 100 * gflops / peak),
            "roofline": {"fingerprint": CEILINGS["fingerprint"], "gbps": bw, "gflops": peak,
                         "bound": "memory" if nbytes / bw >= flops / peak else "compute"}}


def op_group(op: str, case: dict, dtype: str, mode: str, group: int, rng, speed=SPEED, steal: float = 0.3) -> list[dict]:
    """One interleaved group: a record per backend, speedups within the group."""
    flops = float(OPS[op][1](case)) * (3 if mode == "forward_backward" else 1)
    nbytes = float(np.prod(list(case.values())) * DTYPE_BYTES[dtype] * 3) * (3 if mode == "forward_backward" else 1)
    torch_ns = nbytes / 5.0  # about 5 GB/s for eager torch
    recs, medians = {}, {}
    for backend, factor in speed.items():
        rec = _base(group=group, op=op, backend=backend, variant=None, case=case, case_id=_case_id(case), dtype=dtype,
                    mode=mode, status="ok", error=None, compile_seconds=0.2, steal_pct=steal,
                    load={"cpu_share": 0.97, "thread_share": 0.99, "runnable": 0.1, "cores": 2, "threads": 2,
                          "verdict": "quiet"},
                    gate={"ok": True, "cases": [], "forward_error": 1e-6, "grad_error": None, "problems": [],
                          "seconds": 0.05})
        if factor is None:
            rec.update(status="unavailable", error=f"{backend}: no GPU here (needs CUDA)", gate=None)
        elif factor == "incorrect":
            rec.update(status="incorrect", error="gradient of a: max error 1.3e-3 > tolerance 1e-3 at T=1024",
                       gate=dict(rec["gate"], ok=False))
        else:
            median = torch_ns / factor
            samples = (median * rng.lognormal(0.0, 0.08, size=60)).round().astype(int).tolist()
            q1, med, q3 = np.quantile(samples, [0.25, 0.5, 0.75])
            rec.update(samples_ns=samples, host_ns=None, median_ns=float(med), q1_ns=float(q1), q3_ns=float(q3),
                       iqr_ns=float(q3 - q1), rel_iqr=float((q3 - q1) / med), reps=60, rounds=20,
                       stop_reason="target", flops=flops, bytes=nbytes,
                       **_roofline(flops, nbytes, med / 1e9, dtype))
            medians[backend] = float(med)
        recs[backend] = rec
    for backend, rec in recs.items():
        for base in ("torch", "torch_compile"):
            ok = backend in medians and base in medians
            rec[f"speedup_vs_{base}"] = medians[base] / medians[backend] if ok else None
            rec[f"speedup_vs_{base}_ci95"] = ([0.95 * rec[f"speedup_vs_{base}"], 1.05 * rec[f"speedup_vs_{base}"]]
                                              if ok and base != backend else None)
    return list(recs.values())


def op_records(seed: int = 0, dtypes=("float32", "bfloat16"), modes=("forward", "forward_backward"), speed=SPEED) -> list[dict]:
    rng = np.random.default_rng(seed)
    out, group = [], 0
    for op, (cases, _) in OPS.items():
        for case in cases:
            for dtype in dtypes:
                for mode in modes:
                    out += op_group(op, case, dtype, mode, group, rng, speed)
                    group += 1
    return out


def model_records(seed: int = 0) -> list[dict]:
    """grid and best rows of two families and three mixes, a swap ablation, and scaling
    from T = 256 to 2048 (the transformer quadratic, the recurrent family linear)."""
    rng = np.random.default_rng(seed)
    mixes = {"torch": {"parallel_scan": "torch", "gated_update": "torch"},
             "numba_cpu": {"parallel_scan": "numba_cpu", "gated_update": "numba_cpu"},
             "torch_compile": {}}

    def rec(family, mix_id, mix, T, role, ns, mem, breakdown=None):
        samples = (ns * rng.lognormal(0.0, 0.05, size=20)).round().astype(int).tolist()
        q1, med, q3 = np.quantile(samples, [0.25, 0.5, 0.75])
        return _base(kind="model", family=family, config_id="small", config={"d_model": 128, "layers": 2}, mix=mix,
                     mix_id=mix_id, task="listops", case={"B": 8, "T": T}, case_id=f"B8-T{T}", role=role, dtype="float32",
                     status="ok", error=None, samples_ns=samples, median_ns=float(med), q1_ns=float(q1), q3_ns=float(q3),
                     tokens_per_s=8 * T / (med / 1e9), prefill_tokens_per_s=8 * T / (med / 3e9),
                     decode_ns_per_token=med / T / 4, peak_mem_bytes=mem, op_breakdown=breakdown, compile_seconds=1.0,
                     params=250_000, gate={"ok": True}, speedup_vs_torch=None, speedup_vs_torch_compile=None,
                     speedup_vs_torch_ci95=None, speedup_vs_torch_compile_ci95=None)

    out = []
    for family in ("fastlane", "transformer"):
        base = 40e6 if family == "fastlane" else 30e6
        for mix_id, mix in mixes.items():
            f = {"torch": 1.0, "numba_cpu": 2.2, "torch_compile": 1.4}[mix_id] if family == "fastlane" else 1.0
            ns = base / f
            r = rec(family, mix_id, mix, 512, "grid", ns, 120e6 / f,
                    {"parallel_scan": ns * 0.4, "gated_update": ns * 0.2, "rest": ns * 0.4} if mix else None)
            r["speedup_vs_torch"] = f
            r["speedup_vs_torch_ci95"] = [0.97 * f, 1.03 * f]
            out.append(r)
        for T in (256, 512, 1024, 2048):
            power = 2.0 if family == "transformer" else 1.0
            out.append(rec(family, "torch", mixes["torch"], T, "scaling", base * (T / 512) ** power,
                           100e6 * (T / 512) ** power))
    for op, backend, f in (("parallel_scan", "numba_cpu", 1.6), ("gated_update", "numba_cpu", 1.1),
                           ("parallel_scan", "triton", 0.7)):
        mix = dict(mixes["torch"], **{op: backend})
        r = rec("fastlane", f"torch+{op}={backend}", mix, 512, "swap", 40e6 / f, 110e6)
        r.update(speedup_vs_torch=f, speedup_vs_torch_ci95=[0.95 * f, 1.05 * f])
        out.append(r)
    best = rec("fastlane", "torch+gated_update=numba_cpu+parallel_scan=numba_cpu", mixes["numba_cpu"], 512, "best",
               40e6 / 1.9, 100e6, {"parallel_scan": 8e6, "gated_update": 4e6, "rest": 9e6})
    best.update(speedup_vs_torch=1.9, speedup_vs_torch_ci95=[1.85, 1.95], speedup_vs_torch_compile=1.3)
    return out + [best]


# suites.tasks.anchors.ANCHORS["listops"], as bench/train/run.py writes them (dataclasses as dicts)
ANCHORS = [{"model": m, "value": v, "unit": "accuracy %", "source": "LRA", "note": ""}
           for m, v in (("Transformer", 36.37), ("S4", 59.6), ("LRU", 60.2))]


def train_records() -> list[dict]:
    out = []
    for family, mix_id, final_acc, seconds in (("fastlane", "numba_cpu", 0.41, 120.0), ("transformer", "torch", 0.35, 300.0)):
        train_id = f"{family}-listops-{mix_id}"
        for i, step in enumerate(range(0, 1001, 100)):
            for split in ("train", "val"):
                frac = step / 1000
                rec = _base(kind="train", train_id=train_id, family=family, config_id="small", mix_id=mix_id,
                            task="listops", step=step, split=split, loss=2.3 - 0.9 * frac + (0.05 if split == "val" else 0),
                            metric="accuracy", value=0.1 + (final_acc - 0.1) * frac, bits_per_byte=None,
                            tokens=step * 8 * 512, wall_s=seconds * frac, lr=1e-3, steps_per_s=1000 / seconds,
                            dtype="float32", status="ok", error=None)
                if step == 1000 and split == "val":
                    rec.update(final=True, baseline=0.17, anchors=ANCHORS)
                out.append(rec)
    return out


def routing_records(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for layer in (0, 1):
        logits = rng.normal(0, 2.0 + layer, size=(24, 6))
        weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        out.append(_base(kind="routing", family="nsm", config_id="small", layer=layer, weights=weights.tolist(),
                         tokens=[int(t) for t in rng.integers(0, 16, size=24)], mask=[True] * 20 + [False] * 4,
                         dtype="float32", status="ok", error=None))
    return out


def drift_records() -> list[dict]:
    out = []
    for op in ("parallel_scan", "banked_attention"):
        for backend, grow in (("torch", 1.0), ("numba_cpu", 0.6), ("triton", 1.4)):
            for dtype, eps in (("float32", 1e-7), ("bfloat16", 4e-3)):
                for T in (64, 256, 1024, 4096, 16384):
                    out.append(_base(kind="drift", op=op, backend=backend, variant=None, dtype=dtype, T=T,
                                     error=eps * (T ** 0.5) * grow, status="ok"))
    return out


def equivalence_records() -> list[dict]:
    steps = 50
    torch_losses = [2.3 * math.exp(-i / 30) + 0.5 for i in range(steps)]
    return [_base(kind="equivalence", family="fastlane", mix_id=mix_id, steps=steps, tolerance=1e-4, max_abs_diff=diff,
                  ok=diff <= 1e-4, losses_mix=[v + diff * math.sin(i) for i, v in enumerate(torch_losses)],
                  losses_torch=torch_losses, dtype="float32", status="ok", error=None)
            for mix_id, diff in (("numba_cpu", 3e-5), ("torch+parallel_scan=numba_cpu", 2e-5))]


def overhead_records() -> list[dict]:
    """arsenal overhead's records: per op and backend, the registry call over the bare one."""
    out = []
    for op, case_id in (("parallel_scan", "B4-T8-D16"), ("stack_step", "B4-K8-D16")):
        for backend, raw, extra in (("torch", 98_500.0, 6_500.0), ("numba_cpu", 12_500.0, 4_100.0)):
            out.append(_base(kind="overhead", op=op, backend=backend, case={}, case_id=case_id, mode="forward",
                             dtype="float32", raw_ns=raw, checked_ns=raw + extra, overhead_ns=extra,
                             overhead_ci95_ns=[extra - 400.0, extra + 600.0], checks_ns=5_300.0,
                             status="ok", error=None))
    return out


def every_kind() -> list[dict]:
    return (op_records() + model_records() + train_records() + routing_records() + drift_records()
            + overhead_records() + equivalence_records())


# The figures a report of every_kind() has, by id.
EVERY_KIND_FIGURES = (
    "fig-summary-speedup", "fig-speedups-heatmap", "fig-roofline-chart", "fig-scaling-ops", "fig-scaling-models",
    "fig-noise-samples", "fig-coverage-matrix", "fig-models-metrics", "fig-models-breakdown", "fig-models-swap",
    "fig-models-memory", "fig-learning-curves", "fig-learning-final", "fig-learning-cost", "fig-routing-weights",
    "fig-routing-usage", "fig-routing-entropy", "fig-drift-error", "fig-overhead-overhead", "fig-equivalence-losses",
)


def write(path, records, damaged: list[str] = ()) -> Path:
    """A results file: one JSON line per record (NaN written as NaN, as json.dumps does),
    then the ``damaged`` lines as they are."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        for line in damaged:
            f.write(line + "\n")
    return path


def real_records() -> list[dict]:
    """The fixtures' real records: op timings, then every other kind the report draws."""
    return [json.loads(line) for path in (FIXTURE, KINDS_FIXTURE) for line in path.read_text().splitlines()]


def substitute(record: dict, path: tuple, value) -> dict:
    """A deep copy of ``record`` with ``value`` at ``path`` (keys and list indices)."""
    out = json.loads(json.dumps(record))
    *head, last = path
    where = out
    for step in head:
        where = where[step]
    where[last] = value
    return out


def paths(value, prefix: tuple = (), items: int = 2) -> list[tuple]:
    """Every path into a record: each member of each object, the first ``items`` elements
    of each list."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += [prefix + (k,)] + paths(v, prefix + (k,), items)
    elif isinstance(value, list):
        for i, v in enumerate(value[:items]):
            out += [prefix + (i,)] + paths(v, prefix + (i,), items)
    return out


def _index(records: list[dict], kind: str, **match) -> int:
    return next(i for i, r in enumerate(records) if (r.get("kind") or "op") == kind
                and all(r.get(k) == v for k, v in match.items()))


# What issue 22 saw crash or stall the report, each (kind of the real record, fields it
# is picked by, path, value).
HOSTILE = {
    "a timing of 0": ("op", {"backend": "torch"}, ("median_ns",), 0),
    "a string among samples_ns": ("op", {"backend": "numba_cpu"}, ("samples_ns", 3), "fast"),
    "a number where a commit hash belongs": ("op", {"op": "stack_step"}, ("env", "git", "commit"), 1234567),
    "a list where an id belongs": ("model", {"mix_id": "torch"}, ("run_id",), ["afe840bef358"]),
    "a lone surrogate in a name": ("model", {"mix_id": "numba_cpu"}, ("family",), "trans\ud800former"),
    "a speedup of 1e300": ("op", {"op": "stack_step", "backend": "numba_cpu"}, ("speedup_vs_torch",), 1e300),
    "a speedup the colour scale clips": ("op", {"op": "parallel_scan", "backend": "numba_cpu"},
                                         ("speedup_vs_torch",), 1e5),
    "a lone surrogate in a key": ("drift", {"backend": "torch"}, ("env", "packages", "tor\udc80ch"), "2.13"),
    "an integer beyond every float": ("train", {"split": "test"}, ("step",), 10 ** 400),
    "a NaN loss": ("train", {"split": "val"}, ("loss",), math.nan),
    "a kind that is not text": ("routing", {}, ("kind",), {"kind": "routing"}),
}


def hostile_index(name: str) -> int:
    """The index in real_records() of the record that HOSTILE[name] changes."""
    kind, match, _, _ = HOSTILE[name]
    return _index(real_records(), kind, **match)


def hostile_records() -> list[dict]:
    """The real records with every HOSTILE value put in (one record each)."""
    records = real_records()
    for name, (_, _, path, value) in HOSTILE.items():
        i = hostile_index(name)
        records[i] = substitute(records[i], path, value)
    return records


def hostile_lines() -> list[str]:
    """The worst results file: hostile_records() (NaN written as NaN), then lines that
    are JSON a report cannot use: not an object, an integer of 5,000 digits (more than
    Python parses), nesting 100,000 deep, a record of another schema, a cut line."""
    return ([json.dumps(r) for r in hostile_records()]
            + ["[1, 2, 3]", '"a string"', "1" * 5000, "[" * 100_000 + "]" * 100_000,
               json.dumps({"schema": 999, "op": "parallel_scan"}), '{"schema": 1, "op": "parallel_sc'])


def write_lines(path, lines: list[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
