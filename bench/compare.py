"""Compare two result sets: each measurement's change, with a significance test.

Records are matched on ``bench.results.KEY_FIELDS`` (op, backend, variant, case, dtype,
mode, device); within a set the last record of a key wins (runs append). For a pair
timed in both, ``ratio`` = median(new) / median(old) (> 1 is slower) and ``p`` is the
two-sided Mann-Whitney U test on the raw samples. The verdict:

- "slower" / "faster": p < alpha and the ratio is beyond 1 +- threshold;
- "unchanged": the ratio is within 1 +- threshold (significant or not: a change too small
  to matter);
- "ambiguous": too few samples, or a ratio beyond the threshold that the samples cannot
  tell apart from noise (p >= alpha), or a side timed while other work competed for the
  cores (its ``load.verdict`` is "disturbed", bench/load.py): such a figure can be many
  times off, so no verdict on it is more than "ambiguous".

Two absolute timings from different runs are exposed to whatever else the machine was
doing in each; an interleaved run (``arsenal ops``) is the way to measure a ratio. This
comparison is for tracking a result set over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy.stats import mannwhitneyu

from bench import results
from bench.load import disturbed

VERDICTS = ("faster", "slower", "unchanged", "ambiguous")
TIMED = ("ok", "wrong_model")  # statuses that carry samples


@dataclass(frozen=True)
class Change:
    key: tuple  # results.KEY_FIELDS
    verdict: str  # one of VERDICTS, or "added" / "removed" / "status"
    ratio: float | None = None  # median(new) / median(old)
    p: float | None = None
    old_median_ns: float | None = None
    new_median_ns: float | None = None
    note: str = ""

    @property
    def label(self) -> dict:
        return dict(zip(results.KEY_FIELDS, self.key))


def verdict(old: Iterable[float], new: Iterable[float], alpha: float = 0.01, threshold: float = 0.05,
            min_samples: int = 5) -> tuple[str, float, float | None]:
    """(verdict, ratio, p) for two sets of raw samples (see the module docstring)."""
    old, new = np.asarray(list(old), dtype=np.float64), np.asarray(list(new), dtype=np.float64)
    ratio = float(np.median(new) / np.median(old))
    if len(old) < min_samples or len(new) < min_samples:
        return "ambiguous", ratio, None
    p = float(mannwhitneyu(old, new, alternative="two-sided").pvalue)
    if abs(ratio - 1.0) <= threshold:
        return "unchanged", ratio, p
    if p < alpha:
        return ("slower" if ratio > 1.0 else "faster"), ratio, p
    return "ambiguous", ratio, p


def compare(old: list[dict], new: list[dict], alpha: float = 0.01, threshold: float = 0.05,
            min_samples: int = 5) -> list[Change]:
    """The changes from ``old`` records to ``new`` records, in the new set's order."""
    a, b = results.latest(old), results.latest(new)
    changes = []
    for key, rn in b.items():
        ro = a.get(key)
        if ro is None:
            changes.append(Change(key, "added", note=rn.get("status") or ""))
            continue
        if ro.get("status") not in TIMED or rn.get("status") not in TIMED:
            if ro.get("status") != rn.get("status"):
                changes.append(Change(key, "status", note=f"{ro.get('status')} -> {rn.get('status')}"))
            continue
        if not ro.get("samples_ns") or not rn.get("samples_ns"):  # refused on reading (bench.results.validate)
            changes.append(Change(key, "status", note="no valid samples on one side"))
            continue
        v, ratio, p = verdict(ro["samples_ns"], rn["samples_ns"], alpha, threshold, min_samples)
        sides = [side for side, r in (("old", ro), ("new", rn)) if disturbed(r.get("load"))]
        note = f"{' and '.join(sides)} disturbed by other work" if sides else ""
        changes.append(Change(key, "ambiguous" if sides else v, ratio, p, ro.get("median_ns"), rn.get("median_ns"),
                              note))
    changes += [Change(key, "removed", note=r.get("status") or "") for key, r in a.items() if key not in b]
    return changes
