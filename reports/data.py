"""The results files of a report, read once, validated once and split by record kind.

Only ``bench.results`` parses the files and judges their records (``results.validate``,
against the schema ``results.KINDS``): a damaged line or a record that cannot be placed
is skipped, a field that fails its declaration (a string among samples, a timing of 0, a
list where an id belongs, a speedup of 1e300) is read as missing, and each becomes a
note ``file:line: field: why`` that the header shows. So every section sees fields of
their declared types and ranges. Each kind's frame has every declared field of that kind
as a column, so a record that lacks a field reads as missing (NaN / None) rather than
raising, and numeric fields are numbers or NaN, never strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench import results
from bench.results import kind_of

# the kinds a section draws
KINDS = ("op", "model", "train", "routing", "drift", "equivalence", "scaling_fit", "gpu_compile", "overhead")
TIMED = ("ok", "wrong_model")  # statuses that carry samples (bench.compare.TIMED)
NOTES_LISTED = 60  # notes named one by one; the rest are counted

FIELDS = {k: list(results.KINDS[k].all_fields()) for k in KINDS}
# per kind: a field's type is its kind's ("error" is a number in drift records, a reason elsewhere)
NUMERIC = {k: {name for name, f in results.KINDS[k].all_fields().items() if f.type in ("number", "integer")}
           for k in KINDS}
LABELS = ("op", "backend", "dtype", "mode", "device", "case_id", "family", "mix_id", "config_id", "task")


class NoRecords(ValueError):
    """The results files hold no record a report can show."""


@dataclass
class Results:
    paths: list[Path]
    records: list[dict]  # every record that passed validation (cleaned), in file order
    notes: list[str] = field(default_factory=list)  # damaged lines, refused values, kinds without a section
    dropped: int = 0  # records skipped: damaged lines and records that cannot be placed
    missing: int = 0  # fields of kept records read as missing (or repaired)

    def of(self, kind: str) -> list[dict]:
        return [r for r in self.records if kind_of(r) == kind]

    def frame(self, kind: str) -> pd.DataFrame:
        """One row per record of ``kind``, a column per field of that kind (missing -> NaN)."""
        frame = pd.DataFrame.from_records(self.of(kind))
        frame = frame.reindex(columns=list(dict.fromkeys(FIELDS[kind] + list(frame.columns))))
        for col in NUMERIC.get(kind, set()) & set(frame.columns):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        if "status" in frame:
            frame["status"] = frame["status"].where(frame["status"].notna(), "unknown")
        for col in LABELS:
            if col in frame:
                frame[col] = frame[col].map(lambda v: "?" if v is None or (isinstance(v, float) and np.isnan(v))
                                            else str(v))
        return frame


def listed(notes: list[str], limit: int = NOTES_LISTED) -> list[str]:
    """The first ``limit`` notes, and a count of the others (a file with thousands of bad
    records must not bury the page)."""
    if len(notes) <= limit:
        return list(notes)
    return notes[:limit] + [f"... and {len(notes) - limit:,} more notes of the same kind (not listed)"]


def read(paths) -> Results:
    """Every record of ``paths``, validated; raises FileNotFoundError for a missing file
    and NoRecords when none of the files holds a record."""
    paths = [Path(p) for p in paths]
    records, notes, dropped, missing = [], [], 0, 0
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"no such results file: {path}")
        for number, rec, why in results.lines(path):
            if why:
                notes.append(f"{path}:{number}: {why}")
                dropped += 1
                continue
            clean, problems = results.validate(rec)
            notes += [f"{path}:{number}: {p}" for p in problems]
            if clean is None:
                dropped += 1
            else:
                missing += len(problems)
                records.append(clean)
    sectionless = list(dict.fromkeys(kind_of(r) for r in records if kind_of(r) not in KINDS))
    if sectionless:
        notes.append(f"records of kind {', '.join(map(repr, sectionless))} have no section: they are listed in "
                     "the appendix only")
    if not records:
        what = ", ".join(map(str, paths))
        detail = f" ({dropped} damaged or refused line(s) skipped)" if dropped else ""
        raise NoRecords(f"{what}: no records to report{detail}; run `arsenal run` or `arsenal ops` first")
    return Results(paths, records, notes, dropped, missing)
