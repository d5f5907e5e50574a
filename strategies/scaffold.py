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
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import validate_message_reply_consistency

from learning.errors import AggregationError

SCAFFOLD_C_KEY = "scaffold-c"
SCAFFOLD_DC_KEY = "scaffold-dc"

Arrays = list[np.ndarray]


def _out(ref: np.ndarray, value: np.ndarray) -> np.ndarray:
    """`value` in the floating dtype the model array `ref` is stored in."""
    return np.asarray(value, dtype=np.result_type(ref.dtype, np.float32))


def _check_like(ref: Arrays, other: Arrays, what: str) -> None:
    if len(other) != len(ref):
        raise AggregationError(f"{what} has {len(other)} arrays, expected {len(ref)}")
    for i, (a, b) in enumerate(zip(ref, other, strict=True)):
        if np.shape(a) != np.shape(b):
            raise AggregationError(
                f"{what} array {i} has shape {np.shape(b)}, expected {np.shape(a)}"
            )


def _mean_delta(base: Arrays | None, clients: list[Arrays], layer: int) -> np.ndarray:
    """mean_i(clients[i][layer] - base[layer]) in float64 (base None = zeros)."""
    total = np.zeros(np.shape(clients[0][layer]), dtype=np.float64)
    for arrays in clients:
        total += np.asarray(arrays[layer], dtype=np.float64)
    total /= len(clients)
    if base is not None:
        total -= np.asarray(base[layer], dtype=np.float64)
    return total


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
    _check_like(x, c, "server control variate")
    for i, (y, dc) in enumerate(zip(ys, dcs, strict=True)):
        _check_like(x, y, f"client {i} model")
        _check_like(x, dc, f"client {i} control delta")
    frac = len(ys) / num_clients
    x_new = [_out(xl, xl + server_lr * _mean_delta(x, ys, i)) for i, xl in enumerate(x)]
    c_new = [_out(cl, cl + frac * _mean_delta(None, dcs, i)) for i, cl in enumerate(c)]
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
    _check_like(x, c_i, "client control variate")
    _check_like(x, c, "server control variate")
    _check_like(x, y_i, "client model")
    scale = 1.0 / (num_steps * lr)
    return [
        _out(xl, np.asarray(ci, np.float64) - cl + (np.asarray(xl, np.float64) - yl) * scale)
        for ci, cl, xl, yl in zip(c_i, c, x, y_i, strict=True)
    ]


def _reply_arrays(content: RecordDict, key: str, keys: list[str]) -> Arrays:
    record = content.get(key)
    if not isinstance(record, ArrayRecord):
        raise AggregationError(f"a SCAFFOLD reply has no {key!r} ArrayRecord")
    if set(record.keys()) != set(keys):
        raise AggregationError(f"a SCAFFOLD reply's {key!r} keys differ from the model's")
    return [record[k].numpy() for k in keys]


class Scaffold(FedAvg):
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

    def __init__(self, *, num_clients: int, server_lr: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_clients = num_clients
        self.server_lr = server_lr
        self._keys: list[str] = []
        self._x: Arrays | None = None
        self._c: Arrays | None = None

    def state_dict(self) -> dict[str, Arrays]:
        """The server control variate, ``{"c": [...]}`` (empty before the first round)."""
        return {"c": [a.copy() for a in self._c or []]}

    def load_state_dict(self, state: dict[str, Arrays]) -> None:
        """Restore what `state_dict` returned; shapes are checked at the next round."""
        if "c" not in state:
            raise AggregationError("SCAFFOLD state has no 'c' entry")
        self._c = [np.array(a) for a in state["c"]] or None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's train messages, each also carrying c under ``"scaffold-c"``."""
        self._keys = list(arrays.keys())
        self._x = [arrays[k].numpy() for k in self._keys]
        if self._c is None:
            self._c = [np.zeros(a.shape, np.result_type(a.dtype, np.float32)) for a in self._x]
        _check_like(self._x, self._c, "SCAFFOLD state c")
        c_record = ArrayRecord(
            {k: Array(np.asarray(a)) for k, a in zip(self._keys, self._c, strict=True)}
        )
        messages = list(super().configure_train(server_round, arrays, config, grid))
        for msg in messages:
            msg.content[SCAFFOLD_C_KEY] = c_record
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """New x from the replies' y_i and scaffold-dc; c is updated in place."""
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        if not valid:
            return None, None
        contents = [msg.content for msg in valid]
        validate_message_reply_consistency(contents, self.weighted_by_key, check_arrayrecord=False)
        if self._x is None or self._c is None:
            raise AggregationError("SCAFFOLD aggregate_train ran before configure_train")
        ys = [_reply_arrays(rd, self.arrayrecord_key, self._keys) for rd in contents]
        dcs = [_reply_arrays(rd, SCAFFOLD_DC_KEY, self._keys) for rd in contents]
        x_new, c_new = scaffold_server_update(
            self._x, ys, dcs, self._c, self.server_lr, self.num_clients
        )
        self._x, self._c = x_new, c_new
        record = ArrayRecord(
            {k: Array(np.asarray(a)) for k, a in zip(self._keys, x_new, strict=True)}
        )
        return record, self.train_metrics_aggr_fn(contents, self.weighted_by_key)
