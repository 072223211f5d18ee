"""Load images from disk: an ImageFolder layout (a folder per class) or the MVTec AD layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgefleet.errors import InputError
from train.datasets.dataset import ImageDataset

__all__ = ["IMAGE_SUFFIXES", "load_image_folder", "load_mvtec"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_image_folder(root: Path, *, size: int = 64) -> ImageDataset:
    """``root/<class>/<image>``, each image resized to size×size RGB; raises InputError for no images."""
    if not root.is_dir():
        raise InputError(f"{root} is not a folder", hint="pass a folder holding one sub-folder of images per class")
    files = sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return _dataset(files, [p.parent.name for p in files], size, str(root))


def load_mvtec(category: Path, *, size: int = 64) -> ImageDataset:
    """An MVTec AD category (``train/good``, ``test/<defect>``) as classes good and each defect.

    The pixel masks in ``ground_truth/`` are not needed for classification and are left alone.
    """
    if not (category / "train" / "good").is_dir() or not (category / "test").is_dir():
        raise InputError(
            f"{category} is not an MVTec AD category (no train/good or test folder)",
            hint="pass one category folder, e.g. mvtec/bottle",
        )
    files = sorted(
        p
        for p in [*(category / "train" / "good").iterdir(), *(category / "test").glob("*/*")]
        if p.suffix.lower() in IMAGE_SUFFIXES
    )
    return _dataset(files, [p.parent.name for p in files], size, str(category))


def _dataset(files: list[Path], classes: list[str], size: int, source: str) -> ImageDataset:
    if not files:
        raise InputError(
            f"{source} holds no images ({', '.join(IMAGE_SUFFIXES)})", hint="add images, a folder per class"
        )
    label_names = tuple(sorted(set(classes)))
    images = np.stack([_read(path, size) for path in files])
    return ImageDataset(
        images,
        np.asarray([label_names.index(c) for c in classes], dtype=np.int64),
        np.arange(len(files), dtype=np.int64),
        label_names,
        source=source,
    )


def _read(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise InputError(f"cannot read the image {path}: {err}", hint="remove or replace the file") from err
