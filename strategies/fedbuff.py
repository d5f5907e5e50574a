"""FedBuff (Nguyen et al. 2022, "Federated Learning with Buffered Asynchronous
Aggregation"): `concurrency` clients train at once; each finished client's update
delta_i = y_i - x_(start_i) goes into a buffer weighted by (1 + staleness_i)^-0.5; after
`fedbuff-k` updates the server steps

    x <- x + server_lr * (1/K) sum_i (1 + s_i)^-0.5 delta_i

and empties the buffer. Pure NumPy; the asynchronous scheduler feeds it in virtual
completion order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fedbuff_weight(staleness: int) -> float:
    """The paper's staleness scaling 1 / sqrt(1 + s)."""
    if staleness < 0:
        raise ValueError(f"staleness must be >= 0, got {staleness}")
    return float((1.0 + staleness) ** -0.5)


def fedbuff_step(
    x: Sequence[np.ndarray],
    deltas: Sequence[Sequence[np.ndarray]],
    staleness: Sequence[int],
    server_lr: float,
) -> list[np.ndarray]:
    """One server step over a full buffer (in the order given: the scheduler's order)."""
    if not deltas or len(deltas) != len(staleness):
        raise ValueError("fedbuff_step needs one staleness per buffered update")
    k = len(deltas)
    out = []
    for layer, xi in enumerate(x):
        acc = np.zeros(xi.shape, np.float64)
        for d, s in zip(deltas, staleness, strict=True):
            acc += fedbuff_weight(s) * d[layer].astype(np.float64)
        out.append((xi.astype(np.float64) + server_lr * acc / k).astype(xi.dtype))
    return out
