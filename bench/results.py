"""One results format, as code: JSON lines, one record a line, every record of a declared
kind with declared fields (schema ``SCHEMA_VERSION``).

    import bench.results as results
    run_id, fingerprint = results.new_run_id(), bench.env.environment(device)
    rec = results.new_record("drift", run_id=run_id, env=fingerprint, op="parallel_scan", ...)
    results.append("out/results.jsonl", rec)          # flushed and fsynced: a killed run keeps it
    df = results.load("out/results.jsonl")             # a pandas DataFrame, one row per record
    clean, problems = results.validate(rec)            # what a reader (the report) trusts

``KINDS`` declares each kind: its fields with their JSON type and sane range, and the
fields without which a record cannot be placed (``required``). A new kind is one more
``Kind(...)`` entry in ``KINDS``; a new field of a kind is one more entry in its
``fields``. ``new_record`` stamps the schema version, the run id, the time and the
environment, and refuses a kind or field the schema does not declare (a typo in a
producer fails at once); it never judges values: a run must not die on what it measured.
``validate`` judges them on reading.

Time: one format, ISO 8601 in UTC to the second with a ``Z`` (``2026-11-25T12:00:00Z``,
``TIME_FORMAT``); a reader accepts any ISO 8601 time (older records wrote ``+00:00``) and
cleans it to this one.

A damaged line (a run killed mid-write, an edit) is reported with its line number and
skipped; it never stops a load. Values a reader cannot trust (a string among samples, a
timing of 0, a speedup of 1e300, a string with a lone surrogate) are named by
``validate``, field by field, and read as missing.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

SCHEMA_VERSION = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # ISO 8601, UTC, to the second
STATUSES = ("ok", "incorrect", "unavailable", "error", "wrong_model")
KEY_FIELDS = ("op", "backend", "variant", "case_id", "dtype", "mode", "device")
BASELINES = ("torch", "torch_compile")  # a record's speedup_vs_<name> fields: against these (bench/measure.py)
METRICS = {"accuracy": "higher", "bits_per_byte": "lower"}  # a train record's metric and which way is better


def beats(metric: str, value: float, baseline: float) -> bool:
    """Whether a train record's ``value`` of ``metric`` is better than ``baseline`` (the trivial figure)."""
    if metric not in METRICS:
        raise ValueError(f"results: metric expected one of {', '.join(METRICS)}, got {metric!r}")
    return value > baseline if METRICS[metric] == "higher" else value < baseline

# Sane ranges: what a measurement on any machine can be, so that a value outside is
# damage (an edited file, a unit slip, an overflow), not a result.
NS_MAX = 1e15  # about 11.6 days, in ns
SECONDS_MAX = 1e7  # about 16 weeks
SPEEDUP_RANGE = (1e-6, 1e6)  # a kernel a million times faster or slower than another is not a timing
RATE_MAX = 1e15  # tokens/s, GB/s, GFLOP/s, bytes, counts
PCT_MAX = 1e6  # percent of a ceiling (over 100: the contract's model is wrong, still drawn)
LOSS_MAX = 1e6


class DamagedLineWarning(UserWarning):
    """A results line that is not a JSON object was skipped."""


# ---------------------------------------------------------------------------
# fields and kinds

TYPE_NAMES = {str: "text", bool: "a flag", int: "an integer", float: "a number", list: "a list", dict: "an object"}
_SURROGATE = re.compile("[\ud800-\udfff]")
# json.dumps writes any surrogate as an escape: one search of the dump (C speed) tells
# whether a record needs the walk that names them (thousands of samples make a walk slow)
_ESCAPED_SURROGATE = re.compile(r"\\ud[89a-f]")


def _short(value) -> str:
    shown = repr(value)
    return f"{shown[:40]}{'...' if len(shown) > 40 else ''}"


def _what(value) -> str:
    """How a JSON value is named in a problem: its type, with a short repr."""
    return f"{TYPE_NAMES.get(type(value), type(value).__name__)} {_short(value)}"


class Invalid(Exception):
    """A value that does not fit its field (``why``); the field reads as missing."""


@dataclass(frozen=True)
class Field:
    """One field of a record: its JSON type and what values it may take. Any field may be
    null (None: not measured, or not applicable).

    type:    "text" | "number" | "integer" | "flag" | "time" | "list" | "object" | "any"
             (a tuple for a choice of types: ("list", "object"))
    lo, hi:  the sane range of a number (inclusive; ``above``: lo excluded)
    choices: the values a text may take
    items:   the field every element of a list fits (``nullable_items``: nulls allowed);
             ``length``: the list's exact length
    members: the known members of an object, each its own field; others are kept
    values:  the field every member value of an object fits (an object keyed by names)
    """

    type: str | tuple[str, ...]
    doc: str = ""
    lo: float | None = None
    hi: float | None = None
    above: bool = False
    choices: tuple = ()
    items: "Field | None" = None
    nullable_items: bool = False
    length: int | None = None
    members: Mapping[str, "Field"] | None = None
    values: "Field | None" = None

    def clean(self, value, path: str, problems: list) -> Any:
        """``value`` as a reader may trust it; raises Invalid when it fails as a whole.
        A failing member of an object is read as missing and appended to ``problems``."""
        if value is None:
            return None
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        errors = []
        for t in types:
            try:
                return getattr(self, f"_{t}")(value, path, problems)
            except Invalid as exc:
                errors.append(str(exc))
        raise Invalid(errors[0] if len(errors) == 1 else f"{_what(value)} where {' or '.join(types)} belongs")

    def _any(self, value, path, problems):
        return value

    def _text(self, value, path, problems):
        if not isinstance(value, str):
            raise Invalid(f"{_what(value)} where text belongs")
        if self.choices and value not in self.choices:
            raise Invalid(f"{value[:40]!r} is none of {', '.join(self.choices)}")
        return value

    def _flag(self, value, path, problems):
        if not isinstance(value, bool):
            raise Invalid(f"{_what(value)} where a flag (true/false) belongs")
        return value

    def _time(self, value, path, problems):
        if not isinstance(value, str):
            raise Invalid(f"{_what(value)} where an ISO 8601 time belongs")
        try:
            when = datetime.datetime.fromisoformat(value)
            if when.tzinfo is not None:  # a time without a zone was written in UTC (time.gmtime)
                when = when.astimezone(datetime.timezone.utc)
        except (ValueError, OverflowError):
            raise Invalid(f"{value[:40]!r} is not an ISO 8601 time") from None
        return when.strftime(TIME_FORMAT)

    def _number(self, value, path, problems):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"{_what(value)} where a number belongs")
        return self._in_range(value)

    def _integer(self, value, path, problems):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{_what(value)} where an integer belongs")
        return self._in_range(value)

    def _in_range(self, value):
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(f"{value} is not a finite number")
        low = self.lo is not None and (value <= self.lo if self.above else value < self.lo)
        if low or (self.hi is not None and value > self.hi):
            lo = "-inf" if self.lo is None else f"{self.lo:g}"
            hi = "inf" if self.hi is None else f"{self.hi:g}"
            raise Invalid(f"{_number_text(value)} is outside the sane range {'(' if self.above else '['}{lo}, {hi}]")
        return value

    def _list(self, value, path, problems):
        if not isinstance(value, list):
            raise Invalid(f"{_what(value)} where a list belongs")
        if self.length is not None and len(value) != self.length:
            raise Invalid(f"a list of {len(value)} where {self.length} values belong")
        if self.items is None:
            return value
        if self._plain_numbers(value):
            return value
        out = []
        for i, item in enumerate(value):
            if item is None and not self.nullable_items:
                raise Invalid(f"[{i}] is null")
            try:
                out.append(self.items.clean(item, f"{path}[{i}]", problems))
            except Invalid as exc:
                raise Invalid(f"[{i}]: {exc}") from None  # one bad element: the list is read as missing
        return out

    def _plain_numbers(self, value: list) -> bool:
        """A list of numbers, all finite and in the items' range, judged in one pass (a
        record's samples run to thousands); False sends it to the element by element
        check, which names the element that fails."""
        items = self.items
        if items.type not in ("number", "integer") or not value:
            return False
        kinds = (int,) if items.type == "integer" else (int, float)
        if not all(type(v) in kinds and (type(v) is int or math.isfinite(v)) for v in value):
            return False
        lo, hi = min(value), max(value)
        return not ((items.lo is not None and (lo <= items.lo if items.above else lo < items.lo))
                    or (items.hi is not None and hi > items.hi))

    def _object(self, value, path, problems):
        if not isinstance(value, dict):
            raise Invalid(f"{_what(value)} where an object belongs")
        out = {}
        for name, member in value.items():
            spec = (self.members or {}).get(name, self.values)
            if spec is None:
                out[name] = member
                continue
            try:
                out[name] = spec.clean(member, f"{path}.{name}", problems)
            except Invalid as exc:
                problems.append(Problem(f"{path}.{name}", f"{exc}; read as missing"))
                out[name] = None
        return out


def _number_text(value) -> str:
    try:
        return f"{float(value):g}"
    except OverflowError:  # an integer beyond every float
        return f"an integer of {len(str(abs(value)))} digits"


def text(doc: str = "", choices: tuple = ()) -> Field:
    return Field("text", doc, choices=choices)


def number(doc: str = "", lo: float | None = None, hi: float | None = None, above: bool = False) -> Field:
    return Field("number", doc, lo=lo, hi=hi, above=above)


def integer(doc: str = "", lo: float | None = 0, hi: float | None = RATE_MAX) -> Field:
    return Field("integer", doc, lo=lo, hi=hi)


def flag(doc: str = "") -> Field:
    return Field("flag", doc)


def listof(items: Field, doc: str = "", length: int | None = None, nullable_items: bool = False) -> Field:
    return Field("list", doc, items=items, length=length, nullable_items=nullable_items)


def obj(doc: str = "", members: Mapping[str, Field] | None = None, values: Field | None = None) -> Field:
    return Field("object", doc, members=members, values=values)


def anything(doc: str = "") -> Field:
    return Field("any", doc)


@dataclass(frozen=True)
class Problem:
    """What is wrong with a field (a dotted path into the record) of one record."""

    field: str
    why: str

    def __str__(self) -> str:
        return f"{self.field}: {self.why}"


@dataclass(frozen=True)
class Kind:
    """A record kind: its own fields (the common ones are added), and the fields without
    which a record of it cannot be placed in any table or figure (a record lacking one
    is dropped)."""

    name: str
    doc: str
    fields: Mapping[str, Field]
    required: tuple[str, ...] = ()

    def all_fields(self) -> dict[str, Field]:
        return {**COMMON, **self.fields}


def _ns(doc: str, above: bool = False) -> Field:
    return number(doc, 0.0, NS_MAX, above=above)


def _speedup(doc: str) -> Field:
    return number(doc, *SPEEDUP_RANGE)


def _pair(item: Field, doc: str) -> Field:
    return listof(item, doc, length=2)


SCALAR = Field(("text", "number", "flag"), "a text, number or flag")
ENV = obj("bench.env.environment(): where the record was measured", members={
    "git": obj("the checkout", members={"commit": text("the commit's sha"),
                                        "dirty": flag("tracked files differed from the commit")}),
    "packages": obj("{package: version}", values=text()),
    "platform": text(), "cpu": text("the CPU model"), "cpu_count": integer("logical CPUs", 1, 1e6),
    "gpu": text("the GPU model"),
    "threads": obj("{runtime: thread count or setting}", values=SCALAR),
    "loadavg": listof(number(lo=0.0, hi=1e6), "1, 5 and 15 minute load averages"),
    "runtime": obj("{environment variable: value} of the runtime settings", values=SCALAR),
    "malloc": obj("glibc malloc thresholds", values=SCALAR),
})
LOAD = obj("contention while the candidate was timed (bench/load.py)", members={
    "cpu_share": number("process CPU / (wall x threads)", 0.0, 1e3),
    "thread_share": number("the timing thread's CPU / wall", 0.0, 1e3),
    "runnable": number("other runnable tasks, mean", 0.0, 1e6),
    "cores": integer(lo=1, hi=1e6), "threads": integer(lo=1, hi=1e6),
    "verdict": text(choices=("quiet", "disturbed")),
    "remeasured": flag("timed again after a disturbed first try"),
})
CASE = obj("the case's sizes ({B, T, D, ...}) and options", values=SCALAR)
COMMON = {
    "schema": integer("the results format's version", SCHEMA_VERSION, SCHEMA_VERSION),
    "kind": text("the record kind (absent: op)"),
    "run_id": text("the run (one process's records of one command)"),
    "time": Field("time", "when it was recorded (TIME_FORMAT)"),
    "device": text("cpu, cuda, cuda:1, ..."),
    "dtype": text("float32, bfloat16, ..."),
    "status": text("ok, or why not (error: the reason)", choices=STATUSES + ("nonfinite",)),
    "error": text("why the status is not ok"),
    "env": ENV,
}
TIMING = {
    "samples_ns": listof(_ns("a sample"), "raw samples, one per timed call (or step)"),
    "host_ns": listof(_ns("a sample"), "GPU: the host time of each call"),
    "median_ns": _ns("the median sample (a timing of 0 means the clock missed the call)", above=True),
    "q1_ns": _ns("first quartile"), "q3_ns": _ns("third quartile"), "iqr_ns": _ns("q3 - q1"),
    "rel_iqr": number("iqr / median", 0.0, PCT_MAX),
    "reps": integer("samples"), "rounds": integer("interleaved rounds"), "stop_reason": text(),
    "steal_pct": number("CPU time the hypervisor gave away while timed, %", 0.0, 100.0),
    "load": LOAD,
    "compile_seconds": number("first call (JIT, autotune, compile) minus a steady one", -SECONDS_MAX, SECONDS_MAX),
    "gate": anything("the correctness gate's record (cases, errors, problems, seconds)"),
    "speedup_vs_torch": _speedup("torch's median / this median, in one interleaved group"),
    "speedup_vs_torch_compile": _speedup("torch_compile's median / this median"),
    "speedup_vs_torch_ci95": _pair(_speedup(""), "bootstrap 95% interval [lo, hi] of the speedup"),
    "speedup_vs_torch_compile_ci95": _pair(_speedup(""), "bootstrap 95% interval [lo, hi]"),
}
SAMPLES = listof(_ns("a sample"))

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("op", "one op x backend x case x dtype x mode timing, interleaved in its group (bench/ops/runner.py)", {
        **TIMING,
        "group": integer("the interleaved group: its records were timed together"),
        "op": text("the op (backends/ops/<op>.py)"),
        "backend": text("a registry backend or a peer (torch_compile, fla, ...)"),
        "variant": text("None unless the implementation has several"),
        "case": CASE, "case_id": text(), "mode": text("forward, forward_backward, ..."),
        "host_median_ns": _ns("GPU: median host time of a call"),
        "flops": number("the contract's flops", 0.0, 1e21), "bytes": number("the contract's bytes", 0.0, 1e21),
        "gflops": number(lo=0.0, hi=RATE_MAX), "gbps": number(lo=0.0, hi=RATE_MAX),
        "pct_flops": number(lo=0.0, hi=PCT_MAX), "pct_bandwidth": number(lo=0.0, hi=PCT_MAX),
        "pct_roofline": number("max of the two percentages", 0.0, PCT_MAX),
        "roofline": obj("the measured ceilings it was set against", members={
            "fingerprint": text("the machine (bench/roofline.py)"), "gbps": number(lo=0.0, hi=RATE_MAX, above=True),
            "gflops": number(lo=0.0, hi=RATE_MAX, above=True), "bound": text(choices=("memory", "compute"))}),
    }, required=("op", "backend")),
    Kind("model", "one model x mix x shape measurement (bench/modelbench/bench.py)", {
        **TIMING,
        "group": integer(), "family": text(), "config_id": text(), "config": obj("the model config"),
        "mix": obj("{op or default: backend}", values=text()),
        "mix_id": text("torch, numba_cpu, torch+parallel_scan=numba_cpu, or a peer (torch_compile)"),
        "backend": text("the mix id again (the op records' column)"), "task": text(),
        "case": obj("{B, T}", members={"B": integer(lo=1), "T": integer(lo=1)}, values=SCALAR),
        "case_id": text(), "role": text(choices=("grid", "scaling", "swap", "best")),
        "tokens_per_s": number("training tokens/s", 0.0, RATE_MAX),
        "prefill_tokens_per_s": number(lo=0.0, hi=RATE_MAX),
        "decode_ns_per_token": _ns("per-token decode latency"),
        "peak_mem_bytes": number(lo=0.0, hi=RATE_MAX),
        "op_breakdown": obj("{op or rest: ns per step}", values=_ns("ns per step")),
        "breakdown_step_ns": _ns("the step the breakdown clocked: its rows' sum"),
        "breakdown_method": text("op_clock (CPU) or torch.profiler (CUDA)"),
        "breakdown_error": text("why the breakdown or peak memory is missing (records before the metric registry)"),
        "metric_errors": obj("{metric: why it is missing} (bench/modelbench/metrics.py)", values=text()),
        "thinking": obj("stackformer: steps per token and stack mass (models.stackformer.thinking_summary)",
                        values=Field(("number", "list"), "a figure, or the steps histogram")),
        "params": integer("parameters"),
        "compile_scope": text("torch_compile: the family's step compiled once, or the whole model",
                              choices=("step", "model")),
        "process_peak_rss_bytes": number("peak resident set of the measuring process (an isolated group's own)",
                                         0.0, RATE_MAX),
    }, required=("family", "mix_id")),
    Kind("scaling_fit", "one model x mix over a scaling grid's lengths (bench/modelbench/fits.py scaling_fits)", {
        "family": text(), "config_id": text(), "mix_id": text(),
        "lengths": listof(integer(lo=1)), "times_ns": listof(_ns("median step")),
        "slope": number("log-log slope of step time against T", -100.0, 100.0),
        "slope_ci95": _pair(number(lo=-100.0, hi=100.0), "its 95% t interval"),
        "memory_slope": number("log-log slope of peak memory against T", -100.0, 100.0),
        "break_even_T": number("the length from which the family's step is cheaper than the transformer's", 0.0, 1e9),
        "reference_mix": text("the transformer's mix it is compared with"),
    }, required=("family", "mix_id")),
    Kind("train", "one evaluation point of a training run (bench/train/run.py)", {
        "train_id": text(), "family": text(), "config_id": text(), "config": obj("the model config"),
        "train_config": obj("the training recipe: TrainConfig.RECIPE's fields and the processes (DDP)"),
        "mix_id": text(), "task": text(), "metric": text("which way is better: METRICS", choices=tuple(METRICS)),
        "step": integer(), "split": text(choices=("train", "val", "test")),
        "loss": number("nats per target", 0.0, LOSS_MAX), "value": number("the metric's value", 0.0, LOSS_MAX),
        "bits_per_byte": number(lo=0.0, hi=LOSS_MAX), "tokens": integer(), "wall_s": number(lo=0.0, hi=SECONDS_MAX),
        "lr": number(lo=0.0, hi=1e6), "steps_per_s": number(lo=0.0, hi=RATE_MAX),
        "final": flag("the run's last record"), "baseline": number("the trivial figure", 0.0, LOSS_MAX),
        "anchors": Field(("list", "object"), "published figures (suites/tasks/anchors.py)"),
        "sample": text("generated text (prompt|continuation)"),
        "thinking": obj("stackformer: steps per token and stack mass over the evaluated tokens",
                        values=Field(("number", "list"), "a figure, or the steps histogram")),
        "perplexity": number("word-level LMs: exp of the loss per token", 0.0, 1e300),
        "seed": integer("the run's seed (data order, weights)"),
        "budget_minutes": number("training wall clock allowed (None: steps only)", 0.0, SECONDS_MAX),
        "budget_steps": integer("the most steps allowed", 1, 1e12),
        "stopped_by": text("which budget ended the run", choices=("steps", "minutes")),
        "tokens_per_s": number("training tokens over training wall clock", 0.0, RATE_MAX),
        "peak_mem_bytes": number("peak bytes of one training forward+backward (bench/bakeoff)", 0.0, RATE_MAX),
        "grid": text("the bake-off grid (suites/bakeoff.py)"), "cell": text("the bake-off cell's id"),
        "task_args": obj("the task's config overrides"), "mix_source": text("how the bake-off chose the mix"),
    }, required=("train_id",)),
    Kind("routing", "NSM routing weights of one example (models/nsm.py routing_records)", {
        "group": integer(), "family": text(), "config_id": text(), "layer": integer(hi=1e6),
        "weights": listof(listof(number(lo=0.0, hi=1.0)), "[T][S] token x state weights"),
        "tokens": listof(integer(lo=None, hi=None), "[T]"), "mask": listof(flag(), "[T]"),
        "communication": listof(listof(listof(number(lo=0.0, hi=1.0))),
                                "[H][S][S] the communication attention among the states, mean over the chunks"),
    }, required=("weights",)),
    Kind("drift", "an op's forward error against float64 at one T (bench/ops/drift.py)", {
        "op": text(), "backend": text(), "variant": text(), "T": integer(lo=1),
        "error": number("max error relative to the reference's scale", 0.0),
        "errors": obj("{output: error}", values=number(lo=0.0)), "case": CASE,
        "oracle": text(choices=("reference", "torch-float64")),
        "seconds": number("the backend's forward", 0.0, SECONDS_MAX),
    }, required=("op", "backend")),
    Kind("equivalence", "the same seed trained under a mix and all-torch (bench/modelbench/equivalence.py)", {
        "family": text(), "config_id": text(), "mix_id": text(), "steps": integer(), "case": CASE,
        "tolerance": number(lo=0.0, hi=LOSS_MAX), "max_abs_diff": number(lo=0.0), "final_diff": number(lo=0.0),
        "noise_floor": number(lo=0.0), "noise_factor": number(lo=0.0, hi=1e6), "ok": flag(),
        "agreement": text(choices=("tolerance", "noise", "differs", "diverged")),
        "losses_mix": listof(number(), "per step (null: not finite)", nullable_items=True),
        "losses_torch": listof(number(), nullable_items=True), "losses_floor": listof(number(), nullable_items=True),
        "seconds": number(lo=0.0, hi=SECONDS_MAX),
    }, required=("family", "mix_id")),
    Kind("overhead", "the per-call cost of the argument checks (bench/ops/overhead.py)", {
        "op": text(), "backend": text(), "case": CASE, "case_id": text(), "mode": text(),
        "raw_ns": _ns("median raw call", above=True), "checked_ns": _ns("median checked call", above=True),
        "checks_ns": _ns("median checked call around a no-op kernel"),
        "overhead_ns": number("checked - raw", -NS_MAX, NS_MAX),
        "overhead_ci95_ns": _pair(number(lo=-NS_MAX, hi=NS_MAX), "bootstrap 95% interval [lo, hi]"),
        "raw_samples_ns": SAMPLES, "checked_samples_ns": SAMPLES, "checks_samples_ns": SAMPLES,
        "steal_pct": number(lo=0.0, hi=100.0),
    }, required=("op", "backend")),
    Kind("gpu_compile", "one kernel specialisation compiled for one chip without a GPU (bench/gpu_compile)", {
        "op": text("the first op whose launcher launches the kernel"), "ops": listof(text(), "every such op"),
        "backend": text(choices=("triton", "numba_cuda")), "kernel": text("the kernel function"),
        "module": text("its module"), "direction": text(choices=("forward", "backward")),
        "dtypes": listof(text(), "input dtypes of the calls that launch it"),
        "chip": text("sm_90, sm_80"), "gpu": text("H100, A100"),
        "specialization": text("what the launcher fixed: constexprs, num_warps, argument types"),
        "uses": listof(text(), "op direction dtype source case of each call that launches it"),
        "registers": integer("per thread (ptxas -v)", 0, 255), "spill_stores": integer("bytes"),
        "spill_loads": integer("bytes"), "stack_bytes": integer(), "static_smem_bytes": integer(),
        "dynamic_smem_bytes": integer("set at launch"), "threads_per_block": integer(lo=1, hi=1024),
        "grid": listof(integer(lo=1), "the largest grid its calls launch"),
        "blocks_per_sm": integer(hi=32), "warps_per_sm": integer(hi=64),
        "occupancy": number("resident warps / 64", 0.0, 1.0),
        "limiter": text(choices=("registers", "shared memory", "threads", "blocks")),
        "launch_problems": listof(text(), "every chip limit the launch exceeds"),
        "spill_accepted": text("why the op's contract accepts a spill"),
        "compile_seconds": number("compile and assemble (0 when cached)", 0.0, SECONDS_MAX),
    }, required=("kernel", "chip")),
)}


def kind_of(record: dict) -> str:
    """The kind of a record (an op timing has no ``kind`` field)."""
    return record.get("kind") or "op"


# ---------------------------------------------------------------------------
# writing


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def now() -> str:
    """The current time in the one format (TIME_FORMAT)."""
    return time.strftime(TIME_FORMAT, time.gmtime())


STAMPED = ("schema", "kind", "run_id", "time", "env")  # what new_record writes itself


def new_record(kind: str, *, run_id: str, env: dict | None, **fields) -> dict:
    """A record of ``kind`` stamped with the schema version, ``run_id``, the time (now, in
    TIME_FORMAT) and ``env`` (bench.env.environment(device), computed once per run by the
    caller), then ``fields``. Raises ValueError for a kind the schema does not declare,
    TypeError for a field it does not declare for the kind or one that is stamped."""
    if kind not in KINDS:
        raise ValueError(f"results.new_record: kind {kind!r} is not declared; declared: {', '.join(KINDS)}")
    stamped = sorted(set(fields) & set(STAMPED))
    unknown = sorted(set(fields) - set(KINDS[kind].all_fields()))
    if stamped or unknown:
        raise TypeError(f"results.new_record: kind {kind!r}: "
                        + (f"{', '.join(stamped)} stamped here, not given; " if stamped else "")
                        + (f"no declared field {', '.join(unknown)} (add it to bench.results.KINDS[{kind!r}])"
                           if unknown else ""))
    return {"schema": SCHEMA_VERSION, "kind": kind, "run_id": run_id, "time": now(), **fields, "env": env}


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


# ---------------------------------------------------------------------------
# reading


def lines(path) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, record, None) for each JSON object of the file, (line number, None,
    why) for a line that is not one. Blank lines are passed over."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"damaged line skipped ({exc.msg})"
                continue
            except (ValueError, RecursionError) as exc:  # JSON that Python cannot hold: a 5,000-digit
                yield number, None, f"line skipped: {type(exc).__name__}: {str(exc)[:80]}"  # integer, deep nesting
                continue
            if not isinstance(rec, dict):
                yield number, None, "not a JSON object, skipped"
                continue
            yield number, rec, None


def _other_schema(record: dict) -> str | None:
    if record.get("schema") != SCHEMA_VERSION:
        return f"schema {_short(record.get('schema'))}, this reader knows {SCHEMA_VERSION}; skipped"
    return None


def _readable(path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of every line that holds a record of this schema; damaged
    lines and records of another schema version are warned about and skipped."""
    for number, rec, why in lines(path):
        why = why or _other_schema(rec)
        if why:
            warnings.warn(f"{path}:{number}: {why}", DamagedLineWarning, stacklevel=3)
            continue
        yield number, rec


def read(path) -> list[dict]:
    """Every record of a results file, as written; damaged lines and records of another
    schema version are warned about (DamagedLineWarning) and skipped."""
    return [rec for _, rec in _readable(path)]


def read_valid(path) -> list[dict]:
    """The records of a results file that ``validate`` keeps, each cleaned (a field that
    fails is read as missing); every line skipped or value refused is warned about
    (DamagedLineWarning) as file:line: field: why. What every reader but the report uses
    (the report keeps the problems for its header)."""
    records = []
    for number, rec in _readable(path):
        clean, problems = validate(rec)
        for problem in problems:
            warnings.warn(f"{path}:{number}: {problem}", DamagedLineWarning, stacklevel=2)
        if clean is not None:
            records.append(clean)
    return records


def load(*paths):
    """A pandas DataFrame of the records of one or more files (one row per record)."""
    import pandas as pd

    records = [r for p in paths for r in read(p)]
    return pd.DataFrame.from_records(records)


def _text_safe(value):
    """Lone surrogates (JSON escapes such as \\ud800 that are no character) replaced by
    U+FFFD in every string and key: UTF-8 cannot encode them (pyarrow, the page)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_text_safe(k): _text_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text_safe(v) for v in value]
    return value


def validate(record) -> tuple[dict | None, list[Problem]]:
    """(the record as a reader may trust it, the problems found). A field that fails its
    declaration reads as missing (None) and is named; a string holding a lone surrogate
    has it replaced by U+FFFD and is named. The record itself is dropped (None) when it
    is not an object, is of another schema version, has a kind that is not text, or
    lacks a field its kind requires. A kind the schema does not declare keeps its own
    fields as they are (the common ones are checked). Never raises."""
    if not isinstance(record, dict):
        return None, [Problem("record", f"{_what(record)} where an object belongs; record dropped")]
    if _other_schema(record):
        return None, [Problem("schema", f"{_short(record.get('schema'))} where this reader knows {SCHEMA_VERSION}; "
                                        "record dropped")]
    try:
        problems = [Problem(k, "a lone surrogate (no Unicode character) replaced by U+FFFD")
                    for k in (_surrogate_paths(record, "") if _may_hold_surrogates(record) else ())]
        safe = _text_safe(record) if problems else record
    except RecursionError:  # only a record nested about as deep as json.loads allows
        return None, [Problem("record", "nested too deep to check; record dropped")]
    kind = safe.get("kind")
    if kind is not None and not isinstance(kind, str):
        return None, problems + [Problem("kind", f"{_what(kind)} where text belongs; record dropped")]
    declared = KINDS.get(kind_of(safe))
    fields = declared.all_fields() if declared else COMMON
    clean = {}
    for name, value in safe.items():
        spec = fields.get(name)
        if spec is None:
            clean[name] = value
            continue
        try:
            clean[name] = spec.clean(value, name, problems)
        except Invalid as exc:
            problems.append(Problem(name, f"{exc}; read as missing"))
            clean[name] = None
    missing = [f for f in (declared.required if declared else ()) if clean.get(f) is None]
    if missing:
        return None, problems + [Problem(", ".join(missing), f"required by kind {kind_of(safe)!r} and missing; "
                                                             "record dropped")]
    if isinstance(clean.get("mix_id"), str):
        clean["mix_id"] = legacy_mix_id(clean["mix_id"])
    return clean, problems


def legacy_mix_id(text: str) -> str:
    """A mix id as ``backends.mix.mix_id`` writes it: records written before the one
    vocabulary (the trainer's, until 2026-12) listed the moves in the ops' contract order,
    ``torch+micro_mlp=numba_cpu+logspace_matvec=numba_cpu``; the canonical id sorts them by
    op name. Text only (readers import no backend); a test checks it against mix_id."""
    default, *moves = text.split("+")
    if not moves or not all("=" in m for m in moves):
        return text
    return "+".join([default, *sorted(moves)])


def _may_hold_surrogates(record: dict) -> bool:
    try:
        return bool(_ESCAPED_SURROGATE.search(json.dumps(record)))
    except (TypeError, ValueError, RecursionError):  # not JSON (a record built in Python): walk it
        return True


def _surrogate_paths(value, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if _SURROGATE.search(value):
            yield path or "record"
    elif isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if isinstance(k, str) and _SURROGATE.search(k):
                yield _SURROGATE.sub("\ufffd", where)
            else:
                yield from _surrogate_paths(v, _SURROGATE.sub("\ufffd", where))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _surrogate_paths(v, f"{path}[{i}]")


def key(record: dict) -> tuple:
    """What identifies a measurement across runs (for comparisons)."""
    return tuple(record.get(k) for k in KEY_FIELDS)


def latest(records: Iterable[dict]) -> dict[tuple, dict]:
    """The last record of each key (runs append; the newest wins)."""
    out = {}
    for r in records:
        out[key(r)] = r
    return out
