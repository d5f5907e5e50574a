"""SCAFFOLD: stochastic controlled averaging with control variates.

Karimireddy, Kale, Mohri, Reddi, Stich and Suresh, "SCAFFOLD: Stochastic Controlled
Averaging for Federated Learning", ICML 2020, https://arxiv.org/abs/1910.06378
(Algorithm 1, control-variate update option II).

Protocol (record keys of the train messages)
--------------------------------------------
server -> client: ``"arrays"`` (global model x), ``"config"`` and ``"scaffold-c"``
(ArrayRecord of the server control variate c, same keys and shapes as x).

client -> server: ``"arrays"`` (local model y_i after K steps of
``g_i(y) + c - c_i``), ``"metrics"`` (with ``num-examples`` and ``num-steps``) and
``"scaffold-dc"`` (ArrayRecord of ``c_i^+ - c_i``). The client keeps c_i (zeros on
first participation) and replaces it with ``scaffold_client_control(...)``.

Server: ``x <- x + server_lr * mean_i(y_i - x)`` and
``c <- c + (|S| / N) * mean_i(dc_i)``, both unweighted means over the sampled set S
as in the paper; N is the number of registered clients.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from learning.errors import AggregationError
from strategies.base import Arrays, ArrayStrategy, Replies, Step, cast_like, check_like, mean_delta
from strategies.pooling import SCAFFOLD, PoolSum

SCAFFOLD_C_KEY = "scaffold-c"
SCAFFOLD_DC_KEY = "scaffold-dc"


def scaffold_server_update(
    x: Arrays,
    ys: list[Arrays],
    dcs: list[Arrays],
    c: Arrays,
    server_lr: float,
    num_clients: int,
) -> tuple[Arrays, Arrays]:
    """One SCAFFOLD server step; returns new ``(x, c)`` without touching the inputs.

    Parameters
    ----------
    x : list of np.ndarray
        Current global model.
    ys : list of list of np.ndarray
        Local models y_i of the sampled clients.
    dcs : list of list of np.ndarray
        Control-variate changes ``c_i^+ - c_i`` of the same clients, in the same order.
    c : list of np.ndarray
        Current server control variate.
    server_lr : float
        Global step size eta_g.
    num_clients : int
        N, all registered clients; ``|S| / N`` scales the control-variate step.

    Returns
    -------
    tuple of (list of np.ndarray, list of np.ndarray)
        ``x + server_lr * mean_i(y_i - x)`` and ``c + (|S| / N) * mean_i(dc_i)``.
    """
    if not ys:
        raise AggregationError("SCAFFOLD got no client updates to aggregate")
    if len(dcs) != len(ys):
        raise AggregationError(f"SCAFFOLD got {len(ys)} models but {len(dcs)} control deltas")
    if num_clients < len(ys):
        raise AggregationError(
            f"SCAFFOLD got {len(ys)} client updates but num_clients is {num_clients}"
        )
    check_like(x, c, "server control variate")
    for i, (y, dc) in enumerate(zip(ys, dcs, strict=True)):
        check_like(x, y, f"client {i} model")
        check_like(x, dc, f"client {i} control delta")
    frac = len(ys) / num_clients
    x_new = [cast_like(xl, xl + server_lr * mean_delta(x, ys, i)) for i, xl in enumerate(x)]
    c_new = [cast_like(cl, cl + frac * mean_delta(None, dcs, i)) for i, cl in enumerate(c)]
    return x_new, c_new


def scaffold_client_control(
    c_i: Arrays, c: Arrays, x: Arrays, y_i: Arrays, num_steps: int, lr: float
) -> Arrays:
    """Client control variate after a round, option II of Algorithm 1.

    ``c_i^+ = c_i - c + (x - y_i) / (K * lr)`` with K local steps of size lr. This
    assumes plain local SGD (with momentum the step is only approximately K * lr).

    Returns
    -------
    list of np.ndarray
        c_i^+; the client replies with ``c_i^+ - c_i`` under ``"scaffold-dc"``.
    """
    if num_steps < 1:
        raise AggregationError(f"SCAFFOLD needs num_steps >= 1, got {num_steps}")
    if lr <= 0:
        raise AggregationError(f"SCAFFOLD needs a positive client lr, got {lr}")
    check_like(x, c_i, "client control variate")
    check_like(x, c, "server control variate")
    check_like(x, y_i, "client model")
    scale = 1.0 / (num_steps * lr)
    return [
        cast_like(xl, np.asarray(ci, np.float64) - cl + (np.asarray(xl, np.float64) - yl) * scale)
        for ci, cl, xl, yl in zip(c_i, c, x, y_i, strict=True)
    ]


class Scaffold(ArrayStrategy):
    """SCAFFOLD (Karimireddy et al., 2020) as a thin shell over `scaffold_server_update`.

    Parameters
    ----------
    num_clients : int
        N, all registered clients (not the number sampled per round).
    server_lr : float (default: 1.0)
        Global step size eta_g.
    **kwargs
        Passed to Flower's `FedAvg` (sampling, record keys, metric aggregation).
        ``weighted_by_key`` only weights the aggregated metrics; models are averaged
        without weights, as in the paper.
    """

    NAME = "SCAFFOLD"
    STATE = "c"
    POOLING = SCAFFOLD
    SINGLE_ARRAY_RECORD = False  # replies also carry "scaffold-dc"
    _c: Arrays | None

    def __init__(self, *, num_clients: int, server_lr: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_clients = num_clients
        self.server_lr = server_lr

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's train messages, each also carrying c under ``"scaffold-c"``."""
        messages = list(super().configure_train(server_round, arrays, config, grid))
        _, c = self._started()
        c_record = self._record(c)
        for msg in messages:
            msg.content[SCAFFOLD_C_KEY] = c_record
        return messages

    def pooled_step(self, x: Arrays, state: Arrays, pool: PoolSum) -> Step:
        """`scaffold_server_update` from ``sum y_i``, ``sum dc_i`` and k."""
        k = pool.clients
        if self.num_clients < k:
            raise AggregationError(
                f"SCAFFOLD got {k} client updates but num_clients is {self.num_clients}"
            )
        frac = k / self.num_clients
        ys, dcs = pool.arrays, pool.extras[SCAFFOLD_DC_KEY]
        x_new = [
            cast_like(xl, xl + self.server_lr * (y / k - np.asarray(xl, np.float64)))
            for xl, y in zip(x, ys, strict=True)
        ]
        c_new = [cast_like(cl, cl + frac * (d / k)) for cl, d in zip(state, dcs, strict=True)]
        return x_new, c_new

    def server_step(self, x: Arrays, state: Arrays, contents: Replies) -> Step:
        """New ``(x, c)`` from the replies' y_i and scaffold-dc."""
        ys = [self._reply_arrays(rd) for rd in contents]
        dcs = [self._reply_arrays(rd, SCAFFOLD_DC_KEY) for rd in contents]
        return scaffold_server_update(x, ys, dcs, state, self.server_lr, self.num_clients)
