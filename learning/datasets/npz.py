"""NumPy `.npz` archives holding x_train, y_train, x_test, y_test (and class_names)."""

from __future__ import annotations

import zipfile

import numpy as np

from learning.datasets.common import Dataset, make, require_path
from learning.errors import DataError


def npz(path: str, image_size: int, color: str) -> Dataset:
    del image_size, color
    p = require_path("npz", path, "/path/to/file.npz")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(p, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise DataError(
                    f"npz file {p} is missing key(s) {missing} (has {sorted(data.files)}); "
                    f"save it with np.savez(path, {', '.join(f'{k}=...' for k in keys)})"
                )
            arrays = [data[k] for k in keys]
            names = None
            if "class_names" in data.files:
                names = tuple(str(s) for s in np.asarray(data["class_names"]).ravel())
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        # a damaged archive (not a zip, truncated, bad CRC) is the user's file, not a bug
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot read npz file {p}: {detail}; is it a NumPy .npz archive?"
        ) from None
    return make("npz", *arrays, names, where=f"npz file {p}")
