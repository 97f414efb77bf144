"""The trainer's configuration (bench/train/run.py documents the run): light at import, so
the command line can be built before torch is imported."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

IGNORE = -100  # a target with nothing to predict (the tasks' and cross_entropy's convention)
# Families whose state is not carried between TBPTT chunks: the transformer's state is a
# KV cache that grows with every chunk (memory and time without bound).
NO_CARRY = frozenset({"transformer"})
OPTIMIZERS = ("adamw", "schedulefree")
CLIPS = ("norm", "value", None)
KINDS = ("lm", "classify", "retrieval")
# Fields a resumed run may change: they do not touch the training trajectory.
RESUMABLE_CHANGES = ("resume", "out", "checkpoint", "checkpoint_every", "progress", "sample_tokens", "threads",
                     "eval_every", "eval_batches", "test_batches", "eval_batch_size", "sample_stop", "eos_id")
# The step cap of a run given only minutes: the wall clock ends it (and drives its cosine).
MINUTES_ONLY_STEPS = 10**9
SAMPLE_PROMPT = 64  # tokens of the test stream that prompt the sample


def _bad(name: str, expected: str, given) -> ValueError:
    return ValueError(f"train config: field '{name}' expected {expected}, got {given!r}")


@dataclass(frozen=True)
class TrainConfig:
    # what is trained
    family: str = "transformer"  # a family of models.FAMILIES
    model: Mapping[str, Any] = field(default_factory=dict)  # family config overrides; vocab_size, head, n_classes come from the task
    mix: Mapping[str, str] = field(default_factory=lambda: {"default": "torch"})  # backend per op ("default" for the rest)
    task: str = "listops"  # a task of suites.tasks
    task_args: Mapping[str, Any] = field(default_factory=dict)  # task config overrides (max_length=512, ...)
    # optimisation
    steps: int = 1000  # optimizer steps (with minutes: the most steps; the run ends at whichever comes first)
    minutes: float | None = None  # training wall clock from the first step, evaluation excluded; None: steps only
    batch_size: int = 32  # global batch: rows per step over all processes and micro-batches
    accum: int = 1  # micro-batches per step (gradient accumulation); divides batch_size / processes
    optimizer: str = "adamw"  # "adamw" | "schedulefree"
    lr: float = 1e-3  # peak learning rate
    warmup: int = 100  # linear warmup steps (schedule-free: its warmup_steps)
    min_lr: float = 0.1  # the cosine ends at min_lr * lr (adamw)
    weight_decay: float = 0.1  # decoupled, on matrices and embeddings only
    betas: tuple[float, float] = (0.9, 0.95)  # Adam's moment decays
    clip: str | None = "norm"  # "norm": global norm <= clip_to; "value": each element in [-clip_to, clip_to]; None
    clip_to: float = 1.0  # the clipping bound
    bf16: bool = False  # bfloat16 autocast for forward and loss
    compile_step: bool = False  # loop-bound families: model.compile_step() (their step compiled once, DESIGN 9)
    # LM streams (TBPTT)
    seq_len: int | None = None  # chunk length; None: the task's seq_len
    carry: bool | None = None  # carry the state between chunks; None: every family but the transformer
    # evaluation and output
    eval_every: int = 100  # steps between evaluations (and train records)
    eval_batches: int | None = 20  # validation batches (stream chunks) per evaluation; None: the whole split
    test_batches: int | None = None  # test batches (chunks) of the final test; None: the whole split
    eval_batch_size: int | None = None  # rows of an evaluation batch; None: batch_size
    sample_tokens: int = 200  # stream LM tasks: tokens sampled after the test (0: none)
    sample_stop: bool = True  # the sample stops after 3 tokens below 0.15 confidence (seed 004), at eos_id, or at length
    eos_id: int | None = None  # the sample's end token (None: none)
    seed: int = 0  # data order, and the model's weights unless model sets seed
    device: str | None = None  # "cpu" | "cuda[:N]"; None: cuda when present (rank's local GPU under DDP)
    threads: int | None = None  # torch CPU threads; None: torch's default
    out: str | None = "out/results.jsonl"  # results file (appended); None: no file
    checkpoint: str | None = None  # checkpoint file; None: no checkpoints
    checkpoint_every: int = 0  # steps between checkpoints; 0: only at the end
    resume: bool = False  # continue from checkpoint (a missing file starts afresh)
    progress: bool = True  # a progress bar and a line per evaluation (rank 0)

    def __post_init__(self):
        for name in ("model", "task_args", "mix"):
            value = getattr(self, name)
            if name == "mix" and isinstance(value, str):
                value = {"default": value}
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise _bad(name, "a mapping of names to values", value)
            object.__setattr__(self, name, dict(value))
        for name in ("family", "task"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise _bad(name, "a name", getattr(self, name))
        for name, lo in (("steps", 1), ("batch_size", 1), ("accum", 1), ("eval_every", 1), ("warmup", 0),
                         ("sample_tokens", 0), ("checkpoint_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise _bad(name, f"an int >= {lo}", value)
        if self.minutes is not None and (isinstance(self.minutes, bool) or not isinstance(self.minutes, (int, float))
                                         or not 0 < self.minutes < float("inf")):
            raise _bad("minutes", "None or a float > 0", self.minutes)
        if self.eos_id is not None and (isinstance(self.eos_id, bool) or not isinstance(self.eos_id, int)
                                        or self.eos_id < 0):
            raise _bad("eos_id", "None or a token id >= 0", self.eos_id)
        for name in ("seq_len", "eval_batches", "test_batches", "eval_batch_size", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise _bad(name, "None or an int >= 1", value)
        for name, ok, words in (("lr", lambda v: v > 0, "a float > 0"),
                                ("clip_to", lambda v: v > 0, "a float > 0"),
                                ("weight_decay", lambda v: v >= 0, "a float >= 0"),
                                ("min_lr", lambda v: 0 <= v <= 1, "a fraction in [0, 1]")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise _bad(name, words, value)
        betas = tuple(self.betas) if isinstance(self.betas, (list, tuple)) else None
        if betas is None or len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise _bad("betas", "two floats in [0, 1)", self.betas)
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))
        if self.optimizer not in OPTIMIZERS:
            raise _bad("optimizer", f"one of {', '.join(OPTIMIZERS)}", self.optimizer)
        if self.clip not in CLIPS:
            raise _bad("clip", "'norm', 'value' or None", self.clip)
        for name in ("bf16", "compile_step", "resume", "progress", "sample_stop"):
            if not isinstance(getattr(self, name), bool):
                raise _bad(name, "a bool", getattr(self, name))
        if self.carry is not None and not isinstance(self.carry, bool):
            raise _bad("carry", "None or a bool", self.carry)
        if self.batch_size % self.accum:
            raise _bad("batch_size", f"a multiple of accum={self.accum}", self.batch_size)
        if self.resume and not self.checkpoint:
            raise _bad("checkpoint", "a path when resume=True", self.checkpoint)
        for name in ("device", "out", "checkpoint"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise _bad(name, "None or a string", value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # the fields that shape what a run learns (not what it runs on, where it writes, or the
    # model, task and mix, which records carry in fields of their own)
    RECIPE = ("batch_size", "accum", "optimizer", "lr", "warmup", "min_lr", "weight_decay", "betas", "clip",
              "clip_to", "bf16", "compile_step", "seq_len", "carry", "threads")

    def recipe(self) -> dict:
        """The training recipe a record carries (``train_config``): RECIPE's fields."""
        return {name: list(v) if isinstance(v := getattr(self, name), tuple) else v for name in self.RECIPE}

    @classmethod
    def from_dict(cls, values: Mapping) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"train config: unknown field '{unknown[0]}'; fields: {', '.join(sorted(known))}")
        return cls(**values)
