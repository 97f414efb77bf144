"""Cases of the op suites: how the harness reads them (suites/op_shapes.py says which).

A case is the dict that ``backends.OPS[op].make_inputs`` accepts (sizes plus options such
as ``bound`` or ``activation``), plus the harness's own keys (``HARNESS_KEYS``), which the
contracts never see: ``only_on`` names the one device type a case is meant for (a size
that only a GPU holds or finishes in reasonable time).
"""

from __future__ import annotations

HARNESS_KEYS = ("only_on",)  # case keys read by the harness, not by the contracts


def contract_case(case: dict) -> dict:
    """The case without the harness's keys: what make_inputs, flops and bytes see."""
    return {k: v for k, v in case.items() if k not in HARNESS_KEYS}


def fits_device(case: dict, device) -> str | None:
    """None, or why this case is not run on ``device``."""
    only = case.get("only_on")
    kind = getattr(device, "type", str(device)).split(":")[0]
    if only is not None and only != kind:
        return f"case {case_id(case)} is sized for {only} only, not {kind}"
    return None


def suite_cases(suite: str, op: str, device="cpu") -> list[dict]:
    """The suite's cases of ``op`` that run on ``device`` (harness keys removed)."""
    from suites.op_shapes import SUITES

    if suite not in SUITES:
        raise ValueError(f"unknown suite '{suite}'; suites are: {', '.join(SUITES)}")
    return [contract_case(c) for c in SUITES[suite].get(op, []) if fits_device(c, device) is None]


def case_id(case: dict) -> str:
    """A short stable label: "B4-T1024-D256", "N1024-D64-relu", "B16-T1024-D1024-bound1.0"."""
    parts = []
    for k, v in case.items():
        if k in HARNESS_KEYS:
            continue
        if isinstance(v, bool):
            parts.append(k if v else f"no_{k}")
        elif isinstance(v, str):
            parts.append(v)
        else:
            parts.append(f"{k}{v}")
    return "-".join(parts)
