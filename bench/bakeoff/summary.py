"""The final records of a bake-off as rows (the console's table; the report draws its own)."""

from __future__ import annotations

COLUMNS = ("cell", "mix", "steps", "stop", "tokens/s", "peak MiB", "metric", "value", "baseline", "status")


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def row(record: dict) -> tuple[str, ...]:
    """One final record as the COLUMNS."""
    peak = record.get("peak_mem_bytes")
    return (record.get("cell") or f"{record.get('family')}/{record.get('task')}", record.get("mix_id") or "-",
            _num(record.get("step"), "d"), record.get("stopped_by") or "-", _num(record.get("tokens_per_s"), ",.0f"),
            "-" if peak is None else f"{peak / 2**20:.1f}", record.get("metric") or "-",
            _num(record.get("value"), ".4g"), _num(record.get("baseline"), ".4g"),
            record.get("status") if record.get("status") == "ok" else f"error: {(record.get('error') or '')[:60]}")


def finals(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("final")]
