"""FedAsync (Xie, Koyejo, Gupta 2019, "Asynchronous Federated Optimization"): the server
mixes each client model into the global one as it arrives,

    x <- (1 - a_s) x + a_s y,   a_s = alpha * s(staleness)

where staleness = server steps taken since the client's model was sent and s is

- constant: s(t) = 1
- polynomial: s(t) = (t + 1)^-a
- hinge: s(t) = 1 if t <= b else 1 / (a (t - b) + 1)

Pure NumPy; the asynchronous scheduler (server/pipeline/async_scheduler.py) calls these
in virtual completion order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def staleness_weight(kind: str, staleness: int, a: float, b: int) -> float:
    """s(staleness) of the paper's three staleness functions."""
    if staleness < 0:
        raise ValueError(f"staleness must be >= 0, got {staleness}")
    if kind == "constant":
        return 1.0
    if kind == "polynomial":
        return float((staleness + 1.0) ** -a)
    if kind == "hinge":
        return 1.0 if staleness <= b else 1.0 / (a * (staleness - b) + 1.0)
    raise ValueError(f"unknown staleness function {kind!r}")


def fedasync_mix(
    x: Sequence[np.ndarray], y: Sequence[np.ndarray], mixing: float
) -> list[np.ndarray]:
    """(1 - mixing) x + mixing y, layer by layer, in each layer's dtype."""
    out = []
    for xi, yi in zip(x, y, strict=True):
        v = (1.0 - mixing) * xi.astype(np.float64) + mixing * yi.astype(np.float64)
        out.append(v.astype(xi.dtype))
    return out
