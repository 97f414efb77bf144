"""A grid of images as a picture file: PNG through Pillow where installed, else PGM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cache import atomic_write


def grid(images: np.ndarray, cols: int = 8, gap: int = 2, scale: int = 1) -> np.ndarray:
    """images [N, H, W] uint8 -> one [rows*(H+gap)-gap, cols*(W+gap)-gap] uint8 picture."""
    n, h, w = images.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), 64, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = im
    return np.kron(out, np.ones((scale, scale), dtype=np.uint8)) if scale > 1 else out


def save(picture: np.ndarray, path: str | Path) -> Path:
    """Write [H, W] uint8 as PNG (Pillow) or, for a .pgm path or without Pillow, as binary PGM."""
    path = Path(path)
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is None or path.suffix.lower() == ".pgm":
        path = path.with_suffix(".pgm")
        header = f"P5\n{picture.shape[1]} {picture.shape[0]}\n255\n".encode()
        return atomic_write(path, lambda tmp: tmp.write_bytes(header + picture.tobytes()))
    return atomic_write(path, lambda tmp: Image.fromarray(picture).save(tmp, format=path.suffix[1:].upper() or "PNG"))
