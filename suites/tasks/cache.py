"""Where task data lives on disk, and writes that are atomic.

Everything goes under `ARSENAL_DATA_DIR` or, without it, `~/.cache/arsenal/data/`:
  packages/   archives fetched by a package client, pinned by sha256 (packages.py)
  arrays/     generated or parsed examples as .npz, one file per task config and split
  tokenizers/ trained BPE tokenizers and the seeded tiktoken cache
A file appears under its final name only once complete (written beside it, then
renamed), so an interrupted run never leaves a half file that a later run would read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np


def data_dir() -> Path:
    root = os.environ.get("ARSENAL_DATA_DIR") or Path.home() / ".cache" / "arsenal" / "data"
    return Path(root).expanduser()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def key_of(parts: dict) -> str:
    """A short stable hash of a JSON-able description (a config, a source's sha256)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """write(tmp) into a temporary file beside `path`, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def arrays_path(name: str, parts: dict) -> Path:
    return data_dir() / "arrays" / f"{name}-{key_of(parts)}.npz"


def cached_arrays(name: str, parts: dict, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays build() returns, kept in arrays/<name>-<key>.npz; an unreadable file is rebuilt."""
    path = arrays_path(name, parts)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            path.unlink()
    arrays = build()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
    return arrays
