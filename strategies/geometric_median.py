"""RFA: robust federated aggregation by the geometric median.

Pillutla, Kakade and Harchaoui, "Robust Aggregation for Federated Learning",
IEEE Transactions on Signal Processing 70, 2022, https://arxiv.org/abs/1912.13445

The new global model is the weighted geometric median of the client models,
``argmin_v sum_i alpha_i ||v - w_i||`` with ``alpha_i = n_i / sum(n)`` and each
model flattened into one vector. It is approximated by the smoothed Weiszfeld
algorithm: starting from the weighted mean, repeat
``beta_i = alpha_i / max(eps, ||v - w_i||)`` and ``v = sum_i beta_i w_i / sum_i beta_i``
for a fixed number of iterations, stopping early once the objective improves by
less than ``ftol`` relatively. A minority of arbitrarily bad models moves the
median only a bounded distance, unlike the mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord

from learning.errors import AggregationError
from strategies.base import (
    Arrays,
    ArrayStrategy,
    arrays_record,
    check_like,
    record_arrays,
    reply_metrics,
)


def _flatten(points: list[Arrays]) -> np.ndarray:
    """(k, d) float64 matrix, one row per client, after checking the shapes agree."""
    ref = points[0]
    for i, p in enumerate(points):
        check_like(ref, p, f"client {i}")
    size = sum(int(np.size(a)) for a in ref)
    out = np.empty((len(points), size), dtype=np.float64)
    for i, p in enumerate(points):
        if size:
            out[i] = np.concatenate([np.ravel(a) for a in p])
    return out


def _distances(z: np.ndarray, v: np.ndarray) -> np.ndarray:
    """||z_i - v|| for each row, one row at a time (no k-by-d temporary)."""
    return np.array([np.linalg.norm(row - v) for row in z])


def geometric_median(
    points: list[Arrays],
    weights: Sequence[float] | None = None,
    iterations: int = 10,
    eps: float = 1e-6,
    ftol: float = 1e-6,
) -> Arrays:
    """Weighted geometric median of models by smoothed Weiszfeld iterations.

    Parameters
    ----------
    points : list of list of np.ndarray
        One model (list of arrays, same shapes for every client) per client.
    weights : sequence of float, optional
        Non-negative weights alpha_i (normalised here); uniform if omitted.
    iterations : int (default: 10)
        Maximum number of Weiszfeld iterations (0 returns the weighted mean).
    eps : float (default: 1e-6)
        Smoothing nu: distances below it count as nu, so a median that lands on a
        client's model does not divide by zero.
    ftol : float (default: 1e-6)
        Stop once the objective improves by at most ``ftol`` times its old value.

    Returns
    -------
    list of np.ndarray
        The median, with the shapes of the inputs, in their floating dtype.
    """
    if not points:
        raise AggregationError("geometric median of no client models")
    if iterations < 0:
        raise AggregationError(f"geometric median needs iterations >= 0, got {iterations}")
    if eps <= 0:
        raise AggregationError(f"geometric median needs eps > 0, got {eps}")
    alpha = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=np.float64)
    if alpha.shape != (len(points),):
        raise AggregationError(f"got {alpha.size} weights for {len(points)} client models")
    if np.any(alpha < 0) or not alpha.sum() > 0:
        raise AggregationError(f"weights must be non-negative with a positive sum, got {alpha}")
    alpha = alpha / alpha.sum()
    z = _flatten(points)
    v = alpha @ z
    dist = _distances(z, v)
    objective = float(alpha @ dist)
    for _ in range(iterations):
        beta = alpha / np.maximum(eps, dist)
        v = (beta / beta.sum()) @ z
        dist = _distances(z, v)
        previous, objective = objective, float(alpha @ dist)
        if previous - objective <= ftol * previous:
            break
    out, start = [], 0
    for a in points[0]:
        size = int(np.size(a))
        dtype = np.result_type(np.asarray(a).dtype, np.float32)
        out.append(v[start : start + size].reshape(np.shape(a)).astype(dtype))
        start += size
    return out


class GeometricMedian(ArrayStrategy):
    """RFA (Pillutla et al., 2022) as a thin shell over `geometric_median`.

    Parameters
    ----------
    iterations : int (default: 10)
        Maximum smoothed Weiszfeld iterations per round.
    eps : float (default: 1e-6)
        Weiszfeld smoothing nu.
    **kwargs
        Passed to Flower's `FedAvg`; ``weighted_by_key`` (``"num-examples"``) gives
        the weights alpha_i.
    """

    NAME = "RFA"

    def __init__(self, *, iterations: int = 10, eps: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.iterations = iterations
        self.eps = eps

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Geometric median of the replies' models, weighted by example counts.

        Needs no x from `configure_train`: the keys come from the (validated) replies.
        """
        contents = self._valid_contents(replies)
        if not contents:
            return None, None
        records = [next(iter(rd.array_records.values())) for rd in contents]
        keys = list(records[0].keys())
        weights = [float(reply_metrics(rd)[self.weighted_by_key]) for rd in contents]
        points = [record_arrays(record, keys) for record in records]
        median = geometric_median(points, weights, self.iterations, self.eps)
        return arrays_record(keys, median), self.train_metrics_aggr_fn(
            contents, self.weighted_by_key
        )
