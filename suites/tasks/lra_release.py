"""Readers for the files of LRA's `lra_release` (the real benchmark, one flag away).

Layout read (the folder given as lra_dir):
  listops-1000/basic_{train,val,test}.tsv              header "Source\tTarget"
  pathfinder32/<difficulty>/metadata/<k>.npy             text lines "imgs/<k> sample_<i>.png <i> <label> ..."
  pathfinder32/<difficulty>/imgs/<k>/sample_<i>.png      (pathfinder128/ for Path-X)
  tsv_data/new_aan_pairs.{train,eval,test}.tsv           label, id1, id2, text1, text2
The release's tarball (lra_release.gz) unpacks to lra_release/ with listops-1000/ and
tsv_data/ in it but the Pathfinder folders one level deeper, in lra_release/lra_release/.
So each part is looked for in lra_dir, then in lra_dir/lra_release/, then (lra_dir being
that nested folder) in its parent: the top folder and the nested one both work, and a
missing part names every folder looked in.
Pathfinder has no split files: as in S4, the images are cut 80/10/10, here in metadata
order (metadata files in numeric order). The `.npy` metadata files are text despite
their name. Tested on a few-KB copy of this layout in tests/fixtures/lra_release/ (and
that copy nested as the tarball unpacks, in the tests).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

LISTOPS_SPLITS = {"train": "basic_train.tsv", "valid": "basic_val.tsv", "test": "basic_test.tsv"}
AAN_SPLITS = {"train": "new_aan_pairs.train.tsv", "valid": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}


NESTED = "lra_release"  # the tarball's inner folder, holding the Pathfinder folders


def _roots(lra_dir: str) -> list[Path]:
    """Where a part of the release may sit: lra_dir, its nested lra_release/, and the
    parent of lra_dir when lra_dir is that nested folder."""
    base = Path(lra_dir)
    return [base, base / NESTED] + ([base.parent] if base.name == NESTED else [])


def _part(lra_dir: str, name: str) -> Path:
    """The release's folder ``name`` (listops-1000, pathfinder32, tsv_data) wherever the
    tarball put it; where it is nowhere, its place in lra_dir (for the error)."""
    roots = _roots(lra_dir)
    return next((r / name for r in roots if (r / name).is_dir()), roots[0] / name)


def _need(path: Path, what: str, lra_dir: str) -> Path:
    if not path.exists():
        looked = ", ".join(f"{r}/" for r in _roots(lra_dir))
        raise FileNotFoundError(
            f"{what}: {path} does not exist (looked in {looked}); pass lra_dir= the folder lra_release.gz unpacked "
            "to, the one holding listops-1000/ and tsv_data/ (its lra_release/ subfolder, holding pathfinder32/, "
            "works too)")
    return path


def fingerprint(paths: list[Path]) -> list:
    """Name, size and mtime of each file: a changed release is read again."""
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def listops_files(lra_dir: str) -> list[Path]:
    base = _part(lra_dir, "listops-1000")
    return [_need(base / f, "ListOps (LRA release)", lra_dir) for f in LISTOPS_SPLITS.values()]


def listops_rows(lra_dir: str) -> dict[str, list[tuple[str, int]]]:
    out = {}
    for (split, _), path in zip(LISTOPS_SPLITS.items(), listops_files(lra_dir)):
        with open(path, newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if rows and rows[0][:2] == ["Source", "Target"]:
            rows = rows[1:]
        out[split] = [(r[0], int(r[1])) for r in rows if r]
    return out


def pathfinder_path(lra_dir: str, resolution: int, difficulty: str) -> Path:
    """Where the release's images of this resolution and difficulty are (or would be)."""
    return _part(lra_dir, f"pathfinder{resolution}") / difficulty


def pathfinder_dir(lra_dir: str, resolution: int, difficulty: str) -> Path:
    return _need(pathfinder_path(lra_dir, resolution, difficulty), f"Pathfinder {resolution} (LRA release)", lra_dir)


def pathfinder_metadata(lra_dir: str, resolution: int, difficulty: str) -> list[tuple[Path, int]]:
    """[(image path, label)] in metadata order."""
    base = pathfinder_dir(lra_dir, resolution, difficulty)
    files = sorted(_need(base / "metadata", "Pathfinder metadata", lra_dir).glob("*.npy"), key=lambda p: int(p.stem))
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
    base = _part(lra_dir, "tsv_data")
    return [_need(base / f, "AAN retrieval (LRA release)", lra_dir) for f in AAN_SPLITS.values()]


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
