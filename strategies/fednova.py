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

from collections.abc import Sequence
from typing import Any

import numpy as np

from learning.errors import AggregationError
from strategies.base import (
    Arrays,
    ArrayStrategy,
    Replies,
    Step,
    cast_like,
    check_like,
    reply_metrics,
)
from strategies.pooling import FEDNOVA, PoolSum

NUM_STEPS_KEY = "num-steps"


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
        check_like(x, y, f"client {i} model")
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
        out.append(cast_like(xl, base - step))
    return out


class FedNova(ArrayStrategy):
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

    NAME = "FedNova"
    POOLING = FEDNOVA

    def __init__(self, *, momentum: float = 0.0, server_lr: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum
        self.server_lr = server_lr

    def pooled_step(self, x: Arrays, state: Arrays, pool: PoolSum) -> Step:
        """With N = sum n_i, S = sum n_i (x - y_i) / a_i and A = sum n_i a_i:
        tau_eff = A / N and the step is server_lr * tau_eff * S / N."""
        if pool.weight <= 0:
            raise AggregationError("FedNova got no examples to aggregate")
        coef = self.server_lr * (pool.normaliser / pool.weight) / pool.weight
        return [
            cast_like(xl, np.asarray(xl, np.float64) - coef * s)
            for xl, s in zip(x, pool.arrays, strict=True)
        ], state

    def server_step(self, x: Arrays, state: Arrays, contents: Replies) -> Step:
        """Normalised average of the replies' models (no state)."""
        ys, n, tau = [], [], []
        for rd in contents:
            ys.append(self._reply_arrays(rd))
            metrics = reply_metrics(rd)
            if NUM_STEPS_KEY not in metrics:
                raise AggregationError(f"a FedNova reply has no {NUM_STEPS_KEY!r} metric")
            n.append(float(metrics[self.weighted_by_key]))
            tau.append(int(metrics[NUM_STEPS_KEY]))
        return fednova_aggregate(x, ys, n, tau, self.momentum, self.server_lr), state
