"""Pathfinder and Path-X (Linsley et al. 2018; LRA's 32x32 and 128x128 sets), re-rendered.

The rules of the Pathfinder generator, implemented here in numpy:
- a snake is a chain of `contour_length` paddles (anti-aliased segments of paddle_length
  and paddle_thickness); each next paddle's centre lies paddle_length + margin from the
  last one's, at a turn drawn with weight cos^2(min(continuity * turn, pi/2)) among the
  turns whose paddle stays on the canvas (inside `padding`) and off every pixel within
  `margin` of the paddles already drawn: smooth curves that never touch;
- two target snakes grow from seeds seed_distance apart; then distractor snakes of
  contour_length // 3 paddles (their number set by `distractor_budget`) fill the canvas;
- markers (discs of marker_radius) sit on the first paddle of target snake A and on the
  last paddle of A (label 1: connected) or of B (label 0), each label with probability 1/2.
Pixel values 0..255 are the tokens (vocabulary 256, T = resolution^2). Parameters follow
the LRA builder's docstring where it gives them; the 128x128 paddle length (5) is this
renderer's choice. Images differ from LRA's pixel for pixel, so the LRA figures are
approximate anchors. Image i of a set depends only on (seed, i): workers split the work.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from . import lra_release
from .base import ArrayTask, by_split, split_counts
from .config import bad, spec


@dataclass(frozen=True)
class Style:
    paddle_length: float
    margin: float
    padding: int
    thickness: float
    marker_radius: float
    seed_distance: float
    continuity: float
    distractor_budget: int  # distractor snakes = distractor_budget // (contour_length // 3)
    contrast: float         # paddle intensity (markers are drawn at full intensity)


STYLES = {
    32: Style(2.0, 1.0, 1, 0.5, 1.5, 7.0, 1.0, 20, 0.75),
    64: Style(3.0, 1.0, 1, 1.0, 2.5, 12.0, 1.8, 22, 0.8),
    128: Style(5.0, 2.0, 1, 1.5, 3.0, 20.0, 1.8, 35, 0.9),
}
CHUNK = 64  # images a job renders (one process each)
TURNS = np.linspace(-math.pi / 2, math.pi / 2, 25)  # candidate turns between paddles


class _Canvas:
    """An image being drawn: intensity [S, S] and the pixels blocked for new paddles."""

    def __init__(self, size: int, style: Style):
        self.size, self.style = size, style
        self.image = np.zeros((size, size), dtype=np.float32)
        self.blocked = np.zeros((size, size), dtype=bool)
        self.yy, self.xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres

    def _distance(self, a: np.ndarray, b: np.ndarray, reach: float):
        """(window, distance of its pixel centres to the segment a-b): only pixels within reach."""
        lo = np.floor(np.minimum(a, b) - reach).astype(int).clip(0, self.size)
        hi = np.ceil(np.maximum(a, b) + reach).astype(int).clip(0, self.size)
        win = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        xx, yy, ab = self.xx[win], self.yy[win], b - a
        t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(ab @ ab, 1e-12), 0, 1)
        return win, np.hypot(xx - (a[0] + t * ab[0]), yy - (a[1] + t * ab[1]))

    def ends(self, centre: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
        half = self.style.paddle_length / 2 * np.array([math.cos(angle), math.sin(angle)])
        return centre - half, centre + half

    def fits(self, centres: np.ndarray, angles: np.ndarray) -> np.ndarray:
        """Which candidate paddles [K] stay inside the padding and off blocked pixels."""
        s = self.style
        t = np.linspace(-0.5, 0.5, 5)[None, :, None] * s.paddle_length
        d = np.stack([np.cos(angles), np.sin(angles)], -1)[:, None, :]
        pts = centres[:, None, :] + t * d  # [K, 5, 2] points along each paddle
        lo, hi = s.padding + s.thickness, self.size - s.padding - s.thickness
        inside = ((pts >= lo) & (pts < hi)).all(axis=(1, 2))
        ij = np.clip(pts.astype(int), 0, self.size - 1)
        return inside & ~self.blocked[ij[..., 1], ij[..., 0]].any(axis=1)

    def draw(self, paddle: tuple[np.ndarray, float]) -> None:
        reach = self.style.thickness / 2 + 0.5
        win, d = self._distance(*self.ends(*paddle), reach)
        ink = np.clip(reach - d, 0, 1) * self.style.contrast
        np.maximum(self.image[win], ink, out=self.image[win])

    def block(self, paddle: tuple[np.ndarray, float]) -> None:
        reach = self.style.margin + self.style.thickness / 2 + 0.5
        win, d = self._distance(*self.ends(*paddle), reach)
        self.blocked[win] |= d < reach

    def marker(self, centre: np.ndarray) -> None:
        reach = self.style.marker_radius + 0.5
        win, d = self._distance(centre, centre, reach)
        np.maximum(self.image[win], np.clip(reach - d, 0, 1), out=self.image[win])


def _snake(rng: np.random.Generator, canvas: _Canvas, n: int, start: np.ndarray | None = None):
    """Grow n paddles [(centre, angle)], drawn and blocked, or None where it gets stuck."""
    s = canvas.style
    lo, hi = s.padding + s.paddle_length, canvas.size - s.padding - s.paddle_length
    centre = rng.uniform(lo, hi, size=2) if start is None else start
    angle = rng.uniform(0, 2 * math.pi)
    if not canvas.fits(centre[None], np.array([angle]))[0]:
        return None
    paddles, step = [(centre, angle)], s.paddle_length + s.margin
    weights = np.cos(np.minimum(s.continuity * np.abs(TURNS), math.pi / 2)) ** 2
    for _ in range(n - 1):
        angles = angle + TURNS
        centres = centre + step * np.stack([np.cos(angles), np.sin(angles)], -1)
        ok = canvas.fits(centres, angles) & (weights > 1e-9)
        if not ok.any():
            return None
        if len(paddles) >= 2:  # the last paddle blocks only once the next one is placed
            canvas.block(paddles[-2])
        p = np.where(ok, weights, 0)
        k = rng.choice(len(TURNS), p=p / p.sum())
        centre, angle = centres[k], angles[k]
        paddles.append((centre, angle))
    for p in paddles:
        canvas.draw(p)
        canvas.block(p)
    return paddles


def render(rng: np.random.Generator, size: int, contour_length: int, style: Style | None = None,
           tries: int = 200) -> tuple[np.ndarray, int]:
    """One image [size, size] uint8 and its label (1: the markers are connected)."""
    style = style or STYLES[size]
    distractor_length = max(contour_length // 3, 1)
    for _ in range(tries):
        canvas = _Canvas(size, style)
        a = _snake(rng, canvas, contour_length)
        if a is None:
            continue
        phi = rng.uniform(0, 2 * math.pi)
        seed_b = a[0][0] + style.seed_distance * np.array([math.cos(phi), math.sin(phi)])
        b = _snake(rng, canvas, contour_length, start=seed_b)
        if b is None:
            continue
        for _ in range(style.distractor_budget // distractor_length):
            for _ in range(5):  # a distractor that gets stuck is drawn again elsewhere
                if _snake(rng, canvas, distractor_length) is not None:
                    break
        label = int(rng.random() < 0.5)
        canvas.marker(a[0][0])
        canvas.marker((a if label else b)[-1][0])
        return np.round(canvas.image * 255).astype(np.uint8), label
    raise RuntimeError(f"pathfinder: no image of {contour_length} paddles fits {size}x{size} in {tries} tries")


def _render_range(args) -> tuple[np.ndarray, np.ndarray]:
    seed, start, stop, size, contour_length = args
    images = np.zeros((stop - start, size, size), dtype=np.uint8)
    labels = np.zeros(stop - start, dtype=np.int8)
    for i in range(start, stop):
        images[i - start], labels[i - start] = render(np.random.default_rng([seed, i]), size, contour_length)
    return images, labels


def generate(n: int, seed: int, *, resolution: int = 32, contour_length: int = 14,
             workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(images [n, resolution, resolution] uint8, labels [n] int8); workers > 1 uses processes."""
    if resolution not in STYLES:
        raise ValueError(f"pathfinder.generate: resolution expects one of {sorted(STYLES)}, got {resolution}")
    jobs = [(seed, i, min(i + CHUNK, n), resolution, contour_length) for i in range(0, n, CHUNK)]
    if workers > 1 and len(jobs) > 1:
        import concurrent.futures
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch's threads
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
            parts = list(pool.map(_render_range, jobs))
    else:
        parts = [_render_range(j) for j in jobs]
    if not parts:
        return np.zeros((0, resolution, resolution), np.uint8), np.zeros(0, np.int8)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclass(frozen=True)
class PathfinderConfig:
    resolution: int = spec(32, choices=(32, 64, 128))
    contour_length: int = spec(14, choices=(6, 9, 14))  # paddles: 6 easy, 9, 14 hard (LRA's)
    n_train: int = spec(160_000, lo=1)     # LRA: 160,000 / 20,000 / 20,000 (80/10/10 of 200k);
    n_valid: int = spec(20_000, lo=1)      # about 25 ms an image here: 45 min on 2 cores, once
    n_test: int = spec(20_000, lo=1)
    seed: int = spec(0, lo=0)              # the images (batch order has its own seed)
    workers: int = spec(0, lo=0)           # rendering processes; 0: one per CPU
    source: str = spec("generated", choices=("generated", "lra"))  # "lra": the release's PNGs
    lra_dir: str | None = None             # with source="lra": the folder lra_release.gz unpacked to
                                           # (pathfinder32/ is found in its nested lra_release/)


@dataclass(frozen=True)
class PathXConfig(PathfinderConfig):
    resolution: int = spec(128, choices=(32, 64, 128))
    n_train: int = spec(16_000, lo=1)      # a tenth of LRA's 160,000 / 20,000 / 20,000: an image
    n_valid: int = spec(2_000, lo=1)       # takes about 30 ms here, and 16 KB
    n_test: int = spec(2_000, lo=1)


DIFFICULTY = {6: "curv_baseline", 9: "curv_contour_length_9", 14: "curv_contour_length_14"}


class Pathfinder(ArrayTask):
    name = "pathfinder"
    kind = "classify"
    Config = PathfinderConfig
    vocab_size = 256

    @property
    def n_classes(self) -> int:
        return 2

    @property
    def seq_len(self) -> int:
        return self.config.resolution ** 2

    @property
    def source(self) -> str:
        c = self.config
        if c.source == "lra":
            return f"LRA release {lra_release.pathfinder_path(c.lra_dir, c.resolution, DIFFICULTY[c.contour_length])}"
        return f"rendered here ({c.resolution}x{c.resolution}, {c.contour_length} paddles)"

    def check(self) -> None:
        if self.config.source == "lra" and not self.config.lra_dir:
            raise bad(self.name, "lra_dir", "the lra_release folder when source='lra'", self.config.lra_dir)

    def generate(self, n: int, seed: int, **params):
        c = self.config
        defaults = dict(resolution=c.resolution, contour_length=c.contour_length,
                        workers=c.workers or os.cpu_count() or 1)
        return generate(n, seed, **{**defaults, **params})

    def cache_parts(self) -> dict:
        parts = super().cache_parts()
        parts.pop("config")
        c = self.config  # workers do not change the images
        parts["config"] = {k: v for k, v in vars(c).items() if k != "workers"}
        if c.source == "lra":
            rows = lra_release.pathfinder_metadata(c.lra_dir, c.resolution, DIFFICULTY[c.contour_length])
            parts["files"] = lra_release.fingerprint([p for p, _ in rows])
        return parts

    def build(self) -> dict[str, np.ndarray]:
        c = self.config
        if c.source == "lra":
            images, labels = lra_release.pathfinder_images(c.lra_dir, c.resolution, DIFFICULTY[c.contour_length])
            n = len(labels)
            counts = {"train": n - 2 * (n // 10), "valid": n // 10, "test": n // 10}
        else:
            counts = split_counts(self.name, c.n_train, c.n_valid, c.n_test)
            images, labels = self.generate(sum(counts.values()), c.seed)
        return by_split({"tokens": images.reshape(len(images), -1), "target": labels}, counts)


class PathX(Pathfinder):
    name = "pathx"
    Config = PathXConfig
