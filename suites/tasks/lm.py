"""Language-model streams over a text corpus, in any tokenizer (tokens.py).

A family gives texts() -> {split: str} and source_key() (what identifies its text, e.g.
the archive's sha256); this class tokenizes each split once and caches the stream with
the byte count of its text, so bits per byte need no text at training time.
"""

from __future__ import annotations

import numpy as np

from . import cache, tokens
from .base import StreamTask


class TextLM(StreamTask):
    corpus = ""  # the name a trained BPE is cached under

    def texts(self) -> dict[str, str]:
        raise NotImplementedError

    def source_key(self) -> dict:
        raise NotImplementedError

    def _texts(self) -> dict[str, str]:
        if not hasattr(self, "_text_cache"):
            self._text_cache = self.texts()
        return self._text_cache

    def tokenizer(self):
        if not hasattr(self, "_tokenizer"):
            c = self.config
            train = self._texts()["train"] if c.tokenizer in ("words", "bpe") else ""
            self._tokenizer = tokens.get(c.tokenizer, self.corpus or self.name, train, c.bpe_vocab)
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        if self.config.tokenizer == "bytes":
            return 256
        if self.config.tokenizer == "gpt2":
            return tokens.GPT2.vocab_size
        return self.tokenizer().vocab_size

    def _stream_arrays(self, split: str) -> dict[str, np.ndarray]:
        c = self.config
        parts = {"source": self.source_key(), "split": split, "tokenizer": c.tokenizer,
                 "bpe_vocab": c.bpe_vocab if c.tokenizer == "bpe" else None, "version": self.version}

        def build():
            text = self._texts()[split]
            ids = self.tokenizer().encode(text)
            return {"tokens": ids, "n_bytes": np.array(len(text.encode()), dtype=np.int64)}

        return cache.cached_arrays(f"{self.name}-stream", parts, build)

    def stream(self, split: str):
        import torch

        return torch.from_numpy(self._stream_arrays(self._split(split))["tokens"].astype(np.int64))

    def n_bytes(self, split: str) -> int:
        return int(self._stream_arrays(self._split(split))["n_bytes"])
