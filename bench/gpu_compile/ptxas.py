"""Run ``ptxas -v`` on a kernel's PTX and read what it reports per entry function:
registers per thread, spill stores and loads, stack frame, static shared memory.

Which ptxas: the Triton kernels' PTX goes through the ptxas Triton itself uses for that
chip (``triton.backends.nvidia.compiler.get_ptxas``, shipped in the triton wheel), with
Triton's own flags, so the figures are those of the cubin Triton builds. Numba's PTX
(NVVM of the CUDA toolkit on this machine, ``.version`` 9.0 for CUDA 13) needs a ptxas at
least as new as that PTX: the newest of the ptxas binaries found (the triton wheel ships
two) is used. On a GPU, Numba hands the PTX to the driver's JIT, which is the same
assembler at the driver's version.

Results are cached on disk by the hash of (ptxas version, flags, PTX): a second run of
``arsenal gpu-compile`` re-assembles nothing that has not changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path


class PtxasError(RuntimeError):
    """ptxas refused the PTX; the message is its own."""


@dataclass(frozen=True)
class Resources:
    registers: int
    spill_stores: int  # bytes
    spill_loads: int  # bytes
    stack_bytes: int
    static_smem: int  # bytes of shared memory declared in the kernel (not the launch's dynamic part)
    log: str  # ptxas's report for this function


_FUNCTION = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse(log: str) -> dict[str, Resources]:
    """{entry function: Resources} from the text of ``ptxas -v``."""
    out, name, block = {}, None, []

    def close():
        if name is None:
            return
        text = "\n".join(block)
        frame, used, smem = _FRAME.search(text), _USED.search(text), _SMEM.search(text)
        if used is None:
            raise PtxasError(f"ptxas -v reported no register count for {name}:\n{text}")
        stack, stores, loads = (int(x) for x in frame.groups()) if frame else (0, 0, 0)
        out[name] = Resources(int(used.group(1)), stores, loads, stack, int(smem.group(1)) if smem else 0, text)

    for line in log.splitlines():
        found = _FUNCTION.search(line)
        if found:
            close()
            name, block = found.group(1), [line]
        elif name is not None:
            block.append(line)
    close()
    return out


def _release(path: str) -> tuple[int, int]:
    """(major, minor) of a ptxas binary ("release 13.4")."""
    text = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"release (\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


@functools.lru_cache(maxsize=None)
def newest() -> str:
    """The newest ptxas here: the triton wheel's two, the CUDA toolkit's, PATH's."""
    import triton

    bin_dir = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    found = [str(bin_dir / n) for n in ("ptxas", "ptxas-blackwell") if (bin_dir / n).exists()]
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    found += [p for p in (str(Path(cuda_home) / "bin" / "ptxas"), shutil.which("ptxas")) if p and Path(p).exists()]
    if not found:
        raise PtxasError("no ptxas found (the triton wheel ships one: pip install triton)")
    return max(found, key=_release)


def _cache_dir() -> Path:
    root = os.environ.get("ARSENAL_CACHE_DIR") or Path.home() / ".cache" / "arsenal"
    return Path(root) / "ptxas"


def assemble(ptx: str, arch: str, ptxas: str, flags: tuple[str, ...] = ()) -> dict[str, Resources]:
    """``ptxas -v --gpu-name=<arch> <flags>`` on ``ptx``: {entry function: Resources}.
    Raises PtxasError with ptxas's message when it refuses the PTX."""
    argv = [ptxas, "-v", *flags, f"--gpu-name={arch}"]
    key = hashlib.sha256(json.dumps([_release(ptxas), argv[1:], ptx]).encode()).hexdigest()
    cached = _cache_dir() / f"{key}.json"
    if cached.exists():
        return {k: Resources(**v) for k, v in json.loads(cached.read_text()).items()}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        proc = subprocess.run([*argv, str(src), "-o", str(Path(tmp) / "kernel.cubin")], capture_output=True,
                              text=True)
    if proc.returncode != 0:
        raise PtxasError(f"ptxas ({Path(ptxas).name}, --gpu-name={arch}) failed with exit code {proc.returncode}:\n"
                         f"{proc.stderr.strip() or proc.stdout.strip()}")
    result = parse(proc.stderr + proc.stdout)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({k: asdict(v) for k, v in result.items()}))
    return result
