"""Mix ids: the one name of a backend mix in records, grids, the CLI and reports.

    "numba_cpu"                        every op on numba_cpu
    "torch+parallel_scan=numba_cpu"    a default, then per-op moves (sorted)
    "torch_compile"                    the peer: torch.compile of the all-torch model
"""

from __future__ import annotations

PEERS = ("torch_compile",)

def parse_mix(mix_id: str) -> dict:
    """"torch+parallel_scan=numba_cpu" -> {"default": "torch", "parallel_scan": "numba_cpu"}."""
    default, *moves = mix_id.split("+")
    mix = {"default": default}
    for move in moves:
        op, sep, backend = move.partition("=")
        if not sep:
            raise ValueError(f"mix id {mix_id!r}: expected DEFAULT+op=backend+..., got the part {move!r}")
        mix[op] = backend
    return mix


def mix_id(mix: dict) -> str:
    default = mix.get("default", "torch")
    moves = [f"{op}={b}" for op, b in mix.items() if op != "default" and b != default]
    return "+".join([default] + sorted(moves))
