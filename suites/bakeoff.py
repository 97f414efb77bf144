"""The bake-off grids (what `arsenal bakeoff` trains), as Python data: family config x task,
each cell trained at one budget under its fastest correct mix (DESIGN.md 8.3).

Grids:
    lra     every family on LRA's five tasks (listops, text, retrieval, image, pathfinder) at
            lengths a CPU budget of minutes reaches (1,024 tokens; image 784)
    lm      every family on ptb_char, ptb_word and shakespeare_char (TBPTT, context 128)
    ladder  Elman rungs 0-4 x R_h modes (free, spectral_norm, scaled_orthogonal where the
            rung has R_h) at one width, on selective_copy, mqar and ptb_char
    smoke   tiny (tests, CI): two families on two generated tasks that need no download

A cell's ``train`` holds TrainConfig fields (batch size, lr, ...); the budget and the seed
come from the command line (``minutes`` or ``steps``; a grid names its default budget).
The lr and batch are one setting for every family of a grid: a bake-off at equal budget,
not per-family tuning (a researcher would tune each; the report says it was not done).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from suites.model_runs import MODELS

LRA_TASKS: tuple[tuple[str, dict], ...] = (
    # (task, task_args): LRA lengths cut to what minutes of CPU training reach; data sets
    # cut where generating or rendering them would take longer than the budget
    ("listops", dict(max_length=1024, n_train=20_000, n_valid=1_000, n_test=1_000)),
    ("text", dict(window=1024)),
    ("retrieval", dict(window=1024)),
    ("image", dict()),
    ("pathfinder", dict(n_train=8_000, n_valid=1_000, n_test=1_000)),  # 32x32 = 1,024 pixels, ~4 min to render
)
LM_TASKS: tuple[tuple[str, dict], ...] = (
    ("ptb_char", dict(seq_len=128)),
    ("ptb_word", dict(seq_len=64)),
    ("shakespeare_char", dict(seq_len=128)),
)
# Mamba's selective copying cut to a CPU length: 16 tokens among 256 slots, vocabulary 16;
# Zoology's MQAR (associative recall: what separates a matrix state from a vector one) cut
# to 8 key-value pairs in 128 tokens over 256 symbols (Zoology: 64-512 tokens, 8,192
# symbols: a 8,192-way output layer would take most of a CPU step).
LADDER_TASKS: tuple[tuple[str, dict], ...] = (
    ("selective_copy", dict(length=256, n_tokens=16, vocab=16, n_train=10_000)),
    ("mqar", dict(seq_len=128, n_kv=8, vocab=256, n_train=10_000, n_valid=1_000, n_test=1_000)),
    ("ptb_char", dict(seq_len=128)),
)
LADDER_WIDTH = dict(d_model=64, n_layers=2)
R_H_MODES = ("free", "spectral_norm", "scaled_orthogonal")


@dataclass(frozen=True)
class Cell:
    grid: str
    family: str
    config_id: str  # a short name of the family config (the report's label)
    model: dict = field(hash=False)  # family config overrides
    task: str
    task_args: dict = field(hash=False)
    train: dict = field(hash=False, default_factory=dict)  # TrainConfig fields

    @property
    def model_id(self) -> str:
        """The family config's name in records and reports: "elman-rung0-free"."""
        return f"{self.family}-{self.config_id}"

    @property
    def cell_id(self) -> str:
        return f"{self.model_id}/{self.task}"


@dataclass(frozen=True)
class Grid:
    name: str
    doc: str
    cells: tuple[Cell, ...]
    minutes: float | None = None  # the default budget (one of the two)
    steps: int | None = None


def _trainable(family: str, over: dict) -> dict:
    """A grid's model config: the stackformer trains with each token's thinking
    checkpointed (models/stackformer.py, Memory): without it a B=16 step's graph grows
    about 8 MiB a token (2.6 GiB peak at T=256, numba_cpu), some 9 GiB at LRA's 1,024
    for each of two cells side by side on this 24 GB machine; with it 1.7 GiB at T=512,
    for about 1.6x the step time."""
    return {**over, "checkpoint_tokens": True} if family == "stackformer" else dict(over)


def _classifier(family: str, over: dict) -> dict:
    """LRA's transformer is the bidirectional encoder; the recurrent families stay causal
    and their classifier pools every token's state (the model layer's masked mean)."""
    over = _trainable(family, over)
    return {**over, "causal": False} if family == "transformer" else over


def _lra() -> tuple[Cell, ...]:
    # test: 16 batches (256 examples, a standard error of 3 points at 50%): the stackformer
    # takes ~13 s a batch at T=1,024 on one core, and a bigger test set would cost it more than its budget
    train = dict(batch_size=16, lr=1e-3, warmup=50, eval_every=100, eval_batches=4, test_batches=16)
    return tuple(Cell("lra", fam, cid, _classifier(fam, over), task, targs, train)
                 for task, targs in LRA_TASKS for fam, cid, over in MODELS)


def _lm() -> tuple[Cell, ...]:
    train = dict(batch_size=32, lr=2e-3, warmup=50, eval_every=100, eval_batches=8, test_batches=64, sample_tokens=0)
    return tuple(Cell("lm", fam, cid, _trainable(fam, over), task, targs, train) for task, targs in LM_TASKS
                 for fam, cid, over in MODELS)


def ladder_rungs() -> tuple[tuple[str, dict], ...]:
    """(config id, overrides) of every rung and R_h mode, lowest first: rung 4 is diagonal
    (no R_h), so it has one row."""
    rows = []
    for rung in range(5):
        for mode in R_H_MODES if rung < 4 else ("free",):
            rows.append((f"rung{rung}-{mode}", dict(LADDER_WIDTH, rung=rung, r_h=mode)))
    return tuple(rows)


def _ladder() -> tuple[Cell, ...]:
    train = dict(batch_size=32, lr=2e-3, warmup=50, eval_every=100, eval_batches=8, test_batches=16, sample_tokens=0)
    return tuple(Cell("ladder", "elman", cid, over, task, targs, train)
                 for task, targs in LADDER_TASKS for cid, over in ladder_rungs())


SMOKE_TASKS: tuple[tuple[str, dict], ...] = (
    ("selective_copy", dict(length=16, n_tokens=2, vocab=6, n_train=64, n_valid=16, n_test=16)),
    ("listops", dict(max_length=32, max_depth=3, max_args=3, n_train=64, n_valid=16, n_test=16)),
)


def _smoke() -> tuple[Cell, ...]:
    train = dict(batch_size=8, lr=3e-3, warmup=0, eval_every=1, eval_batches=1, test_batches=2, threads=1)
    models = (("transformer", "d16", dict(d_model=16, n_layers=1)), ("elman", "rung4", dict(d_model=16, n_layers=1, rung=4)))
    return tuple(Cell("smoke", fam, cid, _classifier(fam, over) if task == "listops" else dict(over), task, targs, train)
                 for task, targs in SMOKE_TASKS for fam, cid, over in models)


GRIDS: dict[str, Grid] = {g.name: g for g in (
    Grid("lra", "every family on LRA's five tasks (CPU lengths)", _lra(), minutes=3.0),
    Grid("lm", "every family on three character/word LM streams against the transformer", _lm(), minutes=3.0),
    Grid("ladder", "Elman rungs 0-4 x R_h modes on selective_copy, mqar and ptb_char", _ladder(), minutes=2.0),
    Grid("smoke", "tiny: tests and CI (seconds)", _smoke(), steps=2),
)}


def get(name: str) -> Grid:
    if name not in GRIDS:
        raise ValueError(f"bakeoff: grid expected one of {', '.join(GRIDS)}, got {name!r}")
    return GRIDS[name]
