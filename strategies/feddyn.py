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

from typing import Any

import numpy as np

from learning.errors import AggregationError
from strategies.base import Arrays, ArrayStrategy, Replies, Step, cast_like, check_like
from strategies.pooling import FEDDYN, PoolSum


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
    for i, theta in enumerate(thetas):
        check_like(x, theta, f"client {i} model")
    total = [np.zeros(np.shape(xl), np.float64) for xl in x]
    for theta in thetas:
        for t, a in zip(total, theta, strict=True):
            t += np.asarray(a, dtype=np.float64)
    return feddyn_pooled_update(x, total, len(thetas), h, alpha, num_clients)


def feddyn_pooled_update(
    x: Arrays, total: Arrays, k: int, h: Arrays, alpha: float, num_clients: int
) -> tuple[Arrays, Arrays]:
    """`feddyn_server_update` from ``sum_i theta_i`` (float64) and k (a pooled round)."""
    if k < 1:
        raise AggregationError("FedDyn got no client models to aggregate")
    if alpha <= 0:
        raise AggregationError(f"FedDyn needs alpha > 0, got {alpha}")
    if num_clients < k:
        raise AggregationError(f"FedDyn got {k} client models but num_clients is {num_clients}")
    check_like(x, h, "server state h")
    x_new, h_new = [], []
    for xl, hl, tl in zip(x, h, total, strict=True):
        delta_sum = tl - k * np.asarray(xl, dtype=np.float64)
        h_l = np.asarray(hl, dtype=np.float64) - alpha / num_clients * delta_sum
        x_new.append(cast_like(xl, tl / k - h_l / alpha))
        h_new.append(cast_like(hl, h_l))
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
    check_like(x, grad_state, "client gradient state")
    check_like(x, theta_i, "client model")
    return [
        cast_like(xl, np.asarray(g, np.float64) - alpha * (np.asarray(t, np.float64) - xl))
        for g, t, xl in zip(grad_state, theta_i, x, strict=True)
    ]


class FedDyn(ArrayStrategy):
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

    NAME = "FedDyn"
    STATE = "h"
    POOLING = FEDDYN
    _h: Arrays | None

    def __init__(self, *, alpha: float, num_clients: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = alpha
        self.num_clients = num_clients

    def pooled_step(self, x: Arrays, state: Arrays, pool: PoolSum) -> Step:
        return feddyn_pooled_update(
            x, pool.arrays, pool.clients, state, self.alpha, self.num_clients
        )

    def server_step(self, x: Arrays, state: Arrays, contents: Replies) -> Step:
        """New ``(x, h)`` from the replies' models."""
        thetas = [self._reply_arrays(rd) for rd in contents]
        return feddyn_server_update(x, thetas, state, self.alpha, self.num_clients)
