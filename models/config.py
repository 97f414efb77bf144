"""Typed, frozen model configs and their validation.

Every family's config is a frozen dataclass deriving from ``ModelConfig`` (defaults
commented nanoGPT style). Values are checked on construction against the field's type
annotation and, where a field says so in its metadata, against its choices and bounds:

    rung: int = field(default=4, metadata=limits(0, 4))
    activation: str = field(default="relu", metadata=choices("relu", "sin", "log_relu"))

A bad value raises ValueError naming the family, the field, what was expected and what
was given. A family adds cross-field rules in ``check(self)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar


def invalid(family: str, name: str, expected: str, given: Any) -> ValueError:
    """The one error format of the model layer."""
    return ValueError(f"{family} config: field '{name}' expected {expected}, got {given!r}")


def choices(*values) -> dict:
    return {"choices": tuple(values)}


def limits(lo=None, hi=None) -> dict:
    return {"min": lo, "max": hi}


def _type_ok(value, hint) -> tuple[bool, str]:
    """(value matches hint, the hint in words); ints pass for floats, bools never for ints."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        results = [_type_ok(value, a) for a in typing.get_args(hint)]
        return any(ok for ok, _ in results), " or ".join(word for _, word in results)
    if hint is type(None):
        return value is None, "None"
    if origin is tuple:
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        ok = isinstance(value, tuple) and all(_type_ok(v, inner)[0] for v in value)
        return ok, f"a tuple of {_type_ok(None, inner)[1]}"
    if hint is Any:
        return True, "anything"
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool), "a float"
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), "an int"
    return isinstance(value, hint), f"a {hint.__name__}"


@dataclass(frozen=True)
class ModelConfig:
    """Fields every family shares. ``family`` names the registry entry."""

    family: ClassVar[str] = "?"

    vocab_size: int = field(default=256, metadata=limits(2))  # bytes by default
    d_model: int = field(default=64, metadata=limits(1))  # width of the residual stream
    n_layers: int = field(default=2, metadata=limits(1))  # residual layers
    causal: bool = True  # False: a bidirectional encoder (LRA classifiers); no chunking, no generation
    head: str = field(default="lm", metadata=choices("lm", "classify", "retrieval"))  # task head
    n_classes: int = field(default=2, metadata=limits(2))  # classes of the classify / retrieval head
    seed: int = 0  # weights are drawn from this seed: equal under every mix

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            ok, words = _type_ok(value, hints[f.name])
            if not ok:
                raise invalid(self.family, f.name, words, value)
            if hints[f.name] is float and isinstance(value, int):
                object.__setattr__(self, f.name, float(value))
            meta = f.metadata
            if "choices" in meta and value not in meta["choices"]:
                raise invalid(self.family, f.name, f"one of {', '.join(map(repr, meta['choices']))}", value)
            if value is not None and meta.get("min") is not None and value < meta["min"]:
                raise invalid(self.family, f.name, f">= {meta['min']}", value)
            if value is not None and meta.get("max") is not None and value > meta["max"]:
                raise invalid(self.family, f.name, f"<= {meta['max']}", value)
        self.check()

    def check(self) -> None:
        """Cross-field rules of a family (raise ``invalid(...)``)."""

    def overrides(self) -> dict:
        """The fields that differ from the family's defaults (a readable config id)."""
        default = type(self)()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), family=self.family)
