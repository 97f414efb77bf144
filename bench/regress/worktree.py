"""The two sides' trees: the base revision in a temporary ``git worktree``, and for each
side a directory whose ``backends`` is the side's and whose harness is this checkout's."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS_PACKAGES = ("bench", "suites")  # always this checkout's
KERNEL_PACKAGE = "backends"  # the side's own


def git(*args, cwd=REPO_ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def resolve(revision: str) -> str | None:
    """The commit a revision names, or None (no such revision: a first commit, a shallow clone)."""
    try:
        return git("rev-parse", "--verify", f"{revision}^{{commit}}")
    except subprocess.CalledProcessError:
        return None


def shim(kernels_root: Path, where: Path) -> Path:
    """A directory whose ``backends`` is ``kernels_root``'s and whose harness packages are
    this checkout's (symlinks); a worker started there imports exactly that mix."""
    where.mkdir(parents=True, exist_ok=True)
    (where / KERNEL_PACKAGE).symlink_to(Path(kernels_root).resolve() / KERNEL_PACKAGE)
    for pkg in HARNESS_PACKAGES:
        (where / pkg).symlink_to(REPO_ROOT / pkg)
    return where


@contextlib.contextmanager
def sides(base_sha: str):
    """(tmp, {"head": dir, "base": dir}) for the duration; the worktree is removed after."""
    with tempfile.TemporaryDirectory(prefix="arsenal-regression-") as tmp:
        tmp = Path(tmp)
        tree = tmp / "base"
        git("worktree", "add", "--detach", str(tree), base_sha)
        try:
            yield tmp, {"head": shim(REPO_ROOT, tmp / "head-side"), "base": shim(tree, tmp / "base-side")}
        finally:
            git("worktree", "remove", "--force", str(tree))
