"""The model grids (what `arsenal models` runs), as Python data: family config x mix x
shape. Suites: ``quick`` (README's main job; minutes on a 2-core CPU), ``full`` (wider
models and longer sequences), ``scaling`` (step time and memory against length),
``ladder`` (the Elman rungs fused and per-step, at one shape).

A mix is named by its id: "torch", "numba_cpu" (one backend for every op), or
"torch+parallel_scan=numba_cpu" (a default plus per-op moves); the peer
"torch_compile" is the all-torch model compiled: its step, compiled once, for the
families that loop over time in Python; the whole model for the others. Mixes a machine cannot
run (triton, numba_cuda without a GPU) are recorded as unavailable, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.modelbench.peers import GRID_PEERS

# The recurrent families of the targets (DESIGN.md 9, issue 12) and the baseline.
MODELS: tuple[tuple[str, str, dict], ...] = (
    # (family, config id, overrides); d_model 64, 2 layers: small enough for a CPU grid
    ("transformer", "d64", dict(d_model=64, n_layers=2)),
    ("fastlane", "d64", dict(d_model=64, n_layers=2)),
    ("elman", "rung3", dict(d_model=64, n_layers=2, rung=3)),
    ("elman", "rung4", dict(d_model=64, n_layers=2, rung=4)),
    ("stackformer", "d64", dict(d_model=64, n_layers=2)),
    ("nsm", "simple", dict(d_model=64, n_layers=2, variant="simple")),
)

# No length refuses the torch_compile peer: torch.compile of a whole loop-bound model
# unrolls its Python loop over time (at T=256 on the 2-core CPU machine elman rung 3 had not
# compiled after 400 s, the NSM took 350 s; the stackformer's graph breaks at every step's
# host read, so dynamo compiles it piece by piece, its process at 5.8-7.5 GiB), so
# the peer compiles such a family's step once instead (bench/modelbench/bench.py
# compiled_loss, issue 20): a compile time independent of T, a figure at every length.
# A run may still skip the peer, with why (ModelRun.skip_compile: README's short main job).


# Families whose every step loops over tokens in Python run at the shorter lengths only:
# the stackformer thinks over its stacks token by token. Elman rung 3 left this set with
# the fused elman_scan (one call per layer under numba_cpu; its torch backend is the step
# loop, about 1.8 s a step at B=4, T=1,024), so it runs at every length of a grid.
PER_TOKEN = {("stackformer", "d64")}

MIXES_CPU = ("torch", "numba_cpu")
MIXES_GPU = ("torch", "triton", "numba_cuda")
PEERS = GRID_PEERS  # the whole-model peers a grid row runs (bench/modelbench/peers.py)


@dataclass(frozen=True)
class ModelRun:
    family: str
    config_id: str
    overrides: dict = field(hash=False)
    B: int = 4  # batch rows
    T: int = 256  # tokens per row
    mixes: tuple[str, ...] = MIXES_CPU + MIXES_GPU[1:]
    peers: tuple[str, ...] = PEERS
    role: str = "grid"  # "grid" | "scaling"
    skip_compile: str | None = None  # why this run records torch_compile "unavailable" (None: it runs)

    @property
    def case_id(self) -> str:
        return f"B{self.B}-T{self.T}"


def _grid(lengths, B=4, role="grid", models=MODELS, per_token_max=256) -> list[ModelRun]:
    return [ModelRun(fam, cid, over, B=B, T=T, role=role) for fam, cid, over in models for T in lengths
            if (fam, cid) not in PER_TOKEN or T <= per_token_max]


# The families whose torch_compile peer compiles their step (a Python loop over tokens or
# chunks; rung 3's all-torch model runs its per-step path: models/elman.py step_loop).
LOOP_BOUND = PER_TOKEN | {("elman", "rung3"), ("nsm", "simple")}

MAIN_NO_COMPILE = ("not in README's main job (arsenal run), kept short: inductor compiling this family's step "
                   "(forward and backward graphs) takes minutes on a 2-core CPU; arsenal models --suite quick runs it")


# The main job's length of the per-token families: the stackformer thinks over a stack of
# memories for every token (its B=2, T=64 group took 104 s of a 4 min 15 s warm make run)
MAIN_T = {("elman", "rung3"): 64, ("stackformer", "d64"): 32}


def _main() -> list[ModelRun]:
    """Every model once: T=256, and shorter where a step takes seconds (MAIN_T); the
    compile peer for the families compiled whole."""
    return [ModelRun(fam, cid, over, B=2, T=MAIN_T.get((fam, cid), 256),
                     skip_compile=MAIN_NO_COMPILE if (fam, cid) in LOOP_BOUND else None) for fam, cid, over in MODELS]


# The Elman ladder as issue 20 measures it: every rung, fused (one elman_scan call per
# layer) and per-step (``fused=False``, the ablation), at one training shape (B=4, T=256);
# the compile peer compiles each rung's per-step cell (models/elman.py step_loop).
LADDER: tuple[tuple[str, str, dict], ...] = tuple(
    ("elman", f"rung{r}" + ("" if fused else "-unfused"), dict(d_model=64, n_layers=2, rung=r, **({} if fused else {"fused": False})))
    for r in range(5) for fused in ((True, False) if r < 4 else (True,)))

SUITES: dict[str, list[ModelRun]] = {
    # `arsenal run` (README's main job): every model once, at one length
    "main": _main(),
    "quick": _grid((256, 1024)),
    "full": _grid((256, 1024, 4096)),
    "ladder": _grid((256,), models=LADDER),
    # CPU: 256 to 2,048 (the full scaling suite adds 4,096 and 8,192; GPU runs go to 16,384)
    "scaling": _grid((256, 512, 1024, 2048), B=2, role="scaling", per_token_max=512),
    "scaling_full": _grid((256, 512, 1024, 2048, 4096, 8192), B=2, role="scaling", per_token_max=1024),
    "scaling_gpu": _grid((256, 1024, 4096, 16384), B=2, role="scaling", per_token_max=1024),
}

# Families whose swap ablation and best-mix search `arsenal models ablate` runs by default.
ABLATION = (("fastlane", "d64", dict(d_model=64, n_layers=2)), ("elman", "rung4", dict(d_model=64, n_layers=2, rung=4)))
ABLATION_SHAPE = dict(B=4, T=1024)

# Training equivalence: a mix against all-torch from one seed (arsenal models equivalence).
EQUIVALENCE_STEPS = 300
EQUIVALENCE_SHAPE = dict(B=4, T=64)


def front_end_params(names: tuple[str, ...] | None = None, T: int = 256, B: int = 2) -> list[tuple]:
    """(family, config id, overrides, mix, B, T) for the pytest-benchmark and asv model
    steps: every model of the grid at one length, every mix (and the compile peer)."""
    mixes = MIXES_CPU + MIXES_GPU[1:] + PEERS
    return [(fam, cid, over, m, B, T) for fam, cid, over in MODELS for m in mixes if names is None or m in names]
