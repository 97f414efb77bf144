"""Task configs: frozen dataclasses whose fields are checked against their annotations.

A family declares its config as a frozen dataclass; a field that needs more than a type
check uses `spec(default, lo=, hi=, choices=)`. `build` applies the overrides and raises
ValueError naming the task, the field, what was expected and what was given.
"""

from __future__ import annotations

import dataclasses
import types
import typing


def spec(default, *, lo=None, hi=None, choices=None):
    """A config field whose value must lie in [lo, hi] or be one of `choices`."""
    return dataclasses.field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices})


def bad(task: str, field: str, expected: str, given) -> ValueError:
    return ValueError(f"task {task!r}: field {field!r} expects {expected}, got {given!r}")


def _type_name(t) -> str:
    return "None" if t is type(None) else t.__name__


def _check(task: str, f: dataclasses.Field, hint, value) -> None:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    # bool is an int to Python; a flag given where a number belongs is a mistake
    fits = any(
        (t is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (t is int and isinstance(value, int) and not isinstance(value, bool))
        or (t not in (int, float) and isinstance(value, t))
        for t in allowed
    )
    if not fits:
        raise bad(task, f.name, " or ".join(_type_name(t) for t in allowed), value)
    if value is None:
        return
    meta = f.metadata
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise bad(task, f.name, "one of " + ", ".join(map(repr, meta["choices"])), value)
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        where = f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"in [{lo}, {hi}]"
        raise bad(task, f.name, f"{_type_name(type(value))} {where}", value)


def build(task: str, cls, overrides: dict):
    """cls(**overrides) after checking every field name and value."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"task {task!r}: unknown field {unknown[0]!r}; valid fields: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    for name, value in overrides.items():
        _check(task, fields[name], hints[name], value)
    return cls(**overrides)
