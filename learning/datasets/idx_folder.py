"""IDX folders (the MNIST family) and the vendored Fashion-MNIST, read with learning/idx.py."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import urllib.parse
from pathlib import Path

from learning.datasets.common import Dataset, make, require_path
from learning.errors import DataError
from learning.idx import read_idx

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"missing IDX file {directory / stem}[.gz]; the directory needs all of "
        f"{', '.join(IDX_FILES)} (optionally .gz)"
    )


def _load_idx_dir(name: str, directory: Path, class_names: tuple[str, ...] | None) -> Dataset:
    if not directory.is_dir():
        raise DataError(
            f"dataset '{name}': {directory} is not a directory; point data-path at the folder "
            "holding the four IDX files"
        )
    files = [_find_idx(directory, stem) for stem in IDX_FILES]
    arrays = [read_idx(f, expected_ndim=3 if "images" in f.name else 1) for f in files]
    return make(name, *arrays, class_names, where=f"IDX files in {directory}")


def vendored_fashion_mnist() -> Path:
    """Where the vendored files are: next to this module, else the installed copy.

    Under `flwr run` the app's own copy of this package (a FAB, which carries only
    source files) is imported first; the data then comes from the perennial-fl
    installation (regular or editable) or from PERENNIAL_DATA_DIR.
    """
    here = importlib.resources.files("learning").joinpath("data", "fashion-mnist")
    candidates = [Path(str(here))]
    if os.environ.get("PERENNIAL_DATA_DIR"):
        candidates.insert(0, Path(os.environ["PERENNIAL_DATA_DIR"]))
    try:
        dist = importlib.metadata.distribution("perennial-fl")
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        if direct.get("dir_info", {}).get("editable") and direct.get("url", "").startswith(
            "file://"
        ):
            source = Path(urllib.parse.unquote(direct["url"][len("file://") :]))
            candidates.append(source / "learning" / "data" / "fashion-mnist")
        candidates.append(Path(str(dist.locate_file("learning/data/fashion-mnist"))))
    except (importlib.metadata.PackageNotFoundError, ValueError, OSError):
        pass
    for directory in candidates:
        if (directory / "train-labels-idx1-ubyte.gz").is_file():
            return directory
    raise DataError(
        "vendored Fashion-MNIST not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall perennial-fl or set PERENNIAL_DATA_DIR"
    )


def fashion_mnist(path: str, image_size: int, color: str) -> Dataset:
    del path, image_size, color  # vendored and fixed-size
    return _load_idx_dir("fashion-mnist", vendored_fashion_mnist(), FASHION_MNIST_CLASSES)


def idx_folder(path: str, image_size: int, color: str) -> Dataset:
    del image_size, color
    return _load_idx_dir("idx", require_path("idx", path, "/path/to/idx-dir"), None)
