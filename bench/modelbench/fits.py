"""Figures derived from model records: scaling slopes, break-even lengths against the
transformer, and the best mix chosen from a swap ablation."""

from __future__ import annotations

import math

import numpy as np

import backends
import models
from backends.mix import mix_id, parse_mix
from bench.modelbench.peers import MODEL_PEERS as PEERS


def fit_slope(lengths, times) -> dict:
    """Least-squares slope of log(time) against log(length) with its 95% interval."""
    from scipy import stats

    x, y = np.log(np.asarray(lengths, float)), np.log(np.asarray(times, float))
    if len(x) < 2:
        return {"slope": None, "ci95": None, "n": len(x)}
    fit = stats.linregress(x, y)
    if len(x) < 3:
        return {"slope": float(fit.slope), "ci95": None, "n": len(x)}
    half = stats.t.ppf(0.975, len(x) - 2) * fit.stderr
    return {"slope": float(fit.slope), "ci95": [float(fit.slope - half), float(fit.slope + half)], "n": len(x)}


def break_even(lengths, family_times, transformer_times) -> float | None:
    """The length at which the family's step becomes cheaper than the transformer's,
    interpolated in log-log space between the measured lengths; None if it never does
    within them (or already is at the shortest)."""
    pts = sorted(zip(lengths, family_times, transformer_times))
    for (l0, f0, t0), (l1, f1, t1) in zip(pts, pts[1:]):
        d0, d1 = math.log(f0 / t0), math.log(f1 / t1)
        if d0 > 0 >= d1:
            frac = d0 / (d0 - d1)
            return float(math.exp(math.log(l0) + frac * (math.log(l1) - math.log(l0))))
    if pts and pts[0][1] <= pts[0][2]:
        return float(pts[0][0])  # cheaper already at the shortest length measured
    return None


def scaling_fits(records) -> list[dict]:
    """One fit per (family, config, mix) over its role="scaling" records: the log-log
    slopes of step time and peak memory against T, and the break-even length against the
    transformer under the same mix (all-torch when the transformer was not run under it),
    interpolated between the lengths both were measured at. The fields of a
    kind="scaling_fit" record."""
    from collections import defaultdict

    pts = defaultdict(list)
    for r in records:
        if r.get("kind") == "model" and r.get("role") == "scaling" and r.get("status") == "ok":
            pts[(r["family"], r["config_id"], r["mix_id"])].append((r["case"]["T"], r["median_ns"], r.get("peak_mem_bytes")))
    fits = {}
    for key, p in pts.items():
        p.sort()
        lengths, times, mem = [t for t, _, _ in p], [m for _, m, _ in p], [b for _, _, b in p]
        fit = fit_slope(lengths, times)
        fits[key] = {"family": key[0], "config_id": key[1], "mix_id": key[2], "lengths": lengths, "times_ns": times,
                     "slope": fit["slope"], "slope_ci95": fit["ci95"],
                     "memory_slope": fit_slope(lengths, mem)["slope"] if all(mem) else None}
    base = {mix: f for (fam, _, mix), f in fits.items() if fam == "transformer"}
    for (fam, _, mix), f in fits.items():
        ref_mix = mix if mix in base else ("torch" if "torch" in base else None)
        f["reference_mix"], f["break_even_T"] = (None, None) if fam == "transformer" else (ref_mix, None)
        if fam != "transformer" and ref_mix is not None:
            ref = base[ref_mix]
            common = [t for t in f["lengths"] if t in ref["lengths"]]
            f["break_even_T"] = break_even(common, [f["times_ns"][f["lengths"].index(t)] for t in common],
                                           [ref["times_ns"][ref["lengths"].index(t)] for t in common])
    return sorted(fits.values(), key=lambda f: (f["family"], f["config_id"], f["mix_id"]))


def best_mix(swaps: list[dict]) -> dict:
    """From swap-ablation records (all-torch and single-op moves, one group): each op
    goes to the backend whose move made the step fastest, if its whole 95% interval
    says faster than all-torch; otherwise it stays on torch."""
    best: dict[str, tuple[float, str]] = {}
    for r in swaps:
        if r.get("status") != "ok" or r["mix_id"] in ("torch",) + PEERS:
            continue
        ci = r.get("speedup_vs_torch_ci95")
        if not ci or ci[0] <= 1.0:
            continue
        for op, backend in parse_mix(r["mix_id"]).items():
            if op != "default" and (op not in best or r["speedup_vs_torch"] > best[op][0]):
                best[op] = (r["speedup_vs_torch"], backend)
    return dict({"default": "torch"}, **{op: b for op, (_, b) in sorted(best.items())})


def swap_mixes(family: str, overrides: dict, device: str) -> list[str]:
    """All-torch and every op the config uses moved alone to every other backend that
    implements it (unavailable ones included: they are recorded as such)."""
    cfg = models.config(family, **overrides)
    out = ["torch"]
    for op in models.FAMILIES[family].ops_used(cfg):
        for name, b in backends.BACKENDS.items():
            if name != "torch" and op in b.op_names():
                out.append(mix_id({"default": "torch", op: name}))
    return out
