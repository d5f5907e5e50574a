"""Image-classification datasets by name: one module per format, one cache per process.

Formats: idx_folder.py (IDX folders and the vendored Fashion-MNIST), npz.py,
cifar10.py, image_folder.py, client_folders.py (one folder per client, already
partitioned); common.py holds the `Dataset` form and the checks every
split passes. The vendored data stays in learning/data/ (package data).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from learning.config_keys import check_value
from learning.datasets.cifar10 import CIFAR10_CLASSES, cifar10
from learning.datasets.client_folders import client_folders
from learning.datasets.common import Dataset
from learning.datasets.idx_folder import (
    FASHION_MNIST_CLASSES,
    fashion_mnist,
    idx_folder,
    vendored_fashion_mnist,
)
from learning.datasets.image_folder import image_folder
from learning.datasets.npz import npz
from learning.datasets.plugin import plugin_dataset
from learning.errors import ConfigError
from learning.plugin_settings import PluginSettings, Scalar
from learning.plugins import is_plugin, reads_settings
from learning.streams import Tag, generator

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "Dataset",
    "load_dataset",
    "subset",
    "vendored_fashion_mnist",
]

Loader = Callable[[str, int, str], Dataset]

DATASETS: dict[str, Loader] = {
    "cifar10": cifar10,
    "client-folders": client_folders,
    "fashion-mnist": fashion_mnist,
    "idx": idx_folder,
    "image-folder": image_folder,
    "npz": npz,
}

DECODED = ("image-folder", "client-folders")  # decoded with image-size and color

_CACHE: dict[tuple, Dataset] = {}


def load_dataset(
    name: str,
    path: str = "",
    image_size: int = 32,
    color: str = "grey",
    settings: Mapping[str, Scalar] | None = None,
) -> Dataset:
    """Load (once per process) a dataset by registry name or plug-in ("pkg.mod:load").

    ``image_size`` and ``color`` only affect the decoded formats (``image-folder``,
    ``client-folders``); the others have a fixed shape, so they are left out of the cache
    key to avoid holding duplicate copies. A plug-in's cache key holds the [plugin]
    ``settings`` if it reads them.
    """
    if is_plugin(name):
        key = ("plugin", name, PluginSettings(settings if reads_settings("dataset", name) else {}))
        if key not in _CACHE:
            _CACHE[key] = plugin_dataset(name, key[2])
        return _CACHE[key]
    loader = DATASETS.get(name)
    if loader is None:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    color = check_value("color", color)  # the config's rules (config_schema.py)
    image_size = check_value("image-size", image_size)
    path = str(path) if path else ""
    where = str(Path(path).expanduser().resolve()) if path and name != "fashion-mnist" else ""
    shaped = name in DECODED
    key = (name, where, image_size if shaped else 0, color if shaped else "")
    if key not in _CACHE:
        _CACHE[key] = loader(path, image_size, color)
    return _CACHE[key]


def subset(ds: Dataset, train_size: int, test_size: int, seed: int) -> Dataset:
    """A deterministic random subset (original order kept) for fast tests and small runs.

    A size of 0 keeps the whole split.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    picks = []
    for which, (key, size, total) in enumerate(
        (
            ("train-size", train_size, len(ds.y_train)),
            ("test-size", test_size, len(ds.y_test)),
        )
    ):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ConfigError(f"{key} must be an integer >= 0 (0 = all), got {size!r}")
        if size > total:
            raise ConfigError(
                f"{key} {size} exceeds the {total} examples of '{ds.name}'; "
                "lower it or set 0 to keep all"
            )
        if size == 0 or size == total:
            picks.append(None)
        else:
            rng = generator(int(seed), Tag.SUBSET, which)
            picks.append(np.sort(rng.choice(total, size=int(size), replace=False)))

    def take(a: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        if idx is None:
            return a
        out = a[idx]
        out.setflags(write=False)
        return out

    return Dataset(
        ds.name,
        take(ds.x_train, picks[0]),
        take(ds.y_train, picks[0]),
        take(ds.x_test, picks[1]),
        take(ds.y_test, picks[1]),
        ds.class_names,
        None if ds.owners is None else take(ds.owners, picks[0]),
    )


def clear_dataset_cache() -> None:
    """Forget the datasets loaded in this process (see federated_data.clear_caches)."""
    _CACHE.clear()
