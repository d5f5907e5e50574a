"""A run's stages, built once before round 1 from the config (and the Grid)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from logging import WARNING
from pathlib import Path

import numpy as np
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from clients.attacks import COLLUDING
from learning.config import ExperimentConfig, FederationConfig
from learning.config_checks import over_selected
from learning.plugin_objects import display
from learning.scenarios import on_clock
from learning.training import initial_weights
from privacy.accounting import check_secagg_clipping, wrap_private
from privacy.secagg.round import SecureSender
from privacy.server_key import client_config, server_key
from server.deployment import NodeDealer
from server.pipeline.aggregate import Aggregator
from server.pipeline.clock import Clock
from server.pipeline.dispatch import Dispatcher, chunk_stamp, stamp
from server.pipeline.sampling_policy import SamplingPolicy, sampling_policy
from strategies.registry import build_strategy, pooling_kind


@dataclass
class Stages:
    cfg: ExperimentConfig
    private_cfg: ExperimentConfig  # deployment + central DP: over the connected nodes
    fed: FederationConfig  # deployment: num-clients = connected SuperNodes
    strategy: Strategy
    weights: list[np.ndarray]  # the initial model
    sampling: SamplingPolicy
    dispatch: Dispatcher
    aggregate: Aggregator
    secure: SecureSender | None
    max_retries: int
    clock: Clock
    pooling: str | None = None  # pooled dispatch's kind (strategies/pooling.py); None: off

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [w.shape for w in self.weights]


def build_stages(grid: Grid, cfg: ExperimentConfig, num_slots: int, run_dir: Path | None) -> Stages:
    fed = cfg.federation
    ds_shape, num_classes = _data_shape(cfg)
    t = cfg.train
    weights = initial_weights(t.model, ds_shape, num_classes, fed.seed, t.init_weights, cfg.plugin)
    # Deployment: the federation is the connected SuperNodes, client k the k-th by node id,
    # and each trains on its own data (server/deployment.py).
    dealer = NodeDealer(grid) if fed.federation_mode == "deployment" else None
    # Privacy is accounted over the population actually sampled from.
    central = cfg.privacy.dp == "central"
    private_cfg = dealer.private_config(cfg) if dealer is not None and central else cfg
    # The server's secret (central DP only): the Poisson draw and the noise come from it.
    key = server_key(cfg, run_dir)
    check_secagg_clipping(cfg, sum(w.size for w in weights))
    strategy = wrap_private(private_cfg, build_strategy(cfg, num_slots), key)
    # Central DP samples each client independently (the accountant's assumption) and
    # never tops a round up; SecAgg+ runs its own four-stage exchange per round.
    secure = SecureSender(cfg, num_slots) if cfg.privacy.secure_aggregation else None
    fed = dealer.federation(fed) if dealer is not None else fed
    address = dealer.address if dealer is not None else stamp
    pooling = pooling_for(cfg)
    if pooling is not None:
        address = functools.partial(chunk_stamp, size=fed.clients_per_message)
    base = client_config(cfg.to_flat())  # never the server-only keys
    clock = Clock(cfg, fed.num_clients)
    online = None if clock.availability.always else clock.online
    return Stages(
        cfg=cfg,
        private_cfg=private_cfg,
        fed=fed,
        strategy=strategy,
        weights=weights,
        sampling=sampling_policy(fed, central, key, over_selected(cfg), online),
        dispatch=Dispatcher(strategy, grid, base, address, clock if on_clock(cfg) else None),
        aggregate=Aggregator(cfg, strategy, secure, [w.dtype for w in weights]),
        secure=secure,
        max_retries=0 if central or secure else fed.max_retries,
        clock=clock,
        pooling=pooling,
    )


def pooling_for(cfg: ExperimentConfig) -> str | None:
    """The run's pooling kind, or None: one message per client. Pooling needs
    clients-per-message > 1, simulation mode (a SuperNode is one client), no SecAgg+
    (its own protocol), no colluding attack (it needs every update) and a strategy that
    declares a pooling kind (strategies/registry.py: POOLING); otherwise the run keeps
    one message per client, and says so."""
    fed = cfg.federation
    if fed.clients_per_message <= 1:
        return None
    kind = pooling_kind(cfg.strategy.strategy, cfg.privacy.dp)
    why = None
    if fed.federation_mode != "simulation":
        why = "deployment mode"
    elif cfg.privacy.secure_aggregation:
        why = "SecAgg+"
    elif cfg.attack.attack in COLLUDING:
        why = f"the colluding attack {cfg.attack.attack!r}"
    elif kind is None:
        why = f"strategy {display(cfg.strategy.strategy)!r} needs individual updates"
    elif cfg.devices.round_policy != "sync" or cfg.devices.availability != "always":
        # late and offline clients are dropped one by one after the round: a sum cannot be
        why = "the deadline policy or intermittent availability drops clients one by one"
    if why is not None:
        log(
            WARNING,
            "clients-per-message=%d ignored: %s; one message per client",
            fed.clients_per_message,
            why,
        )
        return None
    return kind


def _data_shape(cfg: ExperimentConfig) -> tuple[tuple[int, int, int], int]:
    from learning.federated_data import dataset_for

    ds = dataset_for(cfg)
    return ds.input_shape, ds.num_classes
