"""Selective copying (Gu and Dao, Mamba, appendix E.1; S4's copying task with variable=True).

n_tokens data tokens, drawn from 1..vocab_size-2, sit at sorted random positions among
the first n_tokens + length slots; every other slot there is the blank 0. Then come
n_tokens markers (vocab_size - 1), and at the i-th marker the model must output the i-th
data token. T = length + 2 * n_tokens. Mamba's setting: length 4,096, 16 tokens,
vocabulary 16 (S6 99.8%, S4 18.3%). Mamba draws fresh data every step; here the splits
are fixed sets of n_train / n_valid / n_test examples (cached).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import IGNORE, ArrayTask, by_split, distinct_draws, id_dtype, split_counts
from .config import spec


def generate(n: int, seed: int, *, length: int = 4096, n_tokens: int = 16,
             vocab_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(tokens [n, T], target [n, T]) with T = length + 2 * n_tokens; target IGNORE off the markers."""
    if vocab_size < 3:
        raise ValueError(f"selective_copy.generate: vocab_size expects >= 3 (blank, a token, marker), got {vocab_size}")
    rng = np.random.default_rng(seed)
    M, T = n_tokens, length + 2 * n_tokens
    dt = id_dtype(vocab_size)
    data = rng.integers(1, vocab_size - 1, size=(n, M), dtype=np.int64)
    where = np.sort(distinct_draws(rng, n, M + length, M), axis=1)  # [n, M] positions of the data
    tokens = np.zeros((n, T), dtype=dt)
    np.put_along_axis(tokens, where, data.astype(dt), axis=1)
    tokens[:, M + length :] = vocab_size - 1
    target = np.full((n, T), IGNORE, dtype=dt)
    target[:, M + length :] = data
    return tokens, target


@dataclass(frozen=True)
class SelectiveCopyConfig:
    length: int = spec(4096, lo=1)         # slots among which the data is scattered (Mamba: 4,096)
    n_tokens: int = spec(16, lo=1)         # tokens to memorise (Mamba: 16)
    vocab: int = spec(16, lo=3)            # including the blank 0 and the marker (Mamba: 16)
    n_train: int = spec(10_000, lo=1)      # fixed sets (Mamba draws fresh data per step)
    n_valid: int = spec(500, lo=1)
    n_test: int = spec(500, lo=1)
    seed: int = spec(0, lo=0)              # the data (batch order has its own seed)


class SelectiveCopy(ArrayTask):
    name = "selective_copy"
    kind = "lm"
    Config = SelectiveCopyConfig

    @property
    def vocab_size(self) -> int:
        return self.config.vocab

    @property
    def seq_len(self) -> int:
        return self.config.length + 2 * self.config.n_tokens

    @property
    def source(self) -> str:
        return "generated (Mamba's selective copying)"

    def generate(self, n: int, seed: int, **params):
        c = self.config
        return generate(n, seed, **{**dict(length=c.length, n_tokens=c.n_tokens, vocab_size=c.vocab), **params})

    def build(self) -> dict[str, np.ndarray]:
        c = self.config
        counts = split_counts(self.name, c.n_train, c.n_valid, c.n_test)
        tokens, target = self.generate(sum(counts.values()), c.seed)
        return by_split({"tokens": tokens, "target": target}, counts)
