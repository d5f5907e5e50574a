"""Centred clipping: Byzantine-robust aggregation of updates around a moving centre.

Karimireddy, He and Jaggi, "Learning from History for Byzantine Robust
Optimization", ICML 2021, https://arxiv.org/abs/2012.10333 (Algorithm 2).

Client updates ``m_i = y_i - x`` are combined by L iterations of
``v <- v + mean_i clip_tau(m_i - v)`` with ``clip_tau(z) = z * min(1, tau / ||z||)``
(one L2 norm over all of a model's arrays), starting from the previous round's
aggregate update (zeros in the first round); the global model moves to ``x + v``.
Each iteration moves v by at most tau, and a single client by at most tau / |S|,
however large its update. The paper applies this to worker momenta; here the
clients send plain model updates and the history lives in the centre.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learning.errors import AggregationError
from strategies.base import Arrays, ArrayStrategy, Replies, Step, cast_like, check_like


def centered_clip(updates: list[Arrays], center: Arrays, tau: float, iterations: int = 1) -> Arrays:
    """Centred-clipping aggregate of client updates.

    Parameters
    ----------
    updates : list of list of np.ndarray
        Client updates m_i (model deltas), all with the shapes of `center`.
    center : list of np.ndarray
        Starting point v_0, e.g. the previous round's aggregate update.
    tau : float
        Clipping radius (> 0) on the L2 norm of ``m_i - v`` over all arrays.
    iterations : int (default: 1)
        L, the number of clipping iterations.

    Returns
    -------
    list of np.ndarray
        v_L; inputs are not modified.
    """
    if not updates:
        raise AggregationError("centred clipping got no client updates to aggregate")
    if tau <= 0:
        raise AggregationError(f"centred clipping needs tau > 0, got {tau}")
    if iterations < 1:
        raise AggregationError(f"centred clipping needs iterations >= 1, got {iterations}")
    for i, m in enumerate(updates):
        check_like(center, m, f"client {i} update")
    v = [np.array(c, dtype=np.float64) for c in center]
    k = len(updates)
    for _ in range(iterations):
        step = [np.zeros(c.shape, dtype=np.float64) for c in v]
        for m in updates:
            diff = [np.asarray(ml, dtype=np.float64) - vl for ml, vl in zip(m, v, strict=True)]
            norm = float(np.sqrt(sum(float(np.sum(d * d)) for d in diff)))
            scale = 1.0 if norm <= tau else tau / norm
            for s, d in zip(step, diff, strict=True):
                s += (scale / k) * d
        v = [vl + s for vl, s in zip(v, step, strict=True)]
    return [cast_like(c, vl) for c, vl in zip(center, v, strict=True)]


class CenteredClipping(ArrayStrategy):
    """Centred clipping (Karimireddy, He and Jaggi, 2021) over `centered_clip`.

    Parameters
    ----------
    tau : float (default: 10.0)
        Clipping radius.
    iterations : int (default: 1)
        Clipping iterations per round.
    **kwargs
        Passed to Flower's `FedAvg`; ``weighted_by_key`` only weights the metrics,
        every update counts equally.
    """

    NAME = "centred clipping"
    STATE = "v"
    _v: Arrays | None

    def __init__(self, *, tau: float = 10.0, iterations: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tau = tau
        self.iterations = iterations

    def server_step(self, x: Arrays, state: Arrays, contents: Replies) -> Step:
        """x + centred-clipped mean of the replies' updates around v; v is the new state."""
        updates = []
        for rd in contents:
            y = self._reply_arrays(rd)
            check_like(x, y, "client model")
            updates.append([np.asarray(yl, np.float64) - xl for yl, xl in zip(y, x, strict=True)])
        v = centered_clip(updates, state, self.tau, self.iterations)
        return [cast_like(xl, xl + vl) for xl, vl in zip(x, v, strict=True)], v
