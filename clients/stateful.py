"""Client halves of the strategies that keep per-client state between rounds.

SCAFFOLD (Karimireddy et al. 2020) keeps a control variate c_i; FedDyn (Acar et al.
2021) keeps the gradient state g_i of its dynamic regulariser. Both live in the
client store under the run directory, keyed by partition id and round, so an
idle client costs no memory and a resumed round sees the state it saw first time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flwr.app import Message

from clients.state_store import ClientStore
from learning.config import ExperimentConfig
from learning.errors import ConfigError
from strategies.feddyn import feddyn_client_state_update
from strategies.scaffold import SCAFFOLD_C_KEY, SCAFFOLD_DC_KEY, scaffold_client_control

Arrays = list[np.ndarray]


def store_for(
    cfg: ExperimentConfig, subdir: str = "client-state", owner: str | None = None
) -> ClientStore:
    """The on-disk client store under the run directory; `owner` names who needs it."""
    if not cfg.runtime.out_dir:
        owner = owner or f"strategy {cfg.strategy.strategy!r}"
        raise ConfigError(
            f"{owner} keeps client state on disk and needs out-dir; set --set out-dir=/path/to/run"
        )
    return ClientStore(Path(cfg.runtime.out_dir) / subdir)


def _arrays(state: dict[str, np.ndarray], prefix: str, like: Arrays) -> Arrays:
    if not state:
        return [np.zeros_like(w) for w in like]
    return [state[f"{prefix}{i}"] for i in range(len(like))]


@dataclass
class ClientState:
    """What a stateful algorithm adds to one local update."""

    correction: Arrays
    finish: Callable[[Arrays, int], dict[str, Arrays]] = field(repr=False)


def scaffold(cfg: ExperimentConfig, pid: int, rnd: int, msg: Message, x: Arrays) -> ClientState:
    store = store_for(cfg)
    c = msg.content[SCAFFOLD_C_KEY].to_numpy_ndarrays()
    c_i = _arrays(store.load(pid, before_round=rnd), "c", x)

    def finish(y: Arrays, steps: int) -> dict[str, Arrays]:
        c_plus = scaffold_client_control(
            c_i, c, x, y, steps, cfg.train.lr * cfg.train.lr_decay ** max(0, rnd - 1)
        )
        store.save(pid, {f"c{i}": v for i, v in enumerate(c_plus)}, server_round=rnd)
        return {SCAFFOLD_DC_KEY: [a - b for a, b in zip(c_plus, c_i, strict=True)]}

    return ClientState([a - b for a, b in zip(c, c_i, strict=True)], finish)


def feddyn(cfg: ExperimentConfig, pid: int, rnd: int, msg: Message, x: Arrays) -> ClientState:
    store = store_for(cfg)
    g = _arrays(store.load(pid, before_round=rnd), "g", x)
    alpha = cfg.strategy.feddyn_alpha

    def finish(theta: Arrays, steps: int) -> dict[str, Arrays]:
        g_new = feddyn_client_state_update(g, theta, x, alpha)
        store.save(pid, {f"g{i}": v for i, v in enumerate(g_new)}, server_round=rnd)
        return {}

    return ClientState([-v for v in g], finish)


STATEFUL: dict[str, Callable[..., ClientState]] = {"scaffold": scaffold, "feddyn": feddyn}
