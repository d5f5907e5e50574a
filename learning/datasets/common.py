"""The one in-memory form every format loads into, and the checks each split passes.

Images stay uint8 (N, H, W, C): a 100k-client simulation keeps one copy per worker and
slices it by index, so converting to float here would multiply memory by four.
Normalisation happens later, in the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learning.errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split held in memory; arrays are read-only because loads are cached."""

    name: str
    x_train: np.ndarray  # (N, H, W, C) uint8, C = 1 (grey) or 3 (RGB)
    y_train: np.ndarray  # (N,) int64 labels in [0, num_classes)
    x_test: np.ndarray  # (M, H, W, C) uint8
    y_test: np.ndarray  # (M,) int64
    class_names: tuple[str, ...]
    # (N,) int64: the client each training example belongs to, where the data itself is
    # split by client (client-folders); the `natural` partition groups by it. None otherwise.
    owners: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        h, w, c = self.x_train.shape[1:]
        return (int(h), int(w), int(c))


def images(x: object, where: str) -> np.ndarray:
    """Coerce to (N, H, W, C) uint8, adding a channel axis to (N, H, W)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(
            f"{where}: images have shape {x.shape}, expected (N, H, W) or (N, H, W, C) with "
            "C = 1 or 3; reshape the array"
        )
    if x.dtype != np.uint8:
        if x.dtype.kind not in "iu" or (x.size and (x.min() < 0 or x.max() > 255)):
            raise DataError(
                f"{where}: images have dtype {x.dtype}, expected uint8 pixels in 0..255; "
                "store them as uint8"
            )
        x = x.astype(np.uint8)
    return np.ascontiguousarray(x)


def labels(y: object, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: labels have shape {y.shape}, expected (N,); flatten them")
    if y.dtype.kind not in "iub":
        raise DataError(
            f"{where}: labels have dtype {y.dtype}, expected integers; store class indices"
        )
    return y.astype(np.int64)


def make(
    name: str,
    x_train: object,
    y_train: object,
    x_test: object,
    y_test: object,
    class_names: tuple[str, ...] | None,
    where: str,
) -> Dataset:
    """Validate and freeze a split; class names default to "0".."K-1" from the largest label."""
    xs = [images(x_train, f"{where} (train)"), images(x_test, f"{where} (test)")]
    ys = [labels(y_train, f"{where} (train)"), labels(y_test, f"{where} (test)")]
    for split, x, y in zip(("train", "test"), xs, ys, strict=True):
        if len(x) != len(y):
            raise DataError(
                f"{where}: {split} has {len(x)} images but {len(y)} labels; the counts must match"
            )
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise DataError(
            f"{where}: train images are {xs[0].shape[1:]} but test images are "
            f"{xs[1].shape[1:]}; both splits need the same image shape"
        )
    if len(xs[0]) == 0:
        raise DataError(f"{where}: the training split is empty; provide at least one example")
    if class_names is None:
        top = max(int(y.max()) if y.size else -1 for y in ys)
        class_names = tuple(str(i) for i in range(top + 1))
    for split, y in zip(("train", "test"), ys, strict=True):
        if y.size and (y.min() < 0 or y.max() >= len(class_names)):
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise DataError(
                f"{where}: {split} label {bad} is outside [0, {len(class_names)}); "
                "labels must be class indices"
            )
    for a in (*xs, *ys):
        a.setflags(write=False)
    return Dataset(name, xs[0], ys[0], xs[1], ys[1], tuple(class_names))


def require_path(name: str, path: str, example: str) -> Path:
    if not path:
        raise DataError(f"dataset '{name}' needs data-path: set --set data-path={example}")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(
            f"dataset '{name}': data-path {p} does not exist; set --set data-path={example}"
        )
    return p
