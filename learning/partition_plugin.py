"""A user's partitioner by import path ("pkg.mod:split"), its answer checked before use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from learning.plugins import call, plugin_error


def plugin_scheme(value: str, settings: Mapping[str, Any] | None = None) -> Callable[..., list]:
    """A user partitioner ("pkg.mod:split") called as (labels, num_clients, rng), with
    `settings=` the [plugin] table if it asks, its answer checked: one index array per
    client, integers in range, no index twice."""

    def scheme(y: np.ndarray, k: int, rng: np.random.Generator, **_: object) -> list:
        parts = call("partition", value, y.copy(), k, rng, settings=settings)
        if not isinstance(parts, (list, tuple)) or len(parts) != k:
            got = len(parts) if isinstance(parts, (list, tuple)) else type(parts).__name__
            raise plugin_error("partition", value, f"returned {got} parts for {k} clients")
        out, seen = [], np.zeros(len(y), dtype=bool)
        for i, p in enumerate(parts):
            a = np.asarray(p)
            if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
                raise plugin_error(
                    "partition",
                    value,
                    f"part {i} is not a 1-D integer array ({a.dtype} {a.shape})",
                )
            a = a.astype(np.int64)
            if a.size and (a.min() < 0 or a.max() >= len(y)):
                raise plugin_error(
                    "partition", value, f"part {i} holds an index outside [0, {len(y)})"
                )
            if len(np.unique(a)) != len(a) or seen[a].any():
                raise plugin_error(
                    "partition", value, f"part {i} repeats an index: parts must be disjoint"
                )
            seen[a] = True
            out.append(np.sort(a))
        return out

    return scheme
