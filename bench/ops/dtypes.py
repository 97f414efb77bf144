"""Dtypes at the boundaries: names ("float32") in result files, on the command line and in
the regression workers' messages; torch dtypes everywhere inside bench/. These two
functions are the only conversion (torch is imported on first use: the CLI's parser
reads ``NAMES`` before anything heavy is imported)."""

from __future__ import annotations

NAMES = ("float32", "float64", "bfloat16")  # the order of help texts and listings


def to_torch(name: str):
    """"float32" -> torch.float32; a ValueError naming the valid names otherwise."""
    from backends.registry import DTYPES_BY_NAME

    if name not in DTYPES_BY_NAME:
        raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(NAMES)}")
    return DTYPES_BY_NAME[name]


def name(dtype) -> str:
    """torch.float32 -> "float32"."""
    from backends.registry import DTYPE_NAMES

    return DTYPE_NAMES[dtype]
