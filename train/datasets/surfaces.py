"""Synthetic inspection images: procedural surfaces with realistic defects under varying light.

Textures: brushed metal (noise stretched along the brushing direction), woven fabric (two thread
families), wood (growth rings bent by noise) and cast metal (blotchy low-frequency noise with pits).
Defects: scratches (thin straight marks that catch the light), cracks (dark, jagged, branching random
walks), spots (clusters of small specks), holes (dark disks with a bright rim) and stains (large
irregular blotches that darken and tint the surface). Light: an illumination gradient from a random direction, exposure
and sensor noise. Numpy and scipy only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter

from train.datasets.dataset import ImageDataset

__all__ = ["DEFECTS", "TEXTURES", "render_surface", "synthetic_images"]

DEFECTS: Final = ("good", "scratch", "crack", "spot", "hole", "stain")
TEXTURES: Final = ("brushed", "fabric", "wood", "cast")

Image = npt.NDArray[np.float64]  # (H, W, 3) in [0, 1]


def _image(values: object) -> Image:
    # scipy has no type hints: pin what its filters hand back to the image type
    return np.asarray(values, dtype=np.float64)


def _grid(size: int) -> tuple[Image, Image]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return y, x


def _brushed(size: int, rng: np.random.Generator) -> Image:
    angle = rng.uniform(0, np.pi)
    noise = gaussian_filter(rng.normal(size=(size * 2, size * 2)), sigma=(0.6, 10.0))
    turned = _rotate(noise, angle, size)
    grey = 0.55 + 0.15 * turned / (np.abs(turned).max() + 1e-9)
    tint = rng.uniform(0.95, 1.05, 3)
    return _image(np.clip(grey[..., None] * tint, 0, 1))


def _fabric(size: int, rng: np.random.Generator) -> Image:
    y, x = _grid(size)
    period = rng.uniform(3.0, 6.0)
    warp = 0.5 + 0.5 * np.sin(2 * np.pi * x / period)
    weft = 0.5 + 0.5 * np.sin(2 * np.pi * y / period + np.pi / 2)
    weave = np.where((np.floor(x / period) + np.floor(y / period)) % 2 == 0, warp, weft)
    colour = rng.uniform(0.2, 0.8, 3)
    return np.clip((0.6 + 0.4 * weave)[..., None] * colour, 0, 1)


def _wood(size: int, rng: np.random.Generator) -> Image:
    y, x = _grid(size)
    cx, cy = rng.uniform(-size, 2 * size, 2)
    bend = gaussian_filter(rng.normal(size=(size, size)), 6) * 40
    rings = np.sin(np.hypot(x - cx, (y - cy) * 0.3) * rng.uniform(0.4, 0.8) + bend)
    base = np.array([0.55, 0.38, 0.22]) * rng.uniform(0.8, 1.2)
    return _image(np.clip((0.8 + 0.2 * rings)[..., None] * base, 0, 1))


def _cast(size: int, rng: np.random.Generator) -> Image:
    blotch = gaussian_filter(rng.normal(size=(size, size)), 4)
    speckle = gaussian_filter(rng.normal(size=(size, size)), 0.7)
    grey = 0.4 + 0.6 * blotch / (np.abs(blotch).max() + 1e-9) * 0.2 + 0.03 * speckle
    return _image(np.clip(np.repeat(grey[..., None], 3, axis=2), 0, 1))


_TEXTURE: Final[dict[str, Callable[[int, np.random.Generator], Image]]] = {
    "brushed": _brushed,
    "fabric": _fabric,
    "wood": _wood,
    "cast": _cast,
}


def _rotate(field: Image, angle: float, size: int) -> Image:
    """A size×size view of ``field`` (twice as large) sampled along rotated axes."""
    y, x = _grid(size)
    c, s = np.cos(angle), np.sin(angle)
    yy = (c * (y - size / 2) - s * (x - size / 2) + size).astype(int) % field.shape[0]
    xx = (s * (y - size / 2) + c * (x - size / 2) + size).astype(int) % field.shape[1]
    return _image(field[yy, xx])


def _segment_mask(size: int, points: npt.NDArray[np.float64], width: float) -> Image:
    """Soft mask of the polyline through ``points`` (k, 2) as (y, x), ``width`` pixels wide."""
    y, x = _grid(size)
    distance = np.full((size, size), np.inf)
    for (y0, x0), (y1, x1) in itertools.pairwise(points):
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((y - y0) * dy + (x - x0) * dx) / max(dy * dy + dx * dx, 1e-9), 0, 1)
        distance = np.minimum(distance, np.hypot(y - (y0 + t * dy), x - (x0 + t * dx)))
    return np.clip(width / 2 + 0.5 - distance, 0, 1)


def _scratch(image: Image, rng: np.random.Generator) -> Image:
    size = image.shape[0]
    start = rng.uniform(0.15, 0.85, 2) * size
    angle, length = rng.uniform(0, np.pi), rng.uniform(0.3, 0.6) * size
    end = start + length * np.array([np.sin(angle), np.cos(angle)])
    mask = _segment_mask(size, np.stack([start, end]), rng.uniform(0.8, 1.5))[..., None]
    # a scratch catches the light: brighter than the surface around it
    return image * (1 - mask) + np.clip(image + 0.35, 0, 1) * mask


def _crack(image: Image, rng: np.random.Generator) -> Image:
    size = image.shape[0]
    points = [rng.uniform(0.2, 0.8, 2) * size]
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(rng.integers(6, 12)):
        heading += rng.normal(0, 0.6)
        points.append(points[-1] + rng.uniform(2, 5) * np.array([np.sin(heading), np.cos(heading)]))
    mask = _segment_mask(size, np.asarray(points), rng.uniform(0.8, 1.6))[..., None]
    return image * (1 - 0.8 * mask)


def _spot(image: Image, rng: np.random.Generator) -> Image:
    size = image.shape[0]
    y, x = _grid(size)
    centre = rng.uniform(0.2, 0.8, 2) * size
    out = image.copy()
    for _ in range(rng.integers(3, 8)):
        cy, cx = centre + rng.normal(0, 3, 2)
        mask = np.clip(rng.uniform(1.0, 2.0) - np.hypot(y - cy, x - cx), 0, 1)[..., None]
        shade = 0.1 if rng.random() < 0.7 else 0.95
        out = out * (1 - mask) + shade * mask
    return out


def _hole(image: Image, rng: np.random.Generator) -> Image:
    size = image.shape[0]
    y, x = _grid(size)
    cy, cx = rng.uniform(0.25, 0.75, 2) * size
    radius = rng.uniform(3, 6)
    distance = np.hypot(y - cy, x - cx)
    inside = np.clip(radius - distance, 0, 1)[..., None]
    rim = np.clip(1 - np.abs(distance - radius - 0.8), 0, 1)[..., None]
    return _image(np.clip(image * (1 - inside) + 0.05 * inside + 0.3 * rim, 0, 1))


def _stain(image: Image, rng: np.random.Generator) -> Image:
    size = image.shape[0]
    y, x = _grid(size)
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    radius = rng.uniform(6, 11)
    # an irregular outline: a disk whose edge is pushed in and out by smooth noise, with a soft rim
    wobble = _image(gaussian_filter(rng.normal(size=(size, size)), 3)) * 25
    shape = np.clip((radius + wobble - np.hypot(y - cy, x - cx)) / 2.0, 0, 1)
    mask = (shape * rng.uniform(0.55, 0.8))[..., None]
    colour = rng.uniform(0.05, 0.35, 3)
    return _image(image * (1 - mask) + colour * mask)


_DEFECT: Final[dict[str, Callable[[Image, np.random.Generator], Image]]] = {
    "good": lambda image, _: image,
    "scratch": _scratch,
    "crack": _crack,
    "spot": _spot,
    "hole": _hole,
    "stain": _stain,
}


def render_surface(defect: str, texture: str, size: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """One (size, size, 3) RGB image of ``texture`` with ``defect``, under random light.

    Texture, defect and light draw from separate streams, so the same seed gives the same surface and
    light whichever defect is drawn on it.
    """
    texture_rng, defect_rng, light_rng = rng.spawn(3)
    image = _DEFECT[defect](_TEXTURE[texture](size, texture_rng), defect_rng)
    y, x = _grid(size)
    direction = light_rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * x + np.sin(direction) * y) / size - 0.5
    light = light_rng.uniform(0.75, 1.2) * (1 + light_rng.uniform(0.1, 0.4) * ramp)
    lit = image * light[..., None] + light_rng.normal(0, 0.015, image.shape)
    return np.asarray(np.clip(lit, 0, 1) * 255 + 0.5, dtype=np.uint8)


def synthetic_images(per_class: int, size: int, seed: int) -> ImageDataset:
    """``per_class`` images of each defect on every texture in turn; the same seed gives the same images."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, defect in enumerate(DEFECTS):
        for index in range(per_class):
            images.append(render_surface(defect, TEXTURES[index % len(TEXTURES)], size, rng))
            labels.append(label)
    count = len(labels)
    return ImageDataset(
        np.stack(images),
        np.asarray(labels, dtype=np.int64),
        np.arange(count, dtype=np.int64),
        DEFECTS,
        source=f"synthetic surfaces (seed {seed})",
    )
