"""Induction heads (Olsson et al.; as in H3, Hyena and Mamba appendix E.1).

Tokens are uniform over 0..vocab_size-2; the trigger (vocab_size - 1) appears once at a
random position p <= T - 3, and again at the last position, where the model must output
the token that followed the first trigger (tokens[p + 1]). Mamba: vocabulary 16, trained
at length 256, tested at 64 .. 2^20; here valid and test are drawn at test_seq_len.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import IGNORE, ArrayTask, id_dtype
from .config import bad, spec


def generate(n: int, seed: int, *, seq_len: int = 256, vocab_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(tokens [n, seq_len], target [n, seq_len]): target IGNORE except at the last position."""
    if seq_len < 3 or vocab_size < 3:
        raise ValueError(f"induction.generate: seq_len and vocab_size expect >= 3, got {seq_len}, {vocab_size}")
    rng = np.random.default_rng(seed)
    dt = id_dtype(vocab_size)
    trigger = vocab_size - 1
    tokens = rng.integers(0, trigger, size=(n, seq_len)).astype(dt)
    p = rng.integers(0, seq_len - 2, size=n)  # first trigger; its answer at p + 1 <= T - 2
    rows = np.arange(n)
    tokens[rows, p] = trigger
    tokens[:, -1] = trigger
    target = np.full((n, seq_len), IGNORE, dtype=dt)
    target[:, -1] = tokens[rows, p + 1]
    return tokens, target


@dataclass(frozen=True)
class InductionConfig:
    seq_len: int = spec(256, lo=3)         # training length (Mamba: 256)
    test_seq_len: int | None = None        # valid and test length (None: seq_len; Mamba up to 2^20)
    vocab: int = spec(16, lo=3)            # including the trigger (Mamba: 16)
    n_train: int = spec(20_000, lo=1)      # fixed sets (Mamba draws fresh data per step)
    n_valid: int = spec(1_000, lo=1)
    n_test: int = spec(1_000, lo=1)
    seed: int = spec(0, lo=0)


class Induction(ArrayTask):
    name = "induction"
    kind = "lm"
    Config = InductionConfig

    @property
    def vocab_size(self) -> int:
        return self.config.vocab

    @property
    def source(self) -> str:
        return "generated (induction heads)"

    def check(self) -> None:
        if self.config.test_seq_len is not None and self.config.test_seq_len < 3:
            raise bad(self.name, "test_seq_len", "None or an int >= 3", self.config.test_seq_len)

    def generate(self, n: int, seed: int, **params):
        c = self.config
        return generate(n, seed, **{**dict(seq_len=c.seq_len, vocab_size=c.vocab), **params})

    def build(self) -> dict[str, np.ndarray]:
        c = self.config
        out = {}
        for i, (split, n, T) in enumerate((("train", c.n_train, c.seq_len),
                                           ("valid", c.n_valid, c.test_seq_len or c.seq_len),
                                           ("test", c.n_test, c.test_seq_len or c.seq_len))):
            tokens, target = self.generate(n, c.seed * 3 + i, seq_len=T)
            out.update({f"{split}.tokens": tokens, f"{split}.target": target})
        return out
