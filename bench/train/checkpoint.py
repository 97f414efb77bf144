"""Atomic checkpoints and the random-number state of a process.

    bench.train.checkpoint.save(path, {"model": ..., "rng": bench.train.checkpoint.rng_state(), ...})
    state = bench.train.checkpoint.load(path)
    bench.train.checkpoint.set_rng_state(state["rng"])

``save`` writes to a temporary file in the same directory, fsyncs it, renames it over the
target (``os.replace`` is atomic within one file system) and fsyncs the directory, so a
process killed at any moment leaves either the previous checkpoint or the new one, never
a torn file. ``load`` reads with ``weights_only=False``: a checkpoint holds Python's and
NumPy's generator states besides tensors, and it is this project's own file.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def save(path, state: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def load(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint: expected a file at {str(path)!r}, found none")
    return torch.load(path, map_location=map_location, weights_only=False)


def rng_state() -> dict:
    """Every generator a training step may draw from: torch (CPU and CUDA), NumPy, Python."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
