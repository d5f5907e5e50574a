"""A run's stages, built once before round 1 from the config (and the Grid)."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from logging import WARNING
from pathlib import Path

import numpy as np
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from clients.attacks import COLLUDING
from learning.config import PERSONAL_STRATEGIES, ExperimentConfig, FederationConfig
from learning.config_checks import over_selected
from learning.config_personal import holdout_count
from learning.continual_checks import SERVER_METHODS
from learning.local_split import holdout_set
from learning.plugin_objects import display
from learning.scenarios import on_clock
from learning.warm_start import initial_weights
from privacy.accounting import check_secagg_clipping, wrap_private
from privacy.secagg.round import SecureSender
from privacy.server_key import client_config, server_key
from server.continual_methods import ContinualServer
from server.deployment import NodeDealer
from server.pipeline.aggregate import Aggregator
from server.pipeline.clock import Clock
from server.pipeline.dispatch import Dispatcher, chunk_stamp, stamp
from server.pipeline.local_eval import LocalEvaluator
from server.pipeline.node_faults import NodeFaults
from server.pipeline.sampling_policy import SamplingPolicy, TrainingClients, sampling_policy
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
    local_eval: LocalEvaluator | None = None  # local-eval: evaluation on the clients
    node_faults: NodeFaults | None = None  # deployment: per-node sends and fault events
    dealer: NodeDealer | None = None  # deployment: the SuperNodes sampled from
    run_dir: Path | None = None
    continual: ContinualServer | None = None  # FOT's basis / TARGET's synthetic set

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
    dealer = NodeDealer(grid, run_dir) if fed.federation_mode == "deployment" else None
    # Privacy is accounted over the population actually sampled from.
    central = cfg.privacy.dp == "central"
    private_cfg = dealer.private_config(cfg) if dealer is not None and central else cfg
    # The server's secret (central DP only): the Poisson draw and the noise come from it.
    key = server_key(cfg, run_dir)
    check_secagg_clipping(cfg, sum(w.size for w in weights))
    # A deployment's loop samples the SuperNodes itself and needs one message from the
    # strategy as a template: asking Flower for every node present at the start would
    # wait for ever once one dies (configure_train waits for min-available-nodes).
    strategy = wrap_private(private_cfg, build_strategy(cfg, 1 if dealer else num_slots), key)
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
    sampling = sampling_policy(fed, central, key, over_selected(cfg), online)
    cl = cfg.continual
    continual = None
    if cl.scenario != "none" and cl.cl_method in SERVER_METHODS:
        continual = ContinualServer(cfg, run_dir, weights)
    local_eval = None
    if cfg.personal.local_eval:
        sampling, local_eval = with_local_eval(cfg, grid, base, key, sampling)
    return Stages(
        cfg=cfg,
        private_cfg=private_cfg,
        fed=fed,
        strategy=strategy,
        weights=weights,
        sampling=sampling,
        dispatch=Dispatcher(
            strategy,
            grid,
            base,
            address,
            clock if on_clock(cfg) else None,
            continual.records if continual is not None else None,
        ),
        aggregate=Aggregator(cfg, strategy, secure, [w.dtype for w in weights]),
        secure=secure,
        max_retries=0 if central or secure else fed.max_retries,
        clock=clock,
        pooling=pooling,
        local_eval=local_eval,
        node_faults=NodeFaults(cfg) if dealer is not None else None,
        dealer=dealer,
        run_dir=run_dir,
        continual=continual,
    )


def with_local_eval(
    cfg: ExperimentConfig, grid: Grid, base: dict, key: int | None, sampling: SamplingPolicy
) -> tuple[SamplingPolicy, LocalEvaluator]:
    """local-eval's evaluator, and the sampling over the clients that train (held-out
    clients never do). config_personal refuses holding clients out where the policy
    cannot be wrapped (central DP's Poisson draw, intermittent availability)."""
    fed, p = cfg.federation, cfg.personal
    held = holdout_set(fed.seed, fed.num_clients, holdout_count(fed.num_clients, p.holdout_clients))
    if held:
        train = tuple(c for c in range(fed.num_clients) if c not in held)
        inner = dataclasses.replace(fed, num_clients=len(train))
        central = cfg.privacy.dp == "central"
        sampling = TrainingClients(sampling_policy(inner, central, key, over_selected(cfg)), train)
    return sampling, LocalEvaluator(cfg, grid, base, held)


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
    elif cfg.strategy.strategy in PERSONAL_STRATEGIES:
        why = f"the personalised method {cfg.strategy.strategy!r} (its state is per client)"
    elif cfg.continual.scenario != "none" and cfg.continual.cl_method in SERVER_METHODS:
        why = f"cl-method {cfg.continual.cl_method!r} (its records are per client)"
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
