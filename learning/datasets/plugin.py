"""A dataset returned by a user function ("my_pkg.data:load"), checked into the one form.

The function takes no arguments (or only `settings`, the [plugin] table) and returns
(x_train, y_train, x_test, y_test): NumPy images [N, H, W] or [N, H, W, C] (C = 1 or 3),
uint8 pixels or floats in [0, 1], and integer labels. Floats are stored as uint8 (x * 255,
rounded), the form every worker slices, so the trainer's / 255 gives them back to within
half a grey level.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from learning.datasets.common import Dataset, make
from learning.errors import DataError
from learning.plugins import call, plugin_error


def _pixels(value: str, x: object, split: str) -> object:
    a = np.asarray(x)
    if a.dtype.kind != "f":
        return a
    if a.size and (not np.all(np.isfinite(a)) or a.min() < 0.0 or a.max() > 1.0):
        raise plugin_error(
            "dataset", value, f"{split} images are floats outside [0, 1]; scale them or use uint8"
        )
    return np.rint(a * 255.0).astype(np.uint8)


def plugin_dataset(value: str, settings: Mapping[str, Any] | None = None) -> Dataset:
    """Call the user's loader (with the [plugin] `settings` if it asks for them) and
    check shapes, dtypes and label range in one line."""
    out = call("dataset", value, settings=settings)
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        raise plugin_error("dataset", value, f"returned {type(out).__name__}, not a 4-tuple")
    x_train, y_train, x_test, y_test = out
    for name, a in zip(("x_train", "y_train", "x_test", "y_test"), out, strict=True):
        if not isinstance(a, np.ndarray):
            raise plugin_error("dataset", value, f"{name} is {type(a).__name__}, not a NumPy array")
    try:
        return make(
            value,
            _pixels(value, x_train, "train"),
            y_train,
            _pixels(value, x_test, "test"),
            y_test,
            None,
            where=f"dataset {value!r}",
        )
    except DataError as exc:
        raise plugin_error("dataset", value, str(exc).split(": ", 1)[-1]) from None
