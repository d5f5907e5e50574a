"""Builds client-folders trees of small PNGs for tests (importable: pytest puts tests/ on
sys.path). Every image says whose it is: its background intensity is unique to its client
(and to the central test set), its top-left pixel numbers it, and a bright band whose row
depends on the class is the learnable pattern."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SIZE = 8


def mark(owner: int) -> int:
    """The background intensity of owner `owner`'s images (owners 0..7)."""
    return 10 + 30 * owner


def owners_of(x: np.ndarray) -> np.ndarray:
    """The owner mark of each (N, H, W, C) image: its bottom-right pixel (never banded
    while labels < (H - 1) / 2)."""
    return x[:, -1, -1, 0]


def image(owner: int, label: int, index: int, size: int = SIZE) -> np.ndarray:
    """(size, size) uint8: background mark(owner), band at rows 2*label..2*label+1."""
    x = np.full((size, size), mark(owner), dtype=np.uint8)
    x[2 * label : 2 * label + 2, :] = 250
    x[0, 0] = index
    return x


def write_split(
    folder: Path, counts: dict[str, int], owner: int, classes: tuple[str, ...], size: int = SIZE
) -> list[tuple[np.ndarray, int]]:
    """folder/<class>/imgNNN.png for each class; returns (image, label id) in the order the
    loader reads them (sorted class names, sorted file names). Label ids are the index of
    the class in `classes`, the sorted union the loader is expected to build."""
    written = []
    for name in sorted(counts):
        label = classes.index(name)
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(counts[name]):
            x = image(owner, label, i, size)
            assert cv2.imwrite(str(folder / name / f"img{i:03d}.png"), x)
            written.append((x, label))
    return written


def write_tree(
    root: Path,
    clients: dict[str, dict[str, int]],
    tests: dict[str, dict[str, int]] | None = None,
    central: dict[str, int] | None = None,
    size: int = SIZE,
) -> dict[str, list[tuple[np.ndarray, int]]]:
    """root/<client>/train/<class>/*.png (+ root/<client>/test/, root/_test/). The owner
    mark of client k is k in sorted client order; the central test set's is len(clients).
    Returns what was written per split: "<client>/train", "<client>/test", "_test"."""
    names = sorted({c for split in (*clients.values(), *(tests or {}).values()) for c in split})
    names = sorted({*names, *(central or {})})
    classes = tuple(names)
    out = {}
    for k, client in enumerate(sorted(clients)):
        out[f"{client}/train"] = write_split(
            root / client / "train", clients[client], k, classes, size
        )
        if tests and client in tests:
            out[f"{client}/test"] = write_split(
                root / client / "test", tests[client], k, classes, size
            )
    if central:
        out["_test"] = write_split(root / "_test", central, len(clients), classes, size)
    return out


def stack(written: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 1) images and (N,) labels, as the loader should give them (grey)."""
    return (
        np.stack([x for x, _ in written])[..., np.newaxis],
        np.array([y for _, y in written], dtype=np.int64),
    )
