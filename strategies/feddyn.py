"""FedDyn: federated learning with dynamic regularisation.

Acar, Zhao, Matas, Mattina, Whatmough and Saligrama, "Federated Learning Based on
Dynamic Regularization", ICLR 2021, https://arxiv.org/abs/2111.04263 (Algorithm 1).

Client i minimises ``L_i(theta) - <g_i, theta> + alpha/2 ||theta - x||^2`` starting
from the global model x, where g_i is its remembered gradient state (zeros on first
participation), then updates ``g_i <- g_i - alpha (theta_i - x)``
(`feddyn_client_state_update`). In the gradient step that is an extra
``alpha (w - x) - g_i``. No extra records travel: the client replies with the usual
``"arrays"`` (theta_i) and ``"metrics"``, and reads alpha from the config key
``feddyn-alpha``.

Server (state h, zeros at start)::

    h     <- h - alpha * (1/N) * sum_{i in S} (theta_i - x)
    x_new <- mean_{i in S}(theta_i) - h / alpha

with N the number of registered clients.
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
    return np.asarray(value, dtype=np.result_type(ref.dtype, np.float32))


def feddyn_server_update(
    x: Arrays, thetas: list[Arrays], h: Arrays, alpha: float, num_clients: int
) -> tuple[Arrays, Arrays]:
    """One FedDyn server step; returns new ``(x, h)`` without touching the inputs.

    Parameters
    ----------
    x : list of np.ndarray
        Current global model (the one the clients started from).
    thetas : list of list of np.ndarray
        Client models theta_i of the sampled set S.
    h : list of np.ndarray
        Server state h.
    alpha : float
        Regularisation strength (> 0).
    num_clients : int
        N, all registered clients.

    Returns
    -------
    tuple of (list of np.ndarray, list of np.ndarray)
        ``mean_i(theta_i) - h_new / alpha`` and
        ``h_new = h - alpha / N * sum_i (theta_i - x)``.
    """
    if not thetas:
        raise AggregationError("FedDyn got no client models to aggregate")
    if alpha <= 0:
        raise AggregationError(f"FedDyn needs alpha > 0, got {alpha}")
    if num_clients < len(thetas):
        raise AggregationError(
            f"FedDyn got {len(thetas)} client models but num_clients is {num_clients}"
        )
    _check_like(x, h, "server state h")
    for i, theta in enumerate(thetas):
        _check_like(x, theta, f"client {i} model")
    k = len(thetas)
    x_new, h_new = [], []
    for layer, (xl, hl) in enumerate(zip(x, h, strict=True)):
        total = np.zeros(np.shape(xl), dtype=np.float64)
        for theta in thetas:
            total += np.asarray(theta[layer], dtype=np.float64)
        delta_sum = total - k * np.asarray(xl, dtype=np.float64)
        h_l = np.asarray(hl, dtype=np.float64) - alpha / num_clients * delta_sum
        x_new.append(_out(xl, total / k - h_l / alpha))
        h_new.append(_out(hl, h_l))
    return x_new, h_new


def feddyn_client_state_update(
    grad_state: Arrays, theta_i: Arrays, x: Arrays, alpha: float
) -> Arrays:
    """The client's new gradient state ``g_i - alpha (theta_i - x)``.

    Parameters
    ----------
    grad_state : list of np.ndarray
        g_i before the round (zeros on first participation).
    theta_i : list of np.ndarray
        The client's model after local training.
    x : list of np.ndarray
        The global model it started from.
    alpha : float
        Regularisation strength.

    Returns
    -------
    list of np.ndarray
        The new g_i (inputs are not modified).
    """
    _check_like(x, grad_state, "client gradient state")
    _check_like(x, theta_i, "client model")
    return [
        _out(xl, np.asarray(g, np.float64) - alpha * (np.asarray(t, np.float64) - xl))
        for g, t, xl in zip(grad_state, theta_i, x, strict=True)
    ]


class FedDyn(FedAvg):
    """FedDyn (Acar et al., 2021) as a thin shell over `feddyn_server_update`.

    Parameters
    ----------
    alpha : float
        Regularisation strength; the clients must use the same value.
    num_clients : int
        N, all registered clients (not the number sampled per round).
    **kwargs
        Passed to Flower's `FedAvg`; ``weighted_by_key`` only weights the metrics,
        models are averaged without weights, as in the paper.
    """

    def __init__(self, *, alpha: float, num_clients: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = alpha
        self.num_clients = num_clients
        self._keys: list[str] = []
        self._x: Arrays | None = None
        self._h: Arrays | None = None

    def state_dict(self) -> dict[str, Arrays]:
        """The server state, ``{"h": [...]}`` (empty before the first round)."""
        return {"h": [a.copy() for a in self._h or []]}

    def load_state_dict(self, state: dict[str, Arrays]) -> None:
        """Restore what `state_dict` returned; shapes are checked at the next round."""
        if "h" not in state:
            raise AggregationError("FedDyn state has no 'h' entry")
        self._h = [np.array(a) for a in state["h"]] or None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's train messages; remembers x and sets h to zeros on first use."""
        self._keys = list(arrays.keys())
        self._x = [arrays[k].numpy() for k in self._keys]
        if self._h is None:
            self._h = [np.zeros(a.shape, np.result_type(a.dtype, np.float32)) for a in self._x]
        _check_like(self._x, self._h, "FedDyn state h")
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """New x from the replies' models; h is updated in place."""
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        if self._x is None or self._h is None:
            raise AggregationError("FedDyn aggregate_train ran before configure_train")
        contents = [msg.content for msg in valid]
        thetas = []
        for rd in contents:
            record = rd.get(self.arrayrecord_key)
            if not isinstance(record, ArrayRecord):
                raise AggregationError(f"a FedDyn reply has no {self.arrayrecord_key!r} record")
            if set(record.keys()) != set(self._keys):
                raise AggregationError("a FedDyn reply's array keys differ from the model's")
            thetas.append([record[k].numpy() for k in self._keys])
        x_new, h_new = feddyn_server_update(self._x, thetas, self._h, self.alpha, self.num_clients)
        self._x, self._h = x_new, h_new
        record = ArrayRecord(
            {k: Array(np.asarray(a)) for k, a in zip(self._keys, x_new, strict=True)}
        )
        return record, self.train_metrics_aggr_fn(contents, self.weighted_by_key)
