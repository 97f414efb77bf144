"""Test parameters for the model layer, enumerated from models.FAMILIES and the backend
registry (never hand-written lists): every family's test configs, every available
backend as the default, and every single-op swap of the ops a config uses."""

from __future__ import annotations

import pytest
import torch

import backends
import models
from tests.registry_params import is_emulated


def config_params():
    """(family, config id, overrides) over every family's test configs."""
    return [pytest.param(fam, cid, over, id=f"{fam}-{cid}")
            for fam, cls in models.FAMILIES.items() for cid, over in cls.test_configs]


def mixes_for(family: str, overrides: dict) -> list[tuple[str, dict]]:
    """(mix id, mix) for every backend as default and every single-op swap from torch,
    over the backends that implement the ops the config uses (available or not: the
    test skips an unavailable one with its reason)."""
    cfg = models.config(family, **overrides)
    used = models.FAMILIES[family].ops_used(cfg)
    out = {}
    for name, b in backends.BACKENDS.items():
        if name != "torch" and used and all(op in b.op_names() for op in used):
            out[name] = {"default": name}
        for op in used:
            if name != "torch" and op in b.op_names():
                out[f"torch+{op}={name}"] = {"default": "torch", op: name}
    return sorted(out.items())


def mix_params():
    """Every mix of every config, but a backend that runs emulated here (the Triton
    interpreter, the CUDA simulator) less often: no single-op swap to it, and its default
    mix only in the configs that bring an op the family's earlier configs did not use.
    Each of its kernels still runs in a model of every family that uses it; a kernel's
    options are the op matrix's business, and each emulated mix took 2-18 s of the suite
    (the stackformer's thinking in the simulator). On a GPU machine nothing is emulated:
    every mix runs here, and ``make gpu``'s models step gates the GPU backends' mixes of
    every family's grid model with the same check (bench/modelbench/gate.py)."""
    out = []
    for fam, cls in models.FAMILIES.items():
        seen: dict[str, set] = {}  # emulated backend -> the ops its default mixes ran so far
        for cid, over in cls.test_configs:
            used = set(cls.ops_used(models.config(fam, **over)))
            for mid, mix in mixes_for(fam, over):
                if any(is_emulated(n) for op, n in mix.items() if op != "default"):
                    continue
                name = mix["default"]
                if is_emulated(name):
                    if used <= seen.get(name, set()):
                        continue
                    seen.setdefault(name, set()).update(used)
                out.append(pytest.param(fam, cid, over, mid, mix, id=f"{fam}-{cid}-{mid}"))
    return out


def require_mix(request, mix: dict):
    """Skip (or fail under --strict-backends) when a backend of the mix cannot run here."""
    for name in set(mix.values()):
        reason = backends.BACKENDS[name].why_unavailable()
        if reason is not None:
            if request.config.getoption("--strict-backends"):
                pytest.fail(f"mix {mix}: {name} unavailable in strict mode: {reason}")
            pytest.skip(f"{name} unavailable: {reason}")


def mix_device(mix: dict) -> str:
    devices = {d for n in mix.values() for d in backends.BACKENDS[n].devices()}
    return "cuda" if "cuda" in devices and torch.cuda.is_available() else "cpu"


def emulated(mix: dict) -> bool:
    return any(is_emulated(n) for n in mix.values())


def tokens(cfg, B=2, T=12, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (B, T), generator=g).to(device)
