"""Readers for the files of LRA's `lra_release` (the real benchmark, one flag away).

Layout read (the folder given as lra_dir):
  listops-1000/basic_{train,val,test}.tsv              header "Source\tTarget"
  pathfinder32/<difficulty>/metadata/<k>.npy             text lines "imgs/<k> sample_<i>.png <i> <label> ..."
  pathfinder32/<difficulty>/imgs/<k>/sample_<i>.png      (pathfinder128/ for Path-X)
  tsv_data/new_aan_pairs.{train,eval,test}.tsv           label, id1, id2, text1, text2
Pathfinder has no split files: as in S4, the images are cut 80/10/10, here in metadata
order (metadata files in numeric order). The `.npy` metadata files are text despite
their name. Tested on a few-KB copy of this layout in tests/fixtures/lra_release/.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

LISTOPS_SPLITS = {"train": "basic_train.tsv", "valid": "basic_val.tsv", "test": "basic_test.tsv"}
AAN_SPLITS = {"train": "new_aan_pairs.train.tsv", "valid": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} does not exist (lra_dir should be the unpacked lra_release folder)")
    return path


def fingerprint(paths: list[Path]) -> list:
    """Name, size and mtime of each file: a changed release is read again."""
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def listops_files(lra_dir: str) -> list[Path]:
    base = Path(lra_dir) / "listops-1000"
    return [_need(base / f, "ListOps (LRA release)") for f in LISTOPS_SPLITS.values()]


def listops_rows(lra_dir: str) -> dict[str, list[tuple[str, int]]]:
    out = {}
    for (split, _), path in zip(LISTOPS_SPLITS.items(), listops_files(lra_dir)):
        with open(path, newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if rows and rows[0][:2] == ["Source", "Target"]:
            rows = rows[1:]
        out[split] = [(r[0], int(r[1])) for r in rows if r]
    return out


def pathfinder_dir(lra_dir: str, resolution: int, difficulty: str) -> Path:
    return _need(Path(lra_dir) / f"pathfinder{resolution}" / difficulty, f"Pathfinder {resolution} (LRA release)")


def pathfinder_metadata(lra_dir: str, resolution: int, difficulty: str) -> list[tuple[Path, int]]:
    """[(image path, label)] in metadata order."""
    base = pathfinder_dir(lra_dir, resolution, difficulty)
    files = sorted(_need(base / "metadata", "Pathfinder metadata").glob("*.npy"), key=lambda p: int(p.stem))
    out = []
    for meta in files:
        for line in meta.read_text().splitlines():
            fields = line.split()
            if fields:
                out.append((base / fields[0] / fields[1], int(fields[3])))
    return out


def pathfinder_images(lra_dir: str, resolution: int, difficulty: str) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, H, W] uint8, labels [N] int8) of every image the metadata lists."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading LRA's Pathfinder PNGs needs Pillow: pip install pillow") from None
    rows = pathfinder_metadata(lra_dir, resolution, difficulty)
    images = np.zeros((len(rows), resolution, resolution), dtype=np.uint8)
    for i, (path, _) in enumerate(rows):
        with Image.open(path) as im:
            images[i] = np.asarray(im.convert("L"), dtype=np.uint8)
    return images, np.array([y for _, y in rows], dtype=np.int8)


def aan_files(lra_dir: str) -> list[Path]:
    base = Path(lra_dir) / "tsv_data"
    return [_need(base / f, "AAN retrieval (LRA release)") for f in AAN_SPLITS.values()]


def aan_pairs(lra_dir: str) -> dict[str, list[tuple[bytes, bytes, int]]]:
    """{split: [(text1 bytes, text2 bytes, label)]}; an optional header row is skipped."""
    csv.field_size_limit(sys.maxsize)  # a whole paper is one field
    out = {}
    for (split, _), path in zip(AAN_SPLITS.items(), aan_files(lra_dir)):
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r]
        if rows and rows[0][0] == "label":
            rows = rows[1:]
        out[split] = [(r[3].encode(), r[4].encode(), int(float(r[0]))) for r in rows]
    return out
