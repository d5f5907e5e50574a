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

from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from learning.errors import AggregationError

Arrays = list[np.ndarray]


def _check_like(ref: Arrays, other: Arrays, what: str) -> None:
    if len(other) != len(ref):
        raise AggregationError(f"{what} has {len(other)} arrays, expected {len(ref)}")
    for i, (a, b) in enumerate(zip(ref, other, strict=True)):
        if np.shape(a) != np.shape(b):
            raise AggregationError(
                f"{what} array {i} has shape {np.shape(b)}, expected {np.shape(a)}"
            )


def _out(ref: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=np.result_type(np.asarray(ref).dtype, np.float32))


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
        _check_like(center, m, f"client {i} update")
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
    return [_out(c, vl) for c, vl in zip(center, v, strict=True)]


class CenteredClipping(FedAvg):
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

    def __init__(self, *, tau: float = 10.0, iterations: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tau = tau
        self.iterations = iterations
        self._keys: list[str] = []
        self._x: Arrays | None = None
        self._v: Arrays | None = None

    def state_dict(self) -> dict[str, Arrays]:
        """The last aggregate update, ``{"v": [...]}`` (empty before the first round)."""
        return {"v": [a.copy() for a in self._v or []]}

    def load_state_dict(self, state: dict[str, Arrays]) -> None:
        """Restore what `state_dict` returned; shapes are checked at the next round."""
        if "v" not in state:
            raise AggregationError("centred clipping state has no 'v' entry")
        self._v = [np.array(a) for a in state["v"]] or None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's train messages; remembers x and sets v to zeros on first use."""
        self._keys = list(arrays.keys())
        self._x = [arrays[k].numpy() for k in self._keys]
        if self._v is None:
            self._v = [np.zeros(a.shape, np.result_type(a.dtype, np.float32)) for a in self._x]
        _check_like(self._x, self._v, "centred clipping state v")
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """x + centred-clipped mean of the replies' updates; v is kept for next round."""
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        if self._x is None or self._v is None:
            raise AggregationError("centred clipping aggregate_train ran before configure_train")
        contents = [msg.content for msg in valid]
        x = self._x
        updates = []
        for rd in contents:
            record = rd.get(self.arrayrecord_key)
            if not isinstance(record, ArrayRecord):
                raise AggregationError(f"a reply has no {self.arrayrecord_key!r} record")
            if set(record.keys()) != set(self._keys):
                raise AggregationError("a reply's array keys differ from the model's")
            y = [record[k].numpy() for k in self._keys]
            _check_like(x, y, "client model")
            updates.append([np.asarray(yl, np.float64) - xl for yl, xl in zip(y, x, strict=True)])
        v = centered_clip(updates, self._v, self.tau, self.iterations)
        x_new = [_out(xl, xl + vl) for xl, vl in zip(x, v, strict=True)]
        self._x, self._v = x_new, v
        record = ArrayRecord(
            {k: Array(np.asarray(a)) for k, a in zip(self._keys, x_new, strict=True)}
        )
        return record, self.train_metrics_aggr_fn(contents, self.weighted_by_key)
