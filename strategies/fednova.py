"""FedNova: normalised averaging of heterogeneous local updates.

Wang, Liu, Liang, Joshi and Poor, "Tackling the Objective Inconsistency Problem in
Heterogeneous Federated Optimization", NeurIPS 2020, https://arxiv.org/abs/2007.07481

Clients that run more local steps move further; plain FedAvg therefore optimises a
surrogate weighted towards them. FedNova divides each update by the client's
normaliser a_i (the L1 norm of its local step coefficients) before averaging, and
rescales the average by the effective number of steps ``tau_eff = sum_i p_i a_i``.

With local SGD momentum rho (heavy ball, reset every round) step k has coefficient
``(1 - rho^k) / (1 - rho)``, so ``a_i = (tau_i - rho (1 - rho^tau_i) / (1 - rho)) /
(1 - rho)``; with rho = 0, ``a_i = tau_i``. The client only reports ``num-steps``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from learning.errors import AggregationError

Arrays = list[np.ndarray]
NUM_STEPS_KEY = "num-steps"


def _check_like(ref: Arrays, other: Arrays, what: str) -> None:
    if len(other) != len(ref):
        raise AggregationError(f"{what} has {len(other)} arrays, expected {len(ref)}")
    for i, (a, b) in enumerate(zip(ref, other, strict=True)):
        if np.shape(a) != np.shape(b):
            raise AggregationError(
                f"{what} array {i} has shape {np.shape(b)}, expected {np.shape(a)}"
            )


def fednova_normaliser(num_steps: int, momentum: float = 0.0) -> float:
    """a_i: the sum of the step coefficients of ``num_steps`` momentum-SGD steps."""
    if num_steps < 1:
        raise AggregationError(f"FedNova needs num_steps >= 1, got {num_steps}")
    if not 0.0 <= momentum < 1.0:
        raise AggregationError(f"FedNova needs 0 <= momentum < 1, got {momentum}")
    if momentum == 0.0:
        return float(num_steps)
    rho = momentum
    return (num_steps - rho * (1.0 - rho**num_steps) / (1.0 - rho)) / (1.0 - rho)


def fednova_aggregate(
    x: Arrays,
    ys: list[Arrays],
    num_examples: Sequence[float],
    num_steps: Sequence[int],
    momentum: float = 0.0,
    server_lr: float = 1.0,
) -> Arrays:
    """The FedNova global model; inputs are not modified.

    Parameters
    ----------
    x : list of np.ndarray
        Current global model.
    ys : list of list of np.ndarray
        Local models y_i.
    num_examples : sequence of float
        n_i; the weights are ``p_i = n_i / sum(n)``.
    num_steps : sequence of int
        tau_i, local steps each client ran (>= 1).
    momentum : float (default: 0.0)
        Local SGD momentum rho used by the clients.
    server_lr : float (default: 1.0)
        Global step size.

    Returns
    -------
    list of np.ndarray
        ``x - server_lr * tau_eff * sum_i p_i (x - y_i) / a_i``.
    """
    if not ys:
        raise AggregationError("FedNova got no client updates to aggregate")
    if not len(ys) == len(num_examples) == len(num_steps):
        raise AggregationError(
            f"FedNova got {len(ys)} models, {len(num_examples)} example counts "
            f"and {len(num_steps)} step counts"
        )
    n = np.asarray(num_examples, dtype=np.float64)
    if np.any(n < 0) or n.sum() <= 0:
        raise AggregationError(
            f"FedNova needs non-negative example counts with a positive sum, got {n.tolist()}"
        )
    for i, y in enumerate(ys):
        _check_like(x, y, f"client {i} model")
    p = n / n.sum()
    a = np.array([fednova_normaliser(int(t), momentum) for t in num_steps])
    tau_eff = float(np.dot(p, a))
    coef = server_lr * tau_eff * p / a  # weight of (x - y_i) in the step
    out = []
    for layer, xl in enumerate(x):
        base = np.asarray(xl, dtype=np.float64)
        step = np.zeros(base.shape, dtype=np.float64)
        for ci, y in zip(coef, ys, strict=True):
            step += ci * (base - np.asarray(y[layer], dtype=np.float64))
        out.append(np.asarray(base - step, dtype=np.result_type(xl.dtype, np.float32)))
    return out


class FedNova(FedAvg):
    """FedNova (Wang et al., 2020) as a thin shell over `fednova_aggregate`.

    Parameters
    ----------
    momentum : float (default: 0.0)
        Local SGD momentum of the clients (0 for Adam or plain SGD).
    server_lr : float (default: 1.0)
        Global step size.
    **kwargs
        Passed to Flower's `FedAvg`; ``weighted_by_key`` (``"num-examples"``) gives n_i.
        Replies must report ``"num-steps"`` in their MetricRecord.
    """

    def __init__(self, *, momentum: float = 0.0, server_lr: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum
        self.server_lr = server_lr
        self._keys: list[str] = []
        self._x: Arrays | None = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's train messages; remembers x for the aggregation."""
        self._keys = list(arrays.keys())
        self._x = [arrays[k].numpy() for k in self._keys]
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Normalised average of the replies' models."""
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        if self._x is None:
            raise AggregationError("FedNova aggregate_train ran before configure_train")
        contents = [msg.content for msg in valid]
        ys, n, tau = [], [], []
        for rd in contents:
            record = rd.get(self.arrayrecord_key)
            if not isinstance(record, ArrayRecord):
                raise AggregationError(f"a FedNova reply has no {self.arrayrecord_key!r} record")
            metrics = next(iter(rd.metric_records.values()))
            if set(record.keys()) != set(self._keys):
                raise AggregationError("a FedNova reply's array keys differ from the model's")
            if NUM_STEPS_KEY not in metrics:
                raise AggregationError(f"a FedNova reply has no {NUM_STEPS_KEY!r} metric")
            ys.append([record[k].numpy() for k in self._keys])
            n.append(float(metrics[self.weighted_by_key]))
            tau.append(int(metrics[NUM_STEPS_KEY]))
        x_new = fednova_aggregate(self._x, ys, n, tau, self.momentum, self.server_lr)
        self._x = x_new
        record = ArrayRecord(
            {k: Array(np.asarray(a)) for k, a in zip(self._keys, x_new, strict=True)}
        )
        return record, self.train_metrics_aggr_fn(contents, self.weighted_by_key)
