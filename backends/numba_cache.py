"""Numba's on-disk cache (``cache=True``) made to notice edits to helper modules.

Numba keys a cached kernel on its own source file only (its contents in numba 0.68, its
modification time and size in older releases). A kernel that inlines a helper from a
sibling module (``backends/numba_cpu/special.py``, ``_blocks.py``,
``backends/numba_cuda/_common.py``) keeps its stale machine code after the helper is
edited, and a benchmark would time the old kernel. ``refresh_when_edited``, called by a
Numba backend's ``__init__`` before any kernel module is imported, hashes the contents
of every module of the backend; when the hash differs from the one recorded at the last
import, it deletes the backend's cache files wherever Numba keeps them (the folder's
``__pycache__``, ``$NUMBA_CACHE_DIR`` or the user-wide cache, in the subfolder Numba's
locators name after the source folder), so every kernel compiles afresh once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

STAMP = "arsenal-sources.sha1"  # in the backend's __pycache__
CACHE_SUFFIXES = (".nbi", ".nbc")  # Numba's index and data files


def sources_digest(folder: Path) -> str:
    """sha1 over the names and contents of the folder's modules, in name order."""
    h = hashlib.sha1()
    for path in sorted(Path(folder).glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def cache_subpath(folder: Path) -> str:
    """The subfolder Numba's NUMBA_CACHE_DIR and user-wide locators use for the kernels
    of ``folder``: its name and the sha1 of its absolute path."""
    path = os.path.abspath(folder)
    return f"{os.path.basename(path)}_{hashlib.sha1(path.encode()).hexdigest()}"


def cache_folders(folder: Path) -> list[Path]:
    """Every place Numba may keep the compiled kernels of ``folder``'s modules."""
    folder = Path(folder)
    out = [folder / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):
        out.append(Path(os.environ["NUMBA_CACHE_DIR"]) / cache_subpath(folder))
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"
    out.append(user / cache_subpath(folder))
    return out


def refresh_when_edited(folder: Path) -> bool:
    """Delete the backend's cached kernels when its modules changed since the recorded
    digest (or none is recorded); returns whether it did. Warns when the digest cannot be
    recorded (a read-only checkout): the cache is then dropped at every import."""
    folder = Path(folder)
    digest = sources_digest(folder)
    stamp = folder / "__pycache__" / STAMP
    try:
        if stamp.read_text().strip() == digest:
            return False
    except OSError:
        pass
    for place in cache_folders(folder):
        for path in place.glob("*"):
            if path.suffix in CACHE_SUFFIXES:
                path.unlink(missing_ok=True)
    try:
        stamp.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=stamp.parent, prefix=STAMP, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(digest)
        os.replace(tmp, stamp)
    except OSError as exc:
        warnings.warn(f"{folder.name}: cannot record the sources' digest in {stamp.parent} ({exc}); Numba's "
                      "cache of this backend is dropped at every import", RuntimeWarning, stacklevel=2)
    return True
