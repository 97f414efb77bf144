"""The trainer (DESIGN.md 8.2): ``arsenal train``, and ``python -m bench.train`` under torchrun.

    from bench.train import TrainConfig, train
    cfg = TrainConfig(family="transformer", model={"d_model": 64, "causal": False},
                      task="listops", task_args={"max_length": 512}, steps=2000)
    result = train(cfg)         # records appended to cfg.out; result.model, result.final

Data. One optimizer step consumes one global batch of ``batch_size`` rows: every process
draws the same global batch from the task (the task's ``batches("train", batch_size,
seed)``, one epoch after another, each epoch shuffled by its own seed), takes its
contiguous share of the rows (rank r of W: rows [r B/W, (r+1) B/W)) and cuts that share
into ``accum`` micro-batches. LM tasks that have a stream (``task.stream(split)``, a 1-D
token tensor) are read as in TBPTT: the stream is split into B contiguous rows, read
in consecutive chunks of ``seq_len`` tokens (targets: the next tokens), and each row's
state is carried from one chunk to the next, detached (``models.common.detach_state``);
it is reset where the stream starts over. The transformer does not carry: its state is
a KV cache that would grow with every chunk, so it sees each chunk afresh (``carry``
None means: every family but the transformer carries).

Loss. Each micro-batch contributes ``sum of its losses / count`` where count is the number
of targets in the whole global batch (targets equal to -100 do not count), times W
because DDP averages the gradients of its W processes. So one step's gradient is the mean
over the global batch whatever W and ``accum`` are: two processes give the parameters of
one process with the same global batch (up to the order of float sums).

Optimisers. AdamW with decoupled weight decay on matrices and embeddings (not on gains
or biases), linear warmup then a cosine to ``min_lr`` x lr; or schedule-free AdamW (PyPI
``schedulefree``: no schedule, its own warmup; evaluation and sampling use its averaged
weights, the checkpoint holds the training weights and adds them as ``model_eval``).
Clipping: the global gradient norm to ``clip_to`` ("norm"), or every gradient element to
[-clip_to, clip_to] ("value", seed 004: [-1, 1]). bf16 autocast on CPU or GPU.

Evaluation every ``eval_every`` steps on the validation split (at most ``eval_batches``
batches, or chunks of a stream), a final test on the test split; each writes a record
(kind="train", bench/results.py) to ``out``; the final one carries the trivial baseline
(the most frequent target's share of the test split, or the bits per byte of a unigram
model of the training stream) and the task's published anchors. Accuracy is per example
(classification, retrieval) or per target token (LM tasks); bits per byte convert the
loss with the task's bytes per token. After the test a stream LM samples text.

Checkpoints (``checkpoint`` path, every ``checkpoint_every`` steps and at the end; written
atomically by bench/train/checkpoint.py, by rank 0): model, optimizer, schedule, RNG states,
the data position (epoch and batch index, or the stream's chunk index) with every
process's carried state, the step and the running counters. ``resume`` continues from it
exactly: the remaining steps give the parameters an uninterrupted run would have had.
A checkpoint that is damaged (checksum, truncation), not this trainer's (a field of
CHECKPOINT_FIELDS missing) or not fitting the run is refused by name (a ValueError),
never a silent fresh start; only a missing file starts afresh.
A checkpoint is taken after the step's evaluation, so every evaluation it covers was
recorded; resuming a finished run repeats only the final test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import random
import time
import uuid
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn

from backends.mix import mix_id
from bench.train import checkpoint as ckpt
from bench.train.data import Batches, Stream, StreamRows
from bench.train.objective import Objective

from bench.train.config import (IGNORE, KINDS, NO_CARRY, RESUMABLE_CHANGES, SAMPLE_PROMPT,
                                 TrainConfig, _bad)


# ---------------------------------------------------------------------------
# Identifiers and small helpers
# ---------------------------------------------------------------------------


def config_id(model_config) -> str:
    """The fields set away from the family's defaults, except those the task decides."""
    over = {k: v for k, v in model_config.overrides().items() if k not in ("vocab_size", "head", "n_classes", "seed")}
    return ",".join(f"{k}={v}" for k, v in sorted(over.items())) or "default"


def _to(state, device):
    """A carried state (tensors in lists, tuples, dicts) moved to ``device``."""
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, (list, tuple)):
        out = [_to(s, device) for s in state]
        return type(state)(*out) if hasattr(state, "_fields") else type(state)(out)
    if isinstance(state, dict):
        return {k: _to(v, device) for k, v in state.items()}
    return state


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# what Run.save writes and Run._restore reads: a checkpoint without one of these fields is
# some other program's file
CHECKPOINT_FORMAT = 1
CHECKPOINT_FIELDS = ("format", "train_id", "config", "world", "step", "model", "optimizer", "schedule", "rng", "data",
                     "carry", "counters")


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


@dataclass
class TrainResult:
    train_id: str
    model: nn.Module  # the trained SequenceModel (unwrapped)
    records: list[dict]  # every record of this process's run (rank 0: what went to out)
    final: dict | None  # the final test record
    sample: str | None  # sampled text (stream LM tasks)
    steps: int  # steps done, this run and the runs it resumed


def _schedule(cfg: TrainConfig, time_spent=lambda: 0.0):
    """The lr multiplier of step s (0-based): linear warmup, then cosine to min_lr. Under a
    ``minutes`` budget the cosine follows whichever budget is nearer its end: the steps
    after warmup, or ``time_spent()`` (the fraction of the minutes used)."""

    def factor(s: int) -> float:
        if s < cfg.warmup:
            return (s + 1) / cfg.warmup
        progress = min(1.0, max((s - cfg.warmup) / max(1, cfg.steps - cfg.warmup), time_spent()))
        return cfg.min_lr + (1 - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


# Parameters kept out of weight decay by name (the last part of the parameter's name): the
# banked attention's decay logits (decay pulls them toward faster forgetting), learned
# initial states (NSM h0, its memory's mem0), and the micro-MLP unit records (each holds a
# unit's activation and its ReZero alpha: decay pulls every unit toward the identity).
NO_DECAY_NAMES = frozenset({"decay_logits", "h0", "mem0", "units_ab", "units_ffn"})


def decay_groups(model: nn.Module) -> tuple[list[str], list[str]]:
    """(decayed, not decayed) parameter names: decay on matrices and embeddings only; not
    on gains, biases, norms, ReZero scalars (any tensor under two dimensions, or a norm's
    weight), nor on NO_DECAY_NAMES."""
    decayed, kept = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        parts = name.split(".")
        plain = p.dim() < 2 or parts[-1] in NO_DECAY_NAMES or any("norm" in part or part == "ln" for part in parts[:-1])
        (kept if plain else decayed).append(name)
    return decayed, kept


class Run:
    def __init__(self, cfg: TrainConfig, task=None, model=None, console=None):
        self.cfg, self.console = cfg, console
        if cfg.threads:  # torch's and Numba's pools alike: two cells side by side (Ray) must not oversubscribe
            from bench.env import fix_threads

            fix_threads(cfg.threads)
        self._init_distributed()
        try:
            self._setup(task, model)
        except BaseException:
            if self.own_group:  # a failed set-up leaves no group behind (no barrier: others may have failed too)
                import torch.distributed as dist

                dist.destroy_process_group()
            raise

    def _setup(self, task, model):
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)
        self.task = task if task is not None else self._load_task()
        self.kind = self.task.kind
        if self.kind not in KINDS:
            raise ValueError(f"task {cfg.task!r}: kind expected one of {', '.join(KINDS)}, got {self.kind!r}")
        self.metric = self.task.metric
        self.model = model if model is not None else self._build_model()
        self.model.to(self.device)
        if cfg.compile_step:  # a loop-bound family's step compiled once (DESIGN 9); others refuse with why
            self.model.compile_step()
        self._check_model()
        self.family = self.model.config.family
        self.streams = self.kind == "lm" and hasattr(self.task, "stream")
        self.carry = self.streams and (cfg.carry if cfg.carry is not None else self.family not in NO_CARRY)
        if cfg.carry and self.family in NO_CARRY:
            raise _bad("carry", f"None or False for family '{self.family}' (its state is a KV cache that grows "
                       "with every chunk)", cfg.carry)
        per = cfg.batch_size // self.world
        if cfg.batch_size % self.world or per % cfg.accum:
            raise _bad("batch_size", f"a multiple of processes x accum = {self.world} x {cfg.accum}", cfg.batch_size)
        self.micro = per // cfg.accum
        self.objective = Objective(self.model, self.kind)
        self.ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.objective, device_ids=ids)
        self._build_optimizer()
        self.T = self._seq_len() if self.streams else None
        self.data = (Stream(StreamRows(self.task.stream("train"), cfg.batch_size, self.T, f"task {cfg.task!r} train"))
                     if self.streams else Batches(self.task, cfg.batch_size, cfg.seed))
        self.states = [None] * cfg.accum  # the carried state of each micro-batch's rows
        self.step_no, self.tokens, self.wall_s, self.last_lr = 0, 0, 0.0, None
        self._reset_interval()
        self.records: list[dict] = []
        self.train_id = f"{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self._eval_rows: dict[str, StreamRows] = {}
        if cfg.resume and os.path.exists(cfg.checkpoint):
            self._restore(ckpt.load(cfg.checkpoint, fields=CHECKPOINT_FIELDS))
        elif cfg.resume:
            self.say(f"no checkpoint at {cfg.checkpoint}: starting afresh")
        self.env = None
        if self.main:
            from bench import env

            self.env = env.environment(str(self.device))
        self.ids = {"train_id": self.train_id, "run_id": self.train_id, "family": self.family,
                    "config_id": config_id(self.model.config), "config": self.model.config.to_dict(),
                    "mix_id": mix_id(self.model.ops.mix), "task": cfg.task, "metric": self.metric,
                    "device": str(self.device), "dtype": "bfloat16" if cfg.bf16 else "float32",
                    "train_config": {**cfg.recipe(), "processes": self.world}}

    # set-up ----------------------------------------------------------------

    def _init_distributed(self):
        cfg = self.cfg
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if torch.device(device).type == "cuda" and self.world > 1:
            device = f"cuda:{local}"
            torch.cuda.set_device(device)
        self.device = torch.device(device)
        self.rank, self.own_group = 0, False
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
                self.own_group = True
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.main = self.rank == 0

    def _load_task(self):
        from suites import tasks

        return tasks.get(self.cfg.task, **self.cfg.task_args)

    def _build_model(self):
        import backends
        import models

        cfg, task = self.cfg, self.task
        over = {"seed": cfg.seed, **cfg.model, "vocab_size": task.vocab_size, "head": task.kind}
        if task.kind != "lm":
            over["n_classes"] = task.n_classes
        ops = backends.resolve(cfg.mix, str(self.device))
        return models.build(models.config(cfg.family, **over), ops)

    def _check_model(self):
        c = self.model.config
        if c.head != self.kind:
            raise ValueError(f"model: head expected {self.kind!r} for task kind {self.kind!r}, got {c.head!r}")
        if c.vocab_size < self.task.vocab_size:
            raise ValueError(f"model: vocab_size expected >= the task's {self.task.vocab_size}, got {c.vocab_size}")

    def _seq_len(self) -> int:
        T = self.cfg.seq_len or getattr(self.task, "seq_len", None) or getattr(self.task.config, "seq_len", None)
        if not T:
            raise _bad("seq_len", f"an int >= 1 (task {self.cfg.task!r} names none)", self.cfg.seq_len)
        return int(T)

    def _build_optimizer(self):
        cfg = self.cfg
        named = dict(self.model.named_parameters())
        decayed, kept = decay_groups(self.model)
        groups = [{"params": [named[n] for n in decayed], "weight_decay": cfg.weight_decay},
                  {"params": [named[n] for n in kept], "weight_decay": 0.0}]
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.say(f"weight decay {cfg.weight_decay:g} on {len(decayed)} tensors ({_names(decayed)}); "
                 f"none on {len(kept)} ({_names(kept)})")
        self.schedule = None
        if cfg.optimizer == "schedulefree":
            try:
                import schedulefree
            except ImportError:
                raise ValueError("train config: optimizer 'schedulefree' needs the package: "
                                 "pip install schedulefree (or pip install -e '.[train]')") from None
            self.opt = schedulefree.AdamWScheduleFree(groups, lr=cfg.lr, betas=cfg.betas, warmup_steps=cfg.warmup)
            self.opt.train()
        else:
            fused = self.device.type == "cuda"
            self.opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused)
            self.schedule = torch.optim.lr_scheduler.LambdaLR(self.opt, _schedule(cfg, self._time_spent))

    def _time_spent(self) -> float:
        """The fraction of the minutes budget used (0 without one)."""
        # the schedule asks at construction, before the counters exist
        return getattr(self, "wall_s", 0.0) / (60 * self.cfg.minutes) if self.cfg.minutes else 0.0

    def _done(self) -> bool:
        return self.step_no >= self.cfg.steps or self._time_spent() >= 1.0

    def _reset_interval(self):
        self.interval = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, correct, count
        self.interval_steps, self.interval_s = 0, 0.0

    def say(self, text: str):
        if self.main and self.cfg.progress and self.console is not None:
            self.console.print(text, markup=False, highlight=False)

    # one step ----------------------------------------------------------------

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def train_step(self):
        cfg = self.cfg
        batch, reset = self.data.next()  # the global batch, on the CPU
        if reset:
            self.states = [None] * cfg.accum
        count = max(int((batch["target"] != IGNORE).sum()), 1)  # targets in the global batch
        self.tokens += sum(int(batch[k].sum()) if k in batch else batch[t].numel()
                           for k, t in (("mask", "tokens"), ("mask2", "tokens2")) if t in batch)
        module = self.ddp or self.objective
        start = self.rank * cfg.batch_size // self.world
        for k in range(cfg.accum):
            lo = start + k * self.micro
            mb = {key: v[lo: lo + self.micro].to(self.device, non_blocking=True) for key, v in batch.items()}
            sync = self.ddp.no_sync() if self.ddp is not None and k < cfg.accum - 1 else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    loss, correct, n, state = module(mb, self.states[k] if self.carry else None)
                (loss * (self.world / count)).backward()
            if self.carry:
                self.states[k] = _detach(state)
            self.interval += torch.stack([loss.detach().double(), correct.double(), n.double()])
            self.last = (loss.detach(), n)
        if cfg.clip == "norm":
            torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_to)
        elif cfg.clip == "value":
            torch.nn.utils.clip_grad_value_(self.params, cfg.clip_to)
        self.opt.step()
        group = self.opt.param_groups[0]  # the lr this step used (schedule-free: with its warmup)
        self.last_lr = float(group["scheduled_lr"] if cfg.optimizer == "schedulefree" else group["lr"])
        if self.schedule is not None:
            self.schedule.step()
        self.opt.zero_grad(set_to_none=True)

    # evaluation ----------------------------------------------------------------

    def _reduce(self, t):
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t

    def _n_targets(self) -> int:
        return self.task.n_classes if self.kind != "lm" else self.model.config.vocab_size

    @torch.no_grad()
    def evaluate(self, split: str, limit: int | None) -> dict:
        """Loss, metric and the target histogram of ``split`` (at most ``limit`` batches)."""
        obj, cfg = self.objective, self.cfg
        obj.eval()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        thought: list[dict] = []  # thinking summaries per batch (the stackformer)
        hist = torch.zeros(self._n_targets(), dtype=torch.float64, device=self.device)

        def add(batch, state):
            with self._autocast():
                loss, correct, n, new = obj(batch, state)
            sums.add_(torch.stack([loss.double(), correct.double(), n.double()]))
            target = batch["target"][batch["target"] != IGNORE]
            hist.add_(torch.bincount(target, minlength=hist.numel()).double())
            if hasattr(self.model, "thinking"):  # the stackformer: steps per token and stack mass of this batch
                mask = batch.get("mask2" if self.kind == "retrieval" else "mask")
                thought.append(self.model.thinking(mask))
            return new

        rows_b = cfg.eval_batch_size or cfg.batch_size
        if self.streams:
            if split not in self._eval_rows:
                self._eval_rows[split] = StreamRows(self.task.stream(split), rows_b, self.T, f"task {cfg.task!r} {split}")
            rows = self._eval_rows[split]
            mine = torch.tensor_split(torch.arange(rows_b), self.world)[self.rank]
            state = None
            for c in range(rows.n_chunks if limit is None else min(limit, rows.n_chunks)):
                if not len(mine):
                    break
                chunk = {k: v[mine].to(self.device) for k, v in rows.chunk(c).items()}
                new = add(chunk, state if self.carry else None)
                state = _detach(new) if self.carry else None
        else:
            for i, batch in enumerate(self.task.batches(split, rows_b, seed=0)):
                if limit is not None and i >= limit:
                    break
                if i % self.world == self.rank:
                    add({k: v.to(self.device) for k, v in batch.items()}, None)
        self._reduce(sums)
        self._reduce(hist)
        obj.train()
        loss, correct, n = (float(x) for x in sums.cpu())
        return {"loss": loss / max(n, 1), "accuracy": correct / max(n, 1), "count": n, "hist": hist.cpu(),
                "thinking": _pooled_thinking(thought)}

    def _bits_per_byte(self, loss: float, split: str) -> float | None:
        if self.kind != "lm" or self.metric != "bits_per_byte":
            return None
        if hasattr(self.task, "bits_per_byte"):
            return float(self.task.bits_per_byte(loss, split))
        return loss / math.log(2)

    def _value(self, loss: float, accuracy: float, split: str) -> float | None:
        return accuracy if self.metric == "accuracy" else self._bits_per_byte(loss, split)

    def _perplexity(self, loss: float) -> float | None:
        """Word-level LMs (a task with ``perplexity``): exp of the loss per token."""
        return float(self.task.perplexity(min(loss, 700.0))) if self.kind == "lm" and hasattr(self.task, "perplexity") else None

    def record(self, split: str, loss: float, accuracy: float, task_split: str, **extra) -> dict:
        from bench import results

        ids = {k: v for k, v in self.ids.items() if k != "run_id"}
        rec = results.new_record("train", run_id=self.ids["run_id"], env=self.env, **ids, status="ok", error=None,
                                 step=self.step_no, split=split, loss=loss, value=self._value(loss, accuracy, task_split),
                                 bits_per_byte=self._bits_per_byte(loss, task_split), perplexity=self._perplexity(loss),
                                 tokens=self.tokens,
                                 wall_s=self.wall_s, lr=self.last_lr, **extra)
        self.records.append(rec)
        if self.main and self.cfg.out:
            from bench import results

            results.append(self.cfg.out, rec)
        return rec

    def _eval_mode(self):
        """Schedule-free evaluates its averaged weights; AdamW its only ones."""
        if self.cfg.optimizer == "schedulefree":
            self.opt.eval()
            stack = contextlib.ExitStack()
            stack.callback(self.opt.train)
            return stack
        return contextlib.nullcontext()

    def log_and_evaluate(self):
        interval = self._reduce(self.interval.clone()).cpu()
        loss_sum, correct, n = (float(x) for x in interval)
        steps_per_s = self.interval_steps / self.interval_s if self.interval_s > 0 else None
        train = self.record("train", loss_sum / max(n, 1), correct / max(n, 1), "train", steps_per_s=steps_per_s)
        with self._eval_mode():
            ev = self.evaluate("valid", self.cfg.eval_batches)
        val = self.record("val", ev["loss"], ev["accuracy"], "valid", steps_per_s=steps_per_s,
                          **({"thinking": ev["thinking"]} if ev["thinking"] else {}))
        self._reset_interval()
        self.say(f"step {self.step_no:>6}  train loss {train['loss']:.4f} {self.metric} {_fmt(train['value'])}  "
                 f"val loss {val['loss']:.4f} {self.metric} {_fmt(val['value'])}  "
                 f"{_fmt(steps_per_s)} steps/s  lr {_fmt(train['lr'])}")

    # checkpoints ---------------------------------------------------------------

    def save(self):
        carry = [_to(s, "cpu") for s in self.states]
        everyone = [carry]
        if self.world > 1:
            import torch.distributed as dist

            everyone = [None] * self.world
            dist.all_gather_object(everyone, carry)
        if not self.main:
            return
        state = {"format": CHECKPOINT_FORMAT, "train_id": self.train_id, "config": self.cfg.to_dict(),
                 "model_config": self.model.config.to_dict(), "mix": dict(self.model.ops.mix), "task": self.cfg.task,
                 "world": self.world, "step": self.step_no, "model": self.model.state_dict(),
                 "optimizer": self.opt.state_dict(),
                 "schedule": self.schedule.state_dict() if self.schedule is not None else None,
                 "rng": ckpt.rng_state(), "data": self.data.position(), "carry": everyone,
                 "counters": {"tokens": self.tokens, "wall_s": self.wall_s, "last_lr": self.last_lr,
                              "interval": self.interval.cpu(),
                              "interval_steps": self.interval_steps, "interval_s": self.interval_s}}
        if self.cfg.optimizer == "schedulefree":
            state["model_eval"] = self._schedulefree_weights()
        ckpt.save(self.cfg.checkpoint, state)

    def _schedulefree_weights(self) -> dict:
        """The averaged weights x that schedule-free's eval mode would set, computed aside
        (the eval/train switch is not bit-exact, so the training weights stay untouched)."""
        out = {}
        by_id = {id(p): name for name, p in self.model.named_parameters()}
        with torch.no_grad():
            for group in self.opt.param_groups:
                beta1 = group["betas"][0]
                for p in group["params"]:
                    z = self.opt.state[p].get("z")
                    out[by_id[id(p)]] = (p if z is None else torch.lerp(p, z.to(p.device), 1 - 1 / beta1)).cpu()
        return {**{k: v.cpu() for k, v in self.model.state_dict().items()}, **out}

    def _restore(self, state: dict):
        if state["format"] != CHECKPOINT_FORMAT:
            raise ckpt.CheckpointError(self.cfg.checkpoint, f"format {state['format']!r}, this trainer reads "
                                                            f"{CHECKPOINT_FORMAT}")
        self._check_resumable(state)
        try:
            self._load_state(state)
        except (KeyError, IndexError, TypeError, AttributeError, RuntimeError) as exc:
            # a hand-made or foreign file that passed the field check: name it, no traceback
            raise ckpt.CheckpointError(self.cfg.checkpoint, f"does not fit this run ({ckpt.describe(exc)})") from None
        self.say(f"resumed {self.train_id} at step {self.step_no} from {self.cfg.checkpoint}")

    def _check_resumable(self, state: dict):
        cfg = self.cfg
        old = state["config"]
        if not isinstance(old, dict):
            raise ckpt.CheckpointError(cfg.checkpoint, f"field 'config' holds a {type(old).__name__}, expected a dict")
        changed = [k for k, v in cfg.to_dict().items() if k not in RESUMABLE_CHANGES and _jsonable(old.get(k)) != _jsonable(v)]
        if changed:
            k = changed[0]
            raise ValueError(f"resume: field '{k}' expected {old.get(k)!r} as in the checkpoint {cfg.checkpoint}, "
                             f"got {getattr(cfg, k)!r} (changed: {', '.join(changed)})")
        if state["world"] != self.world:
            raise ValueError(f"resume: processes expected {state['world']} as in the checkpoint {cfg.checkpoint} "
                             f"(their carried states), got {self.world}")

    def _load_state(self, state: dict):
        cfg = self.cfg
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        ckpt.set_rng_state(state["rng"])
        if self.streams:
            self.data.index = state["data"]["index"]
        else:
            self.data = Batches(self.task, cfg.batch_size, cfg.seed, **state["data"])
        self.states = [_to(s, self.device) for s in state["carry"][self.rank]]
        c = state["counters"]
        self.tokens, self.wall_s, self.last_lr = c["tokens"], c["wall_s"], c["last_lr"]
        self.interval = c["interval"].to(self.device)
        self.interval_steps, self.interval_s = c["interval_steps"], c["interval_s"]
        self.step_no, self.train_id = state["step"], state["train_id"]

    # the end ----------------------------------------------------------------

    def baseline(self, test: dict) -> float | None:
        """The trivial figure: the most frequent target's share of the test split, or the
        bits per byte of a unigram model of the training stream (add-one smoothing)."""
        if self.metric == "accuracy":
            hist = test["hist"]
            return float(hist.max() / hist.sum()) if hist.sum() > 0 else None
        if not self.streams:
            return None
        V = self.model.config.vocab_size
        counts = torch.bincount(torch.as_tensor(self.task.stream("train")).long().flatten(), minlength=V).double() + 1
        logp = (counts / counts.sum()).log()
        test_tokens = torch.as_tensor(self.task.stream("test")).long().flatten()[1:]
        return self._bits_per_byte(float(-logp[test_tokens].mean()), "test")

    def sample(self) -> str | None:
        if not (self.streams and self.cfg.sample_tokens and self.model.config.causal and self.main):
            return None
        from models.generate import Sampling, generate

        prompt = torch.as_tensor(self.task.stream("test")).long().flatten()[: min(SAMPLE_PROMPT, self.T)]
        self.model.eval()
        out = generate(self.model, prompt.to(self.device),
                       Sampling(max_new_tokens=self.cfg.sample_tokens, temperature=0.8, top_k=40,
                                patience=3 if self.cfg.sample_stop else 0, eos_id=self.cfg.eos_id, seed=self.cfg.seed))
        self.model.train()
        return decode(self.task, prompt.tolist()) + "|" + decode(self.task, out.tokens[0])

    def run(self) -> TrainResult:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        cfg = self.cfg
        progress = Progress(TextColumn(f"train {self.family} on {cfg.task}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=self.console, disable=not (cfg.progress and self.main), transient=False)
        with progress:
            bar = progress.add_task("train", total=None if cfg.minutes else cfg.steps, completed=self.step_no, info="")
            while not self._done():
                t = time.perf_counter()
                self.train_step()
                dt = time.perf_counter() - t
                self.step_no += 1
                self.wall_s += dt
                self.interval_s += dt
                self.interval_steps += 1
                done = self._done()
                if self.step_no % 10 == 0 or done:
                    loss, n = self.last
                    progress.update(bar, completed=self.step_no, info=f"loss {float(loss) / max(int(n), 1):.4f}")
                if self.step_no % cfg.eval_every == 0 or done:
                    self.log_and_evaluate()
                if cfg.checkpoint and (done
                                       or (cfg.checkpoint_every and self.step_no % cfg.checkpoint_every == 0)):
                    self.save()
        with self._eval_mode():
            test = self.evaluate("test", cfg.test_batches)
            text = self.sample()
        final = self.record("test", test["loss"], test["accuracy"], "test", final=True, baseline=self.baseline(test),
                            **({"thinking": test["thinking"]} if test["thinking"] else {}),
                            seed=cfg.seed, budget_minutes=cfg.minutes, budget_steps=cfg.steps,
                            stopped_by="steps" if self.step_no >= cfg.steps else "minutes",
                            tokens_per_s=self.tokens / self.wall_s if self.wall_s > 0 else None,
                            anchors=_jsonable(self.task.anchors), **({"sample": text} if text is not None else {}))
        self.say(f"test loss {final['loss']:.4f} {self.metric} {_fmt(final['value'])} "
                 f"(trivial baseline {_fmt(final['baseline'])})")
        if text is not None:
            self.say(f"sample (prompt|continuation):\n{text}")
        return TrainResult(self.train_id, self.model, self.records, final, text, self.step_no)

    def close(self):
        if self.own_group:
            import torch.distributed as dist

            dist.barrier()  # no process leaves while another still needs the group
            dist.destroy_process_group()


def _detach(state):
    from models.common import detach_state

    return detach_state(state)


def _names(names: list[str], shown: int = 6) -> str:
    return ", ".join(names[:shown]) + (f", ... {len(names) - shown} more" if len(names) > shown else "") or "-"


def _pooled_thinking(summaries: list) -> dict | None:
    """Per-batch thinking summaries (models.stackformer.thinking_summary) pooled over the
    tokens of every batch: means weighted by tokens, histograms summed."""
    summaries = [t for t in summaries if t and t["tokens"]]
    if not summaries:
        return None
    n = sum(t["tokens"] for t in summaries)
    out = {"tokens": n, "steps_hist": [sum(col) for col in zip(*(t["steps_hist"] for t in summaries))]}
    for key in summaries[0]:
        if key not in out:
            out[key] = sum(t[key] * t["tokens"] for t in summaries) / n
    return out


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def decode(task, ids: list[int]) -> str:
    """Token ids as text: the task's decode when it has one, else bytes as UTF-8."""
    if hasattr(task, "decode"):
        return task.decode(ids)
    if all(0 <= i < 256 for i in ids):
        return bytes(ids).decode("utf-8", errors="replace")
    return " ".join(map(str, ids))


def train(cfg: TrainConfig, task=None, model=None, console=None) -> TrainResult:
    """Train as ``cfg`` says. ``task`` and ``model`` replace the named task and family
    (tests, notebooks): a task object with the suites.tasks interface, a SequenceModel
    whose head and vocabulary fit it. Under torchrun every process calls this."""
    run = Run(cfg, task=task, model=model, console=console)
    try:
        return run.run()
    finally:
        run.close()
