"""The `[personal]` section: client-local evaluation data, federated evaluation and the
personalised methods' own keys (docs/personalised.md).

Its own module so that config_schema.py does not grow: the section is a frozen
dataclass like the others (config_schema.SECTIONS lists it) and its checks across keys
are `check_personal`, called by config_checks.check_combinations. Every key here is
left out of client messages and the config digest while it holds its default
(config_schema.CLOCK_KEYS), so runs without it send what they sent before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from learning.config_field import key_field as _k
from learning.errors import ConfigError

# Personalised methods: the server aggregates the shared part as FedAvg does; what each
# keeps per client is in clients/personal.py, the update rules in strategies/personalised.py.
PERSONAL_STRATEGIES = ("fedavg-ft", "local", "fedper", "fedrep", "fedbn", "ditto", "apfl")


@dataclass(frozen=True)
class PersonalConfig:
    local_eval: bool = _k(
        False,
        "split each client's shard 75/25 into local train/test (seeded) and evaluate on "
        "the clients (personalised, worst10 and new-client accuracy)",
    )
    local_test_fraction: float = _k(
        0.25, "local-eval: share of a shard kept as its test", gt=0.0, lt=1.0
    )
    local_eval_every: int = _k(
        1, "local-eval: evaluate on the clients every N rounds (and the last)", min=1
    )
    local_eval_clients: int = _k(
        0, "local-eval: training clients evaluated each time, seeded sample (0 = all)", min=0
    )
    holdout_clients: float = _k(
        0.0,
        "share of clients that never train (seeded); evaluated as new clients",
        min=0.0,
        lt=1.0,
    )
    finetune_epochs: int = _k(1, "fedavg-ft: local epochs on the train split before testing", min=1)
    fedrep_head_epochs: int = _k(
        5, "FedRep: epochs on the head (body frozen) before local-epochs on the body", min=1
    )
    ditto_lambda: float = _k(0.1, "Ditto: pull of the personal model towards the global", min=0.0)
    ditto_epochs: int = _k(1, "Ditto: epochs of the personal model per round", min=1)
    apfl_alpha: float = _k(
        0.5, "APFL: mixing weight of the personal model (alpha v + (1-alpha) w)", gt=0.0, max=1.0
    )


PERSONAL_KEYS = frozenset(f.name.replace("_", "-") for f in dataclasses.fields(PersonalConfig))


def holdout_count(num_clients: int, fraction: float) -> int:
    """Clients held out of training: round(fraction * num-clients)."""
    return int(round(fraction * num_clients))


def check_personal(cfg: Any) -> None:
    """One line for each combination a personalised run cannot honour."""
    p, fed, name = cfg.personal, cfg.federation, cfg.strategy.strategy
    personal = name in PERSONAL_STRATEGIES
    if personal and not p.local_eval:
        raise ConfigError(
            f"strategy {name!r} is personalised and needs client-local test data; "
            "set local-eval = true"
        )
    held = holdout_count(fed.num_clients, p.holdout_clients)
    if p.holdout_clients > 0 and held == 0:
        raise ConfigError(
            f"holdout-clients = {p.holdout_clients} of {fed.num_clients} clients holds out "
            f"none (round({p.holdout_clients} x {fed.num_clients}) = 0); raise it or set 0"
        )
    if held and not p.local_eval:
        raise ConfigError("holdout-clients needs local-eval = true (they are only evaluated)")
    if fed.clients_per_round > fed.num_clients - held:
        raise ConfigError(
            f"clients-per-round ({fed.clients_per_round}) exceeds the {fed.num_clients - held} "
            f"clients that train ({held} held out); lower clients-per-round or holdout-clients"
        )
    if not p.local_eval:
        return
    why = None
    if cfg.continual.scenario != "none":
        why = "continual scenarios (a client's data changes by task)"
    elif name in ("fedasync", "fedbuff"):
        why = f"the asynchronous strategy {name!r} (no rounds to evaluate at)"
    elif fed.federation_mode != "simulation":
        why = "deployment mode (a SuperNode's own data has no seeded local split)"
    elif cfg.privacy.secure_aggregation:
        why = "SecAgg+ (each client's own test accuracy would reach the server)"
    elif held and cfg.privacy.dp == "central":
        why = "central DP with holdout-clients (the accountant samples every client)"
    elif cfg.devices.availability != "always" and held:
        why = "intermittent availability with holdout-clients"
    if why:
        raise ConfigError(f"local-eval cannot be combined with {why}")
