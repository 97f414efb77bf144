"""Command-line values, read alike by every command and by the trainer's options."""

from __future__ import annotations


def value(text: str):
    """A command-line value: true/false, none, int, float, else the text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_pairs(text: str | None, option: str) -> dict:
    """"d_model=64,causal=False" -> {"d_model": 64, "causal": False}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        key, sep, given = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option}: expected KEY=VALUE pairs separated by commas, got {text!r}")
        out[key.strip()] = value(given.strip())
    return out
