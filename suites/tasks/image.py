"""Sequential Fashion-MNIST (the stand-in for LRA's Image task), from Debian's package
dataset-fashion-mnist (fetched with apt-get download, read without installing).

Each 28x28 image is read row by row as 784 pixel tokens 0..255 (vocabulary 256), 10
classes. Train is the first 54,000 of a fixed permutation (seed 0) of the 60,000
training images, valid the other 6,000 (LRA cut sCIFAR 90/10 alike), test the 10,000
t10k images. permute=True applies one fixed pixel permutation (the psMNIST variant).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass

import numpy as np

from . import packages
from .base import ArrayTask
from .config import spec

FILES = {  # file in the .deb -> sha256 (research/tasks_datasets.md)
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


def parse_idx(data: bytes) -> np.ndarray:
    """An IDX file (gzip'd): big-endian magic 0x00 0x00 0x08 rank, dims, then uint8 data."""
    raw = gzip.decompress(data)
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError("not an IDX file of unsigned bytes")
    rank = raw[3]
    dims = np.frombuffer(raw[4 : 4 + 4 * rank], dtype=">u4").astype(int)
    return np.frombuffer(raw[4 + 4 * rank :], dtype=np.uint8).reshape(dims)


def read_deb(path, check: bool = True) -> dict[str, np.ndarray]:
    out = {}
    for name, sha in FILES.items():
        data = packages.deb_member(path, "/" + name)
        if check and hashlib.sha256(data).hexdigest() != sha:
            raise ValueError(f"{path}: {name} does not have the pinned sha256 {sha}")
        out[name.split("-idx")[0]] = parse_idx(data)
    return out


@dataclass(frozen=True)
class ImageConfig:
    n_valid: int = spec(6_000, lo=1, hi=59_999)  # held out of the 60,000 training images
    permute: bool = False                         # one fixed pixel permutation (seed 0)


class Image(ArrayTask):
    name = "image"
    kind = "classify"
    Config = ImageConfig
    vocab_size = 256
    seq_len = 784

    @property
    def n_classes(self) -> int:
        return 10

    @property
    def source(self) -> str:
        return f"apt {packages.PACKAGES['dataset-fashion-mnist'].spec}"

    def packages(self) -> tuple[str, ...]:
        return ("dataset-fashion-mnist",)

    def cache_parts(self) -> dict:
        return {**super().cache_parts(), "deb": packages.PACKAGES["dataset-fashion-mnist"].sha256}

    def build(self) -> dict[str, np.ndarray]:
        d = read_deb(packages.fetch("dataset-fashion-mnist"))
        return split_images(d, self.config)


def split_images(d: dict[str, np.ndarray], c: ImageConfig) -> dict[str, np.ndarray]:
    train_x = d["train-images"].reshape(len(d["train-images"]), -1)
    test_x = d["t10k-images"].reshape(len(d["t10k-images"]), -1)
    if c.permute:
        pixels = np.random.default_rng(0).permutation(train_x.shape[1])
        train_x, test_x = train_x[:, pixels], test_x[:, pixels]
    order = np.random.default_rng(0).permutation(len(train_x))
    tr, va = order[: len(order) - c.n_valid], order[len(order) - c.n_valid :]
    y, ty = d["train-labels"].astype(np.int8), d["t10k-labels"].astype(np.int8)
    return {"train.tokens": train_x[tr], "train.target": y[tr],
            "valid.tokens": train_x[va], "valid.target": y[va],
            "test.tokens": test_x, "test.target": ty}
