"""Multi-query associative recall (Arora et al., Zoology, ICLR 2024), from its definition.

Keys are drawn from 1..vocab/2-1 and values from vocab/2..vocab-1, each distinct within
an example; the sequence opens with the n_kv pairs "k1 v1 k2 v2 ...", then every key is
queried once in the remaining T - 2 n_kv slots, at slot 2 n_kv + 2 g with the gaps g
drawn without replacement from p(g) proportional to (g + 1)^(a - 1), a = power_a (near
queries likelier). The target at a query is its key's value, IGNORE elsewhere. The other
slots hold random tokens (random_fill) or 0. Zoology's figure 2: vocab 8,192,
(T, n_kv) in (64, 4), (128, 8), (256, 16), (512, 64); 100k train / 3k test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import IGNORE, ArrayTask, by_split, distinct_draws, id_dtype, split_counts
from .config import bad, spec


def generate(n: int, seed: int, *, seq_len: int = 256, n_kv: int = 16, vocab_size: int = 8192,
             power_a: float = 0.01, random_fill: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(tokens [n, seq_len], target [n, seq_len]): target = value at each query, IGNORE elsewhere."""
    if seq_len % 2 or 4 * n_kv > seq_len or vocab_size // 2 - 1 < n_kv:
        raise ValueError(f"mqar.generate: expects an even seq_len >= 4 * n_kv and vocab_size // 2 - 1 >= n_kv, "
                         f"got seq_len={seq_len}, n_kv={n_kv}, vocab_size={vocab_size}")
    rng = np.random.default_rng(seed)
    dt = id_dtype(vocab_size)
    half, context = vocab_size // 2, 2 * n_kv
    keys = 1 + distinct_draws(rng, n, half - 1, n_kv)            # [n, kv] in 1..half-1
    values = half + distinct_draws(rng, n, vocab_size - half, n_kv)  # [n, kv] in half..vocab-1
    space = (seq_len - context) // 2
    logits = (power_a - 1) * np.log(np.arange(1, space + 1))
    gaps = distinct_draws(rng, n, space, n_kv, logits)           # [n, kv]
    tokens = (rng.integers(0, vocab_size, size=(n, seq_len)) if random_fill
              else np.zeros((n, seq_len), dtype=np.int64)).astype(dt)
    tokens[:, 0:context:2] = keys
    tokens[:, 1:context:2] = values
    where = context + 2 * gaps
    np.put_along_axis(tokens, where, keys.astype(dt), axis=1)
    target = np.full((n, seq_len), IGNORE, dtype=dt)
    np.put_along_axis(target, where, values.astype(dt), axis=1)
    return tokens, target


@dataclass(frozen=True)
class MQARConfig:
    seq_len: int = spec(256, lo=4)          # Zoology: 64 / 128 / 256 / 512
    n_kv: int = spec(16, lo=1)              # Zoology: 4 / 8 / 16 / 64
    vocab: int = spec(8192, lo=4)           # Zoology: 8,192
    power_a: float = spec(0.01, lo=0.0)     # gap law p(g) ~ g^(a-1) (Zoology: 0.01)
    random_fill: bool = True                # non-query slots: random tokens (True) or 0
    n_train: int = spec(100_000, lo=1)      # Zoology: 100,000 / 3,000
    n_valid: int = spec(3_000, lo=1)
    n_test: int = spec(3_000, lo=1)
    seed: int = spec(0, lo=0)


class MQAR(ArrayTask):
    name = "mqar"
    kind = "lm"
    Config = MQARConfig

    @property
    def vocab_size(self) -> int:
        return self.config.vocab

    @property
    def source(self) -> str:
        return "generated (Zoology's MQAR)"

    def check(self) -> None:
        c = self.config
        if c.seq_len % 2:
            raise bad(self.name, "seq_len", "an even int", c.seq_len)
        if 4 * c.n_kv > c.seq_len:
            raise bad(self.name, "n_kv", f"an int <= seq_len / 4 = {c.seq_len // 4}", c.n_kv)
        if c.vocab // 2 - 1 < c.n_kv:
            raise bad(self.name, "vocab", f"an int >= 2 * (n_kv + 1) = {2 * (c.n_kv + 1)}", c.vocab)

    def generate(self, n: int, seed: int, **params):
        c = self.config
        defaults = dict(seq_len=c.seq_len, n_kv=c.n_kv, vocab_size=c.vocab, power_a=c.power_a,
                        random_fill=c.random_fill)
        return generate(n, seed, **{**defaults, **params})

    def build(self) -> dict[str, np.ndarray]:
        c = self.config
        counts = split_counts(self.name, c.n_train, c.n_valid, c.n_test)
        tokens, target = self.generate(sum(counts.values()), c.seed)
        return by_split({"tokens": tokens, "target": target}, counts)
