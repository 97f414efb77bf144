"""One results format: JSON lines, one record per (op, backend, case, dtype, mode) timing.

    import bench.results
    df = bench.results.load("out/results.jsonl")      # a pandas DataFrame, one row per record
    # or, for an undamaged file: pd.read_json("out/results.jsonl", lines=True)

Records are appended as they are produced (flushed and fsynced), so an interrupted run
keeps every record it finished. A damaged line (a run killed mid-write, an edit) is
reported with its line number and skipped; it never stops a load. A record is a flat
JSON object; its fields (schema ``SCHEMA_VERSION``):

    schema, run_id, group, time          version; the run; the interleaved group (the
                                         records of one group were timed together);
                                         UTC ISO time
    op, backend, variant, case, case_id  what ran (backend: a registry backend or a peer;
    dtype, mode, device                  variant: None unless the implementation has several)
    status, error                        "ok" | "incorrect" | "unavailable" | "error" |
                                         "wrong_model" (a figure over 100% of the
                                         roofline); error: why, for every other status
    samples_ns, host_ns                  raw samples; GPU: host time of each call
    median_ns, q1_ns, q3_ns, iqr_ns,     statistics of samples_ns
    rel_iqr, reps, rounds, stop_reason
    steal_pct                            CPU time the hypervisor gave to other machines
                                         while the group was timed (Linux; None elsewhere)
    load                                 contention while the candidate was timed
                                         (bench/load.py; None when not timed): cpu_share
                                         (process CPU / (wall x threads)), thread_share
                                         (timing thread's CPU / wall), runnable (other
                                         runnable tasks, mean; None off Linux), cores,
                                         threads, verdict "quiet" | "disturbed" (other
                                         work competed for the cores: the figure can be
                                         many times too slow; compare calls it at most
                                         "ambiguous"), remeasured (True when the group
                                         was timed again after a disturbed first try)
    compile_seconds                      first call (JIT, autotune, compile) minus a steady one
    gate                                 the correctness gate: cases, errors, seconds
    flops, bytes, gflops, gbps,          the contract's model and the derived figures;
    pct_flops, pct_bandwidth,            pct_roofline = max of the two percentages
    pct_roofline, roofline
    speedup_vs_torch,                    median ratios within the group (None when the
    speedup_vs_torch_compile             baseline was not in it); ..._ci95: their bootstrap
                                         95% interval [lo, hi] (the noise of the ratio)
    env                                  bench.env.environment(): git commit, packages,
                                         CPU/GPU model, thread counts, runtime settings,
                                         malloc thresholds

Record kinds. The fields above are those of an op timing; every other record carries
``kind`` (absent means "op") and shares ``schema, run_id, time, device, dtype, status,
error, env`` where they apply. The kinds and their own fields:

    kind="model"        one model x mix x shape measurement (bench/models, arsenal models)
        family, config_id, config (dict), mix (dict op -> backend), mix_id ("torch",
        "numba_cpu", "torch+parallel_scan=numba_cpu", or a peer "torch_compile"), task,
        case {"B", "T"}, case_id, role ("grid" | "scaling" | "swap" | "best"),
        samples_ns, median_ns, q1_ns, q3_ns (one training step: forward, backward,
        optimizer), tokens_per_s, prefill_tokens_per_s, decode_ns_per_token,
        peak_mem_bytes, op_breakdown ({op or "rest": ns per step}), breakdown_step_ns (the
        step the breakdown clocked: its rows' sum), breakdown_method ("op_clock" on CPU,
        "torch.profiler" on CUDA), compile_seconds,
        params, gate, speedup_vs_torch, speedup_vs_torch_compile (+ _ci95), load (as for an op record)
    kind="train"        one evaluation point of a training run (bench/train.py)
        train_id, family, config_id, mix_id, task, step, split ("train" | "val" |
        "test"), loss, metric (name), value, bits_per_byte, tokens, wall_s, lr,
        steps_per_s; final=True on the last record of a run, with baseline (the trivial
        figure: most frequent label or unigram bits per byte) and anchors
    kind="routing"      NSM routing weights of one example: family, config_id, layer,
                        weights ([T][S] nested lists), tokens ([T]), mask ([T])
    kind="drift"        op, backend, dtype, variant, T, error (max error against the
                        float64 reference, relative to its scale)
    kind="equivalence"  family, mix_id, steps, tolerance, max_abs_diff, ok, agreement
                        ("tolerance" | "noise" | "differs" | "diverged"), noise_floor,
                        noise_factor (bench/model_equivalence.py), losses_mix,
                        losses_torch, losses_floor (per step; the floor None unless run)
    kind="overhead"     the cost of the checked op call (bench/overhead.py documents its
                        fields): op, backend, raw and checked per-call times
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Iterable

SCHEMA_VERSION = 1
STATUSES = ("ok", "incorrect", "unavailable", "error", "wrong_model")
KEY_FIELDS = ("op", "backend", "variant", "case_id", "dtype", "mode", "device")


class DamagedLineWarning(UserWarning):
    """A results line that is not a JSON object was skipped."""


def _clean(value):
    """NaN and infinities become None: the file stays strict JSON (pandas reads it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def append(path, record: dict) -> None:
    """Append one record as a line, then flush and fsync. A file whose last line was
    cut short gets a newline first, so the damage stays on its own (skipped) line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_clean(dict(record, schema=record.get("schema", SCHEMA_VERSION))), allow_nan=False)
    with open(path, "ab+") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(line.encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())


def read(path) -> list[dict]:
    """Every record of a results file; damaged lines are warned about and skipped."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                warnings.warn(f"{path}:{number}: damaged line skipped ({exc.msg})", DamagedLineWarning, stacklevel=2)
                continue
            if not isinstance(rec, dict):
                warnings.warn(f"{path}:{number}: not a JSON object, skipped", DamagedLineWarning, stacklevel=2)
                continue
            if rec.get("schema") != SCHEMA_VERSION:
                warnings.warn(f"{path}:{number}: schema {rec.get('schema')!r}, this reader knows {SCHEMA_VERSION}; "
                              "skipped", DamagedLineWarning, stacklevel=2)
                continue
            records.append(rec)
    return records


def load(*paths):
    """A pandas DataFrame of the records of one or more files (one row per record)."""
    import pandas as pd

    records = [r for p in paths for r in read(p)]
    return pd.DataFrame.from_records(records)


def key(record: dict) -> tuple:
    """What identifies a measurement across runs (for comparisons)."""
    return tuple(record.get(k) for k in KEY_FIELDS)


def latest(records: Iterable[dict]) -> dict[tuple, dict]:
    """The last record of each key (runs append; the newest wins)."""
    out = {}
    for r in records:
        out[key(r)] = r
    return out
