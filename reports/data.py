"""The results files of a report, read once and split by record kind.

Only ``bench.results.read`` parses the files: damaged lines are skipped and become notes
of the report (its header shows them) instead of warnings on the terminal. Each kind's
frame has every field of that kind as a column (``FIELDS``), so a record that lacks a
field reads as missing (NaN / None) rather than raising, and numeric fields are numbers
or NaN, never strings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench import results

KINDS = ("op", "model", "train", "routing", "drift", "equivalence")
TIMED = ("ok", "wrong_model")  # statuses that carry samples (bench.compare.TIMED)

COMMON = ["schema", "run_id", "time", "device", "dtype", "status", "error", "env"]
FIELDS = {
    "op": COMMON + ["group", "op", "backend", "variant", "case", "case_id", "mode", "samples_ns", "median_ns",
                    "q1_ns", "q3_ns", "iqr_ns", "rel_iqr", "reps", "steal_pct", "compile_seconds", "gate", "flops",
                    "bytes", "gflops", "gbps", "pct_flops", "pct_bandwidth", "pct_roofline", "roofline",
                    "speedup_vs_torch", "speedup_vs_torch_compile", "speedup_vs_torch_ci95",
                    "speedup_vs_torch_compile_ci95", "load"],
    "model": COMMON + ["family", "config_id", "config", "mix", "mix_id", "task", "case", "case_id", "role",
                       "samples_ns", "median_ns", "q1_ns", "q3_ns", "tokens_per_s", "prefill_tokens_per_s",
                       "decode_ns_per_token", "peak_mem_bytes", "op_breakdown", "compile_seconds", "params",
                       "speedup_vs_torch", "speedup_vs_torch_compile", "speedup_vs_torch_ci95",
                       "speedup_vs_torch_compile_ci95"],
    "train": COMMON + ["train_id", "family", "config_id", "mix_id", "task", "step", "split", "loss", "metric",
                       "value", "bits_per_byte", "tokens", "wall_s", "lr", "steps_per_s", "final", "baseline",
                       "anchors"],
    "routing": COMMON + ["family", "config_id", "layer", "weights", "tokens", "mask"],
    "drift": COMMON + ["op", "backend", "variant", "T", "error"],
    "equivalence": COMMON + ["family", "mix_id", "steps", "tolerance", "max_abs_diff", "ok", "losses_mix",
                             "losses_torch"],
}
NUMERIC = {"group", "median_ns", "q1_ns", "q3_ns", "iqr_ns", "rel_iqr", "reps", "steal_pct", "compile_seconds",
           "flops", "bytes", "gflops", "gbps", "pct_flops", "pct_bandwidth", "pct_roofline", "speedup_vs_torch",
           "speedup_vs_torch_compile", "tokens_per_s", "prefill_tokens_per_s", "decode_ns_per_token",
           "peak_mem_bytes", "params", "step", "loss", "value", "bits_per_byte", "tokens", "wall_s", "lr",
           "steps_per_s", "baseline", "layer", "T", "steps", "tolerance", "max_abs_diff"}


class NoRecords(ValueError):
    """The results files hold no record a report can show."""


def kind_of(record: dict) -> str:
    return record.get("kind") or "op"


@dataclass
class Results:
    paths: list[Path]
    records: list[dict]  # every record, in file order
    notes: list[str] = field(default_factory=list)  # damaged lines, unknown kinds

    def of(self, kind: str) -> list[dict]:
        return [r for r in self.records if kind_of(r) == kind]

    def frame(self, kind: str) -> pd.DataFrame:
        """One row per record of ``kind``, a column per field of that kind (missing -> NaN)."""
        frame = pd.DataFrame.from_records(self.of(kind))
        frame = frame.reindex(columns=list(dict.fromkeys(FIELDS[kind] + list(frame.columns))))
        for col in NUMERIC & set(frame.columns):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        if "status" in frame:
            frame["status"] = frame["status"].where(frame["status"].notna(), "unknown")
        for col in ("op", "backend", "dtype", "mode", "device", "case_id", "family", "mix_id", "config_id", "task"):
            if col in frame:
                frame[col] = frame[col].map(lambda v: "?" if v is None or (isinstance(v, float) and np.isnan(v))
                                            else str(v))
        return frame


def read(paths) -> Results:
    """Every record of ``paths``; raises FileNotFoundError for a missing file and
    NoRecords when none of the files holds a record."""
    paths = [Path(p) for p in paths]
    records, notes = [], []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"no such results file: {path}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", results.DamagedLineWarning)
            records += results.read(path)
        notes += [str(w.message) for w in caught if issubclass(w.category, results.DamagedLineWarning)]
    unknown = sorted({kind_of(r) for r in records} - set(KINDS))
    if unknown:
        notes.append(f"records of unknown kind {', '.join(map(repr, unknown))} are listed in the appendix only")
    if not records:
        what = ", ".join(map(str, paths))
        detail = f" ({len(notes)} damaged line(s) skipped)" if notes else ""
        raise NoRecords(f"{what}: no records to report{detail}; run `arsenal run` or `arsenal ops` first")
    return Results(paths, records, notes)
