"""ListOps (Nangia and Bowman 2018) with the exact rules of LRA's generator (listops.py).

A tree is a digit 0-9 or an operator over 2..max_args subtrees: MIN, MAX, MED (the median,
truncated by int()), SM (sum mod 10). Below max_depth a node is a leaf with probability
0.75 (LRA: r > VALUE_P = 0.25), at max_depth always a leaf; the root has depth 1. A tree's
length is its token count (a leaf 1, an operator node 2 + its subtrees: the operator and
"]"); trees with min_length < length < max_length are kept, duplicates dropped, and the
first n_train, then n_valid, then n_test form the splits (LRA: 96,000 / 2,000 / 2,000).

Raw examples are LRA's TSV text, e.g. "( ( ( [MAX 2 ) 9 ) ] )" with label 9; as in LRA's
input pipeline the parentheses are dropped before splitting on spaces. Token ids: 0 pad,
then the 15 symbols of SYMBOLS (vocab_size 16). Rows are padded to max_length.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from . import lra_release
from .base import ArrayTask, by_split, pad_rows, split_counts
from .config import bad, spec

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
SYMBOLS = tuple(str(d) for d in range(10)) + OPERATORS + (END,)
TOKEN_ID = {s: i + 1 for i, s in enumerate(SYMBOLS)}  # 0 is padding
LEAF_P = 0.75  # LRA: VALUE_P = 0.25, a leaf when random() > VALUE_P


class _TooLong(Exception):
    pass


def _tree(rng: random.Random, depth: int, max_depth: int, max_args: int, budget: list[int]):
    """(tree, length); a tree is a digit or (operator, [subtrees]). Draws in LRA's order.

    budget [1]: tokens still allowed; a tree that outgrows it is abandoned (_TooLong): it
    would be rejected anyway, so the law of the kept trees is LRA's.
    """
    r = rng.random() if depth < max_depth else 1.0
    if r > 1.0 - LEAF_P:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLong
        return rng.choice(range(10)), 1
    budget[0] -= 2
    if budget[0] < 0:
        raise _TooLong
    length = 2
    children = []
    for _ in range(rng.randint(2, max_args)):
        child, n = _tree(rng, depth + 1, max_depth, max_args, budget)
        children.append(child)
        length += n
    return (rng.choice(OPERATORS), children), length


def to_string(tree) -> str:
    """LRA's serialisation: left-nested pairs in parentheses, closed by "]"."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    text = f"( {op} {to_string(children[0])} )"
    for child in children[1:]:
        text = f"( {text} {to_string(child)} )"
    return f"( {text} {END} )"


def value(tree) -> int:
    if isinstance(tree, int):
        return tree
    op, children = tree
    values = [value(c) for c in children]
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[MED":
        return int(np.median(values))
    return sum(values) % 10


def generate(n: int, seed: int, *, min_length: int = 500, max_length: int = 2000,
             max_depth: int = 10, max_args: int = 10) -> list[tuple[str, int]]:
    """n distinct (expression in LRA's TSV format, label), min_length < tokens < max_length."""
    if max_length - min_length < 2:
        raise ValueError(f"listops.generate: no length lies strictly between min_length={min_length} "
                         f"and max_length={max_length}")
    rng = random.Random(seed)
    kept: dict[str, int] = {}  # insertion-ordered: the same seed gives the same order
    while len(kept) < n:
        try:
            tree, length = _tree(rng, 1, max_depth, max_args, [max_length - 1])
        except _TooLong:
            continue
        if min_length < length:
            kept.setdefault(to_string(tree), value(tree))
    return list(kept.items())


def tokenize(text: str) -> list[int]:
    """LRA's pipeline: drop parentheses, split on whitespace; symbols -> ids 1..15."""
    try:
        return [TOKEN_ID[s] for s in text.replace("(", " ").replace(")", " ").split()]
    except KeyError as e:
        raise ValueError(f"task 'listops': unknown symbol {e.args[0]!r} in {text[:80]!r}; "
                         f"expected one of {' '.join(SYMBOLS)}") from None


@dataclass(frozen=True)
class ListOpsConfig:
    max_length: int = spec(2000, lo=3)     # LRA: 2,000; rows are padded to it (T)
    min_length: int | None = None          # keep min_length < tokens < max_length; None: max_length // 4 (LRA: 500)
    max_depth: int = spec(10, lo=1)        # LRA: 10; the root has depth 1
    max_args: int = spec(10, lo=2)         # LRA: 10; an operator takes 2..max_args subtrees
    n_train: int = spec(96_000, lo=1)      # LRA: 96,000 / 2,000 / 2,000
    n_valid: int = spec(2_000, lo=1)
    n_test: int = spec(2_000, lo=1)
    seed: int = spec(0, lo=0)              # the data (batch order has its own seed)
    source: str = spec("generated", choices=("generated", "lra"))  # "lra": the release's TSVs
    lra_dir: str | None = None             # with source="lra": the folder holding listops-1000/


class ListOps(ArrayTask):
    name = "listops"
    kind = "classify"
    Config = ListOpsConfig
    vocab_size = len(SYMBOLS) + 1

    @property
    def n_classes(self) -> int:
        return 10

    @property
    def seq_len(self) -> int:
        return self.config.max_length

    @property
    def source(self) -> str:
        c = self.config
        return f"LRA release {c.lra_dir}" if c.source == "lra" else "generated (LRA's ListOps rules)"

    @property
    def min_length(self) -> int:
        c = self.config
        return c.max_length // 4 if c.min_length is None else c.min_length

    def check(self) -> None:
        c = self.config
        if c.min_length is not None and c.min_length < 0:
            raise bad(self.name, "min_length", "None or an int >= 0", c.min_length)
        if c.source == "generated" and c.max_length - self.min_length < 2:
            raise bad(self.name, "max_length", f"an int >= min_length + 2 = {self.min_length + 2}", c.max_length)
        if c.source == "lra" and not c.lra_dir:
            raise bad(self.name, "lra_dir", "the lra_release folder when source='lra'", c.lra_dir)

    def generate(self, n: int, seed: int, **params) -> list[tuple[str, int]]:
        c = self.config
        defaults = dict(min_length=self.min_length, max_length=c.max_length, max_depth=c.max_depth, max_args=c.max_args)
        return generate(n, seed, **{**defaults, **params})

    def cache_parts(self) -> dict:
        parts = super().cache_parts()
        if self.config.source == "lra":
            parts["files"] = lra_release.fingerprint(lra_release.listops_files(self.config.lra_dir))
        return parts

    def build(self) -> dict[str, np.ndarray]:
        c = self.config
        if c.source == "lra":
            out = {}
            for split, rows in lra_release.listops_rows(c.lra_dir).items():
                tokens, lengths = pad_rows([tokenize(t) for t, _ in rows], c.max_length, np.int8)
                out.update({f"{split}.tokens": tokens, f"{split}.lengths": lengths,
                            f"{split}.target": np.array([y for _, y in rows], dtype=np.int8)})
            return out
        counts = split_counts(self.name, c.n_train, c.n_valid, c.n_test)
        rows = self.generate(sum(counts.values()), c.seed)
        tokens, lengths = pad_rows([tokenize(t) for t, _ in rows], c.max_length, np.int8)
        return by_split({"tokens": tokens, "lengths": lengths,
                         "target": np.array([y for _, y in rows], dtype=np.int8)}, counts)
