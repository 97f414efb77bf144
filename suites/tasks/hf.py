"""Real corpora through HF `datasets` (imported only when one is used): IMDb for `text`,
TinyStories and FineWeb as LM streams. All are read as streams, so nothing larger than
the bytes asked for is downloaded.

`local_dir` replaces the hub by a folder of files named by split (train.jsonl,
validation.parquet, test.tsv with a header row, ...: whatever datasets reads), so the same loaders
run on the tests' fixtures and on offline copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import lra_release
from .config import bad, spec
from .lm import TextLM

FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".txt": "text"}


def _datasets():
    try:
        import datasets
    except ImportError:
        raise ImportError("this source needs HF datasets: pip install 'arsenal[tasks]'") from None
    return datasets


def records(hub: str, config: str | None, split: str, local_dir: str | None = None):
    """An iterator of dicts: the split streamed from the hub, or read from local_dir."""
    datasets = _datasets()
    if local_dir:
        files = sorted(p for p in Path(local_dir).glob(f"{split}.*") if p.suffix in FORMATS)
        if not files:
            raise FileNotFoundError(f"{local_dir}: no {split}.<{'|'.join(s[1:] for s in FORMATS)}> file")
        extra = {"delimiter": "\t"} if files[0].suffix == ".tsv" else {}  # a header row names the columns
        return iter(datasets.load_dataset(FORMATS[files[0].suffix], data_files={split: str(files[0])},
                                          split=split, streaming=True, **extra))
    return iter(datasets.load_dataset(hub, config, split=split, streaming=True))


def imdb_rows(local_dir: str | None = None) -> dict[str, list[tuple[bytes, int]]]:
    """{train, valid, test: [(review bytes, label 0/1)]}; valid is the test set, as in LRA and S4."""
    out = {s: [(r["text"].encode(), int(r["label"])) for r in records("stanfordnlp/imdb", None, s, local_dir)]
           for s in ("train", "test")}
    out["valid"] = out["test"]
    return out


def take(rows, n_bytes: int, field: str = "text", sep: str = "\n\n") -> str:
    """Documents from `rows` joined by sep until n_bytes of text are reached (cut there)."""
    parts, total = [], 0
    for r in rows:
        piece = r[field] + sep
        parts.append(piece)
        total += len(piece.encode())
        if total >= n_bytes:
            break
    return "".join(parts).encode()[:n_bytes].decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class HFTextConfig:
    seq_len: int = spec(512, lo=1)
    tokenizer: str = spec("bytes", choices=("bytes", "bpe", "gpt2"))
    bpe_vocab: int = spec(4096, lo=257)           # with tokenizer="bpe"
    train_bytes: int = spec(50_000_000, lo=1)     # text read for training (streamed)
    eval_bytes: int = spec(1_000_000, lo=1)       # text read for valid and for test, each
    local_dir: str | None = None                  # files named by split instead of the hub


class HFText(TextLM):
    """An LM stream of a hub text data set. valid and test are the first 2 x eval_bytes
    of eval_split where the data set has one, else of the train split, ahead of train."""

    hub, hub_config, eval_split = "", None, None
    Config = HFTextConfig

    @property
    def source(self) -> str:
        return f"local files {self.config.local_dir}" if self.config.local_dir else f"HF datasets {self.hub} (streamed)"

    def check(self) -> None:
        if self.config.local_dir and not Path(self.config.local_dir).is_dir():
            raise bad(self.name, "local_dir", "an existing folder", self.config.local_dir)

    def source_key(self) -> dict:
        c = self.config
        files = lra_release.fingerprint(sorted(Path(c.local_dir).iterdir())) if c.local_dir else None
        return {"hub": self.hub, "config": self.hub_config, "files": files,
                "train_bytes": c.train_bytes, "eval_bytes": c.eval_bytes}

    def texts(self) -> dict[str, str]:
        c = self.config
        if self.eval_split:
            ev = records(self.hub, self.hub_config, self.eval_split, c.local_dir)
            train = records(self.hub, self.hub_config, "train", c.local_dir)
        else:
            ev = train = records(self.hub, self.hub_config, "train", c.local_dir)
        valid = take(ev, c.eval_bytes)
        test = take(ev, c.eval_bytes)
        return {"valid": valid, "test": test, "train": take(train, c.train_bytes)}


class TinyStories(HFText):
    name = "tinystories"
    corpus = "tinystories"
    hub, eval_split = "roneneldan/TinyStories", "validation"


class FineWeb(HFText):
    name = "fineweb"
    corpus = "fineweb"
    hub, hub_config = "HuggingFaceFW/fineweb", "sample-10BT"
