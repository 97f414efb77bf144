"""The task classes every family builds on.

A task is a family (a subclass here) with a frozen config. What a trainer reads:
  kind        "classify" | "retrieval" | "lm"
  metric      "accuracy" | "bits_per_byte"
  vocab_size  token ids lie in [0, vocab_size); 0 is padding wherever a mask is False
  n_classes   classify and retrieval: the number of labels; lm: None
  seq_len     T, the length of every batch's token axis
  anchors     published figures (anchors.py)
  batches(split, batch_size, seed) -> dicts of torch tensors:
    classify   tokens [B, T] int64, mask [B, T] bool (True on real tokens), target [B] int64
    retrieval  tokens, mask (first document), tokens2, mask2 (second), target [B] int64
    lm         tokens [B, T] int64, mask [B, T] bool, target [B, T] int64: the token to
               predict at each position (next token for streams; the answer for the
               synthetic tasks), IGNORE (-100) where there is none
Splits are "train", "valid" and "test". Training batches are shuffled by `seed` and all
of size batch_size (the remainder is dropped); valid and test batches keep the stored
order, cover every example, and the last may be smaller.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import anchors as _anchors
from . import cache
from .config import bad

SPLITS = ("train", "valid", "test")
IGNORE = -100  # target where there is nothing to predict (torch's cross_entropy default)


class Task:
    name = ""
    kind = "classify"
    metric = "accuracy"
    Config: type = object
    version = 1  # bumped when a family's generated data changes, so old caches are not read

    def __init__(self, config):
        self.config = config
        self.check()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    def check(self) -> None:
        """Cross-field checks (raise config.bad(...))."""

    @property
    def anchors(self) -> tuple:
        return _anchors.ANCHORS.get(self.name, ())

    @property
    def n_classes(self) -> int | None:
        return None

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    @property
    def source(self) -> str:
        """Where the data comes from, in words (arsenal data list)."""
        return "generated"

    def packages(self) -> tuple[str, ...]:
        """Names of packages.PACKAGES this task's data needs."""
        return ()

    def _split(self, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"task {self.name!r}: split expects one of {', '.join(SPLITS)}, got {split!r}")
        return split

    def _batch_size(self, batch_size) -> int:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"task {self.name!r}: batch_size expects an int >= 1, got {batch_size!r}")
        return batch_size

    def batches(self, split: str, batch_size: int, seed: int = 0):
        raise NotImplementedError


def _order(n: int, split: str, batch_size: int, seed: int) -> list[np.ndarray]:
    """Row indices per batch: shuffled and complete batches for train, in order otherwise."""
    if split == "train":
        idx = np.random.default_rng(seed).permutation(n)
        return [idx[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    idx = np.arange(n)
    return [idx[i : i + batch_size] for i in range(0, n, batch_size)]


def _mask(lengths: np.ndarray | None, rows: np.ndarray, T: int):
    import torch

    if lengths is None:
        return torch.ones(len(rows), T, dtype=torch.bool)
    return torch.arange(T)[None, :] < torch.from_numpy(lengths[rows].astype(np.int64))[:, None]


class ArrayTask(Task):
    """Examples held as arrays with a leading example axis, built once per config and cached.

    build() returns {f"{split}.{key}": array} for every split, keys:
      tokens [N, T] (any integer dtype), lengths [N] (absent: every row is full),
      target [N] or [N, T], and for retrieval tokens2 [N, T], lengths2 [N].
    """

    def build(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def cache_parts(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "version": self.version}

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        if not hasattr(self, "_arrays"):
            self._arrays = cache.cached_arrays(self.name, self.cache_parts(), self.build)
        split = self._split(split)
        return {k.split(".", 1)[1]: v for k, v in self._arrays.items() if k.startswith(split + ".")}

    def n_examples(self, split: str) -> int:
        return len(self.arrays(split)["tokens"])

    def batches(self, split: str, batch_size: int, seed: int = 0):
        import torch

        a = self.arrays(split)
        batch_size = self._batch_size(batch_size)
        for rows in _order(len(a["tokens"]), split, batch_size, seed):
            tokens = torch.from_numpy(a["tokens"][rows].astype(np.int64))
            batch = {"tokens": tokens, "mask": _mask(a.get("lengths"), rows, tokens.shape[1])}
            if "tokens2" in a:
                tokens2 = torch.from_numpy(a["tokens2"][rows].astype(np.int64))
                batch["tokens2"] = tokens2
                batch["mask2"] = _mask(a.get("lengths2"), rows, tokens2.shape[1])
            batch["target"] = torch.from_numpy(a["target"][rows].astype(np.int64))
            yield batch


def pad_rows(rows: list, T: int, dtype=np.int32) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of ids -> (tokens [N, T] zero-padded, lengths [N]); longer rows are cut."""
    out = np.zeros((len(rows), T), dtype=dtype)
    lengths = np.zeros(len(rows), dtype=np.int32)
    for i, r in enumerate(rows):
        r = np.asarray(r[:T])
        out[i, : len(r)] = r
        lengths[i] = len(r)
    return out, lengths


def split_counts(task: str, n_train: int, n_valid: int, n_test: int) -> dict[str, int]:
    for field, n in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if n < 1:
            raise bad(task, field, "an int >= 1", n)
    return {"train": n_train, "valid": n_valid, "test": n_test}


def by_split(arrays: dict[str, np.ndarray], counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Cut arrays of sum(counts) rows, in order, into {f"{split}.{key}": rows}."""
    out, start = {}, 0
    for split, n in counts.items():
        for k, v in arrays.items():
            out[f"{split}.{k}"] = v[start : start + n]
        start += n
    return out


class StreamTask(Task):
    """A language-model stream per split: one long 1-D token sequence.

    stream(split)      [N] int64 tokens of the whole split, for TBPTT (one row per offset)
    n_bytes(split)     bytes of raw UTF-8 text the stream encodes
    bits_per_byte(loss, split)   mean cross-entropy per token in nats -> bits per byte, so
                       that tokenizers compare: loss * tokens / (bytes * ln 2)
    batches yields windows of seq_len tokens with their next tokens as target: random
    offsets for train (len // seq_len windows an epoch), consecutive windows otherwise.
    """

    kind = "lm"
    metric = "bits_per_byte"

    def stream(self, split: str):
        raise NotImplementedError

    def n_bytes(self, split: str) -> int:
        raise NotImplementedError

    def bytes_per_token(self, split: str) -> float:
        return self.n_bytes(split) / len(self.stream(split))

    def bits_per_byte(self, loss_nats_per_token: float, split: str = "test") -> float:
        return loss_nats_per_token / math.log(2) / self.bytes_per_token(split)

    def batches(self, split: str, batch_size: int, seed: int = 0):
        import torch

        s = self.stream(self._split(split))
        batch_size, T = self._batch_size(batch_size), self.seq_len
        n = len(s) - 1  # positions that have a next token
        if split == "train":
            starts = np.random.default_rng(seed).integers(0, max(n - T, 0) + 1, size=max(n // T, 1))
            chunks = [starts[i : i + batch_size] for i in range(0, len(starts) - batch_size + 1, batch_size)]
        else:
            starts = np.arange(0, n, T)
            chunks = [starts[i : i + batch_size] for i in range(0, len(starts), batch_size)]
        for c in chunks:
            tokens = torch.zeros(len(c), T, dtype=torch.int64)
            target = torch.full((len(c), T), IGNORE, dtype=torch.int64)
            mask = torch.zeros(len(c), T, dtype=torch.bool)
            for row, start in enumerate(c.tolist()):
                m = min(T, n - start)
                tokens[row, :m] = s[start : start + m]
                target[row, :m] = s[start + 1 : start + m + 1]
                mask[row, :m] = True
            yield {"tokens": tokens, "mask": mask, "target": target}


def id_dtype(vocab_size: int):
    """The smallest signed integer type for ids below vocab_size and the IGNORE target."""
    return np.int8 if vocab_size <= 127 else np.int16 if vocab_size <= 32767 else np.int32


def distinct_draws(rng: np.random.Generator, n: int, population: int, k: int,
                   logits: np.ndarray | None = None) -> np.ndarray:
    """[n, k] indices drawn without replacement from range(population), in draw order.

    With `logits` [population] the draw is successive sampling proportional to
    exp(logits) (the Gumbel top-k trick), like numpy's choice(replace=False, p=...).
    """
    out = np.empty((n, k), dtype=np.int64)
    if logits is None and 50 * k < population:  # few from many: numpy's set-based draw per row
        for i in range(n):
            out[i] = rng.choice(population, k, replace=False)
        return out
    chunk = max(1, (1 << 22) // population)  # about 32 MB of keys at a time
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        keys = rng.gumbel(size=(m, population))
        if logits is not None:
            keys += logits
        top = np.argpartition(-keys, k - 1, axis=1)[:, :k] if k < population else np.tile(np.arange(population), (m, 1))
        order = np.argsort(-np.take_along_axis(keys, top, 1), axis=1)
        out[i : i + m] = np.take_along_axis(top, order, 1)
    return out
