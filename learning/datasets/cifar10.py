"""CIFAR-10, python version (cifar-10-batches-py), unpickled with an allow-list."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from learning.datasets.common import Dataset, make, require_path
from learning.errors import DataError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle only plain containers and NumPy arrays: a batch file must not run code."""

    _ALLOWED = frozenset(
        {
            ("_codecs", "encode"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy._core.numeric", "_frombuffer"),
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if module.startswith("numpy.core."):  # pickles written by NumPy 1.x
            module = "numpy._core." + module.removeprefix("numpy.core.")
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(
            f"missing CIFAR-10 file {path}; point data-path at the cifar-10-batches-py folder"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot read CIFAR-10 file {path}: {detail}; is it from the CIFAR-10 python "
            "version (cifar-10-batches-py)?"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"cannot read CIFAR-10 file {path}: expected a pickled dict, got "
            f"{type(obj).__name__}; is it from cifar-10-batches-py?"
        )
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    for key in ("data", "labels"):
        if key not in batch:
            raise DataError(
                f"CIFAR-10 file {path} has no b'{key}' entry (has {sorted(map(str, batch))}); "
                "is it a data batch from cifar-10-batches-py?"
            )
    data = np.asarray(batch["data"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"CIFAR-10 file {path}: b'data' has shape {data.shape}, expected (N, 3072); "
            "is it a data batch from cifar-10-batches-py?"
        )
    labels = np.asarray(batch["labels"])
    if len(labels) != len(data):
        raise DataError(
            f"CIFAR-10 file {path}: {len(data)} images but {len(labels)} labels; "
            "the file is damaged, re-extract it"
        )
    # rows hold the R, G and B planes one after another, each 32x32 row-major
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def cifar10(path: str, image_size: int, color: str) -> Dataset:
    del image_size, color
    root = require_path("cifar10", path, "/path/to/cifar-10-batches-py")
    if not root.is_dir():
        raise DataError(
            f"dataset 'cifar10': {root} is not a directory; point data-path at the extracted "
            "cifar-10-batches-py folder"
        )
    train = [_cifar_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _cifar_batch(root / "test_batch")
    names = CIFAR10_CLASSES
    if (root / "batches.meta").is_file():
        meta = _unpickle(root / "batches.meta")
        if "label_names" in meta:
            names = tuple(
                s.decode() if isinstance(s, bytes) else str(s) for s in meta["label_names"]
            )
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return make("cifar10", x_train, y_train, x_test, y_test, names, where=f"CIFAR-10 in {root}")
