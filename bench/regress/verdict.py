"""The regression rule (bench/regress/__init__.py): one row per pair from the pooled
samples of both sides, and the confirmation by a second measurement."""

from __future__ import annotations

from dataclasses import dataclass, replace

FACTOR = 1.5  # fail past this slowdown (median head / median base) ...
ALPHA = 0.01  # ... when the Mann-Whitney test on the raw samples gives p below this


def key(pair: dict) -> str:
    """"op/case_id/mode/backend": a pair's name in rows and pooled results."""
    from bench.ops.cases import case_id

    return f"{pair['op']}/{case_id(pair['case'])}/{pair['mode']}/{pair['name']}"


@dataclass(frozen=True)
class Row:
    key: str
    verdict: str  # "slower" (fails), "faster", "unchanged", "ambiguous", "new", "error"
    ratio: float | None = None  # median head / median base
    p: float | None = None
    note: str = ""

    @property
    def fails(self) -> bool:
        return self.verdict in ("slower", "error")


def compare_sides(base: dict[str, dict], head: dict[str, dict], factor: float = FACTOR,
                  alpha: float = ALPHA) -> list[Row]:
    """One row per pair of ``head``, from one measurement."""
    from bench.compare import verdict

    rows = []
    for k, h in head.items():
        b = base.get(k, {"unavailable": "not measured on the base"})
        if "samples_ns" not in h:
            rows.append(Row(k, "error", note=h.get("error") or h.get("unavailable", "")))
        elif "samples_ns" not in b:
            rows.append(Row(k, "new", note=b.get("error") or b.get("unavailable", "")))
        else:
            v, ratio, p = verdict(b["samples_ns"], h["samples_ns"], alpha=alpha, threshold=factor - 1.0)
            per_round = round_ratios(b, h)
            note = "round ratios " + " ".join(f"{r:.2f}" for r in per_round)
            if v == "slower" and min(per_round, default=0.0) <= 1.0:
                v, note = "ambiguous", note + ": not slower in every round"
            rows.append(Row(k, v, ratio, p, note))
    return rows


def confirm(first: Row, second: Row) -> Row:
    """The verdict on a pair that failed once (``first``) and was measured again
    (``second``): it fails only if the second measurement fails too."""
    if second.fails:
        return replace(second, note=f"confirmed (first measurement {first.ratio:.2f}x); {second.note}")
    ratio = f"{second.ratio:.2f}x" if second.ratio is not None else second.verdict
    return replace(second, verdict="ambiguous",
                   note=f"{first.ratio:.2f}x slower at first, {ratio} on re-measure: not confirmed")


def round_ratios(base: dict, head: dict) -> list[float]:
    """median(head round r) / median(base round r) for the rounds both sides have."""
    import numpy as np

    return [float(np.median(h) / np.median(b)) for b, h in zip(base.get("rounds", []), head.get("rounds", []))]


def pool(into: dict[str, dict], more: dict[str, dict]) -> None:
    """Add one round's results to the pooled ones: samples concatenate, and each
    round's samples are kept apart too (``rounds``)."""
    for k, r in more.items():
        have = into.setdefault(k, {})
        if "samples_ns" in r and "samples_ns" in have:
            have["samples_ns"] = have["samples_ns"] + r["samples_ns"]
            have["rounds"].append(r["samples_ns"])
        elif "samples_ns" not in have:
            into[k] = dict(r)
            if "samples_ns" in r:
                into[k]["rounds"] = [r["samples_ns"]]
