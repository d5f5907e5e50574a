"""Folders of images, one sub-folder per class (optionally under train/ and test/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from learning.datasets.common import Dataset, make, require_path
from learning.errors import DataError
from learning.streams import Tag, generator

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)

TEST_FRACTION = 0.2  # image folders without a train/test split
SPLIT_SEED = 0


def class_dirs(directory: Path) -> dict[str, Path]:
    """Class name -> folder, sorted; hidden folders are skipped (shared with client_folders)."""
    return {
        d.name: d for d in sorted(directory.iterdir()) if d.is_dir() and not d.name.startswith(".")
    }


def image_files(directory: Path) -> list[Path]:
    """A class folder's images, sorted; an empty class folder is a one-line DataError."""
    files = sorted(
        f
        for f in directory.iterdir()
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(
            f"class folder {directory} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "add images or remove the folder"
        )
    return files


def _read_image(path: Path, image_size: int, color: str) -> np.ndarray:
    import cv2  # imported lazily: only image folders need OpenCV

    flag = cv2.IMREAD_GRAYSCALE if color == "grey" else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag)
    if img is None:
        raise DataError(f"cannot decode image {path}; remove it or convert it to PNG/JPEG")
    if img.shape[:2] != (image_size, image_size):
        img = cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_AREA)
    if color == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        img = img[..., np.newaxis]
    return img


def read_images(
    items: list[tuple[Path, int]], image_size: int, color: str
) -> tuple[np.ndarray, np.ndarray]:
    """Decode (file, label) pairs into uint8 (N, S, S, C) images and int64 labels."""
    channels = 1 if color == "grey" else 3
    x = np.empty((len(items), image_size, image_size, channels), dtype=np.uint8)
    for i, (f, _) in enumerate(items):
        x[i] = _read_image(f, image_size, color)
    y = np.array([label for _, label in items], dtype=np.int64)
    return x, y


def _split_files(classes: dict[str, Path]) -> tuple[list, list]:
    """Per-class (stratified) split with a fixed seed, so every run sees the same test set."""
    rng = generator(SPLIT_SEED, Tag.DATA_SPLIT)
    train: list[tuple[Path, int]] = []
    test: list[tuple[Path, int]] = []
    for label, c in enumerate(sorted(classes)):
        files = image_files(classes[c])
        n_test = min(round(len(files) * TEST_FRACTION), len(files) - 1)
        is_test = np.zeros(len(files), dtype=bool)
        is_test[rng.permutation(len(files))[:n_test]] = True
        for f, t in zip(files, is_test, strict=True):
            (test if t else train).append((f, label))
    return train, test


def image_folder(path: str, image_size: int, color: str) -> Dataset:
    root = require_path("image-folder", path, "/path/to/images")
    if not root.is_dir():
        raise DataError(
            f"dataset 'image-folder': {root} is not a directory; point data-path at a folder "
            "with train/ and test/ (or one sub-folder per class)"
        )
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train != has_test:
        raise DataError(
            f"image folder {root} has {'train/' if has_train else 'test/'} but not "
            f"{'test/' if has_train else 'train/'}; add it, or put class folders directly "
            "under the root to split automatically"
        )
    classes = class_dirs(root / "train" if has_train else root)
    names = sorted(classes)
    if not names:
        raise DataError(
            f"image folder {root} has no class sub-folders; create one folder per class "
            "holding its images"
        )
    if has_train:
        test_classes = class_dirs(root / "test")
        extra = sorted(set(test_classes) - set(classes))
        if extra:
            raise DataError(
                f"image folder {root / 'test'} has classes {extra} missing from "
                f"{root / 'train'}; every test class needs training images"
            )
        train = [(f, names.index(c)) for c in names for f in image_files(classes[c])]
        test = [
            (f, names.index(c)) for c in sorted(test_classes) for f in image_files(test_classes[c])
        ]
    else:
        train, test = _split_files(classes)
    x_train, y_train = read_images(train, image_size, color)
    x_test, y_test = read_images(test, image_size, color)
    return make(
        "image-folder",
        x_train,
        y_train,
        x_test,
        y_test,
        tuple(names),
        where=f"image folder {root}",
    )
