"""The checks that need more than one key, or a registry: run once per built config.

This is the one validator of names: the allowed datasets, partitioners and models are
the keys of the registries themselves (DATASETS, PARTITIONERS, MODELS, all in this
layer); the strategy names reach this bottom layer as data, handed down by
`strategies/__init__.py` from its STRATEGIES registry (`register_strategy_names`),
because learning/ may not import strategies/.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from learning.availability import read_availability_file
from learning.config_personal import PERSONAL_STRATEGIES, check_personal
from learning.config_schema import (
    ASYNC_STRATEGIES,
    SPLIT_SCENARIOS,
    SUM_ONLY_STRATEGIES,
    FederationConfig,
    Sections,
)
from learning.continual_checks import check_server_methods
from learning.datasets import DATASETS
from learning.datasets.client_folders import client_folder_count
from learning.defence_bounds import strategy_error
from learning.devices import read_device_file
from learning.errors import ConfigError
from learning.late_joiners import check_late_joiners
from learning.models import MODELS
from learning.partition import PARTITIONERS
from learning.plugins import FORMS, is_keras_file, is_plugin, plugin_error, resolve
from learning.secagg_plan import max_round_size, secagg_plan
from learning.warm_start import weights_file

_STRATEGY_NAMES: set[str] = set()


def register_strategy_names(names: Iterable[str]) -> None:
    """Hand the strategy registry's names down (strategies/ imports learning/, not back)."""
    _STRATEGY_NAMES.update(names)


def registry_names(kind: str) -> list[str]:
    """The allowed names for a registry-backed key (`registry=` on its field)."""
    if kind == "strategy":
        return sorted(_STRATEGY_NAMES)
    return sorted({"dataset": DATASETS, "partition": PARTITIONERS, "model": MODELS}[kind])


def check_name(key: str, kind: str, value: str) -> None:
    """A registry-backed value must be one of the registry's keys.

    Strategy names are checked once the strategies package has registered them (every
    app and the CLI import it before building a config from user input)."""
    if kind in FORMS and is_plugin(value):
        check_plugin(key, value)
        return
    names = registry_names(kind)
    if kind == "strategy" and not names:
        return
    if value not in names:
        more = f" or a plug-in {FORMS[kind]}" if kind in FORMS else ""
        raise ConfigError(f"unknown {key} {value!r}; expected one of {names}{more}")


def check_plugin(key: str, value: str) -> None:
    """A plug-in value: a readable .keras file (model) or an importable, callable
    module:attribute with the right arity. What it returns is judged when it is first
    called (`preflight`, then the server's set-up), before any client trains."""
    if key == "model" and is_keras_file(value):
        if not Path(value).is_file():
            raise plugin_error(key, value, "no such file")
        return
    if value.endswith(".keras"):
        raise plugin_error(key, value, "a .keras file is accepted for model only")
    resolve(key, value)


NATURAL = "client-folders"  # the dataset that brings its own split (partition "natural")


def implied_values(values: dict[str, Any]) -> dict[str, Any]:
    """The user's keys plus what `dataset = "client-folders"` implies where they are left
    out: partition "natural", num-clients = the number of client folders, and
    clients-per-round at most that. Given keys are kept (and judged by `check_natural`)."""
    if values.get("dataset") != NATURAL:
        return values
    out = {"partition": "natural", **values}
    path = out.get("data-path")
    if "num-clients" not in out and isinstance(path, str) and path:
        out["num-clients"] = client_folder_count(path)
    n = out.get("num-clients")
    if "clients-per-round" not in out and type(n) is int:
        out["clients-per-round"] = min(FederationConfig.clients_per_round, n)
    return out


def check_natural(cfg: Sections) -> None:
    """client-folders is split by its folders: the partition is `natural` and num-clients
    is the folder count; `natural` needs a dataset that names each example's client."""
    d, n = cfg.data, cfg.federation.num_clients
    if d.partition == "natural" and d.dataset != NATURAL:
        raise ConfigError(
            f'partition "natural" is the split a dataset brings with it; dataset '
            f'{d.dataset!r} has none: set dataset = "{NATURAL}" or pick another partition'
        )
    if d.dataset != NATURAL or not d.data_path:
        return  # a missing data-path is reported by check_combinations
    if d.partition != "natural":
        raise ConfigError(
            f'dataset "{NATURAL}" is already split (client k = the k-th client folder); '
            f'remove partition = "{d.partition}" or set partition = "natural"'
        )
    folders = client_folder_count(d.data_path)
    if n != folders:
        raise ConfigError(
            f"num-clients ({n}) must equal the {folders} client folders in {d.data_path} "
            f"(one client per folder); remove num-clients or set num-clients={folders}"
        )


# Strategies whose clients keep state in the on-disk client store: SCAFFOLD and FedDyn
# (clients/stateful.py) and every personalised method but fedavg-ft (clients/personal.py).
CLIENT_STATE_STRATEGIES = (
    "scaffold",
    "feddyn",
    *(s for s in PERSONAL_STRATEGIES if s != "fedavg-ft"),
)


def _check_checkpoint_every(cfg: Sections) -> None:
    """The client store keeps each client's two newest states; a checkpoint N rounds back
    would need states it has already pruned, so clients that keep state checkpoint every
    round."""
    every, cl = cfg.runtime.checkpoint_every, cfg.continual
    if every == 1:
        return
    name = cfg.strategy.strategy
    keeps = name in CLIENT_STATE_STRATEGIES and f"strategy {name!r}"
    if cl.scenario != "none" and cl.cl_method != "finetune":
        keeps = f"cl-method {cl.cl_method!r}"
    if keeps:
        raise ConfigError(
            f"checkpoint-every = {every} with {keeps}: its clients keep state on disk, "
            "which a resume from an older checkpoint cannot restore; use checkpoint-every = 1"
        )


def check_combinations(cfg: Sections) -> None:
    """Refuse combinations of keys that would not run, or not mean what they say."""
    check_natural(cfg)
    fed = cfg.federation
    if fed.clients_per_round > fed.num_clients:
        raise ConfigError(
            f"clients-per-round ({fed.clients_per_round}) exceeds num-clients "
            f"({fed.num_clients}); lower clients-per-round or raise num-clients"
        )
    _check_devices(cfg)  # first: async + DP/SecAgg+ get the async reason
    _check_checkpoint_every(cfg)
    _check_privacy(cfg)
    s, t = cfg.strategy, cfg.train  # robust-aggregation bounds; optimiser assumptions
    if bad := strategy_error(
        s.strategy, fed.clients_per_round, s.num_malicious, s.trim_beta, t.optimizer, t.momentum
    ):
        raise ConfigError(bad)
    if (
        cfg.data.dataset != "fashion-mnist"
        and not is_plugin(cfg.data.dataset)
        and not cfg.data.data_path
    ):
        raise ConfigError(
            f"dataset {cfg.data.dataset!r} needs data-path; add --set data-path=/path/to/data"
        )
    _check_continual(cfg)
    check_server_methods(cfg)
    check_personal(cfg)
    check_late_joiners(cfg)
    if cfg.train.init_weights:
        weights_file(cfg.train.init_weights)  # shapes: when the model is built (preflight)


def over_selected(cfg: Sections) -> int:
    """Clients a round samples: clients-per-round times over-selection (deadline), rounded up."""
    d, k = cfg.devices, cfg.federation.clients_per_round
    if d.round_policy != "deadline" or d.over_selection <= 1.0:
        return k
    return min(cfg.federation.num_clients, math.ceil(k * d.over_selection - 1e-9))


def _check_devices(cfg: Sections) -> None:
    """The virtual clock's keys: files readable and consistent, settings possible."""
    d, fed, n = cfg.devices, cfg.federation, cfg.federation.num_clients
    if d.device_profile == "file":
        if not d.device_file:
            raise ConfigError('device-profile "file" needs device-file=/path/to/devices.csv')
        read_device_file(d.device_file, n)
    if d.availability == "file":
        if not d.availability_file:
            raise ConfigError('availability "file" needs availability-file=/path/to/online.csv')
        read_availability_file(d.availability_file, n)
    central = cfg.privacy.dp == "central"
    if d.over_selection > 1.0:
        if d.round_policy != "deadline":
            raise ConfigError('over-selection needs round-policy="deadline" (it keeps the first)')
        if central:
            raise ConfigError(
                "over-selection with central DP is refused: the accountant's sampling rate "
                "would not be the real one; set over-selection=1.0"
            )
    if cfg.continual.task_seconds > 0 and cfg.privacy.dp == "central":
        raise ConfigError(
            'task-seconds cannot be combined with dp="central": tasks would change when the '
            "virtual clock says, and the clock follows the slowest drawn client (outside "
            "epsilon); use rounds-per-task"
        )
    if cfg.continual.task_seconds > 0 and cfg.continual.scenario == "none":
        raise ConfigError("task-seconds needs a continual scenario; set scenario or task-seconds=0")
    if cfg.strategy.strategy not in ASYNC_STRATEGIES:
        return
    name = cfg.strategy.strategy
    if central or cfg.privacy.secure_aggregation:
        raise ConfigError(
            f"{name} with central DP or SecAgg+ is not supported yet (FedBuff's buffer can "
            "carry both: the next step); use a synchronous strategy"
        )
    if fed.federation_mode != "simulation":
        raise ConfigError(f"{name} runs on the virtual clock: federation-mode must be simulation")
    if d.round_policy != "sync":
        raise ConfigError(f'{name} has no rounds to cut short; set round-policy="sync"')
    if d.concurrency > n:
        raise ConfigError(f"concurrency ({d.concurrency}) exceeds num-clients ({n})")
    if name == "fedbuff" and cfg.strategy.fedbuff_k > d.concurrency:
        raise ConfigError(
            f"fedbuff-k ({cfg.strategy.fedbuff_k}) exceeds concurrency ({d.concurrency}): "
            "the buffer could never fill; lower fedbuff-k or raise concurrency"
        )


def _check_continual(cfg: Sections) -> None:
    cl = cfg.continual
    if cl.scenario == "none":
        if cl.cl_method != "finetune":
            raise ConfigError(
                f"cl-method {cl.cl_method!r} needs a continual scenario; add --set "
                'scenario="class-incremental" (or "task-incremental", "domain-incremental")'
            )
        return
    rounds = cfg.federation.rounds
    per_task = rounds_per_task(cfg)
    if per_task * cl.num_tasks > rounds:
        raise ConfigError(
            f"rounds ({rounds}) is fewer than num-tasks ({cl.num_tasks}) x rounds-per-task "
            f"({cl.rounds_per_task or 'auto'}); raise rounds or lower rounds-per-task"
        )
    if cl.cl_method == "replay" and cl.buffer_size < 1:
        raise ConfigError("cl-method 'replay' needs buffer-size >= 1; e.g. --set buffer-size=200")
    if cl.scenario in SPLIT_SCENARIOS and cl.num_tasks < 2:
        raise ConfigError(f"{cl.scenario} needs num-tasks >= 2; e.g. --set num-tasks=5")
    if (
        cl.scenario in SPLIT_SCENARIOS
        and cl.num_tasks > 10
        and cfg.data.dataset
        in (
            "fashion-mnist",
            "cifar10",
        )
    ):
        raise ConfigError(
            f"num-tasks ({cl.num_tasks}) exceeds the 10 classes; a task needs a class"
        )
    latest = rounds - (cl.num_tasks - 1) * per_task - 1  # still reaches the last task
    if cl.arrival_spread > latest:
        raise ConfigError(
            f"arrival-spread ({cl.arrival_spread}) must be <= {latest}: a client that late "
            "would never train the last task; raise rounds or lower arrival-spread"
        )


def _check_privacy(cfg: Sections) -> None:
    """Refuse privacy settings that would not mean what they say."""
    p, fed, name = cfg.privacy, cfg.federation, cfg.strategy.strategy
    if p.dp == "central":
        if p.delta >= 1.0 / fed.num_clients:
            raise ConfigError(
                f"delta ({p.delta:g}) must be < 1/num-clients ({1.0 / fed.num_clients:g}): a "
                "larger delta lets the mechanism leak one client outright; lower delta"
            )
        if p.noise_multiplier == 0 and p.target_epsilon == 0 and p.dp_clipping == "adaptive":
            raise ConfigError("adaptive clipping needs noise-multiplier > 0 or target-epsilon")
        if fed.federation_mode == "deployment" and p.privacy_seed >= 0:
            raise ConfigError(
                "privacy-seed cannot be pinned in a deployment: Flower hands the run config "
                "to every SuperNode, so the clients would hold the server's key; leave it "
                "unset (a fresh key is kept in RUN_DIR/server-key)"
            )
    if p.dp != "none" and name not in SUM_ONLY_STRATEGIES:
        raise ConfigError(
            f"dp={p.dp!r} cannot be combined with strategy {name!r}: its privacy bound holds "
            f"only for mean-based strategies {list(SUM_ONLY_STRATEGIES)}"
        )
    if p.secure_aggregation:
        if name not in SUM_ONLY_STRATEGIES:
            raise ConfigError(
                f"secure-aggregation cannot be combined with strategy {name!r}: the server "
                f"sees only the sum; use one of {list(SUM_ONLY_STRATEGIES)}"
            )
        if p.dp == "central" and p.dp_clipping == "adaptive":
            raise ConfigError(
                "secure-aggregation cannot be combined with adaptive clipping (each client's "
                'clipped bit would be visible); use dp-clipping="fixed"'
            )
        biggest = max_round_size(fed.clients_per_round, fed.num_clients, p.dp == "central")
        if biggest * 2**p.secagg_quantization_bits >= 2**32:
            raise ConfigError(
                f"rounds of up to {biggest} clients x 2**{p.secagg_quantization_bits} "
                "quantisation levels overflow SecAgg+'s 2**32 modulus; lower "
                "secagg-quantization-bits or clients-per-round"
            )
        if p.dp == "central" and p.clipping_norm > p.secagg_clipping_range:
            raise ConfigError(
                f"clipping-norm ({p.clipping_norm:g}) exceeds secagg-clipping-range "
                f"({p.secagg_clipping_range:g}): SecAgg+ would clip clipped updates again and "
                "the DP bound would not hold; raise secagg-clipping-range"
            )
        secagg_plan(
            fed.clients_per_round,
            p.num_shares,
            p.reconstruction_threshold,
            p.dropout_tolerance,
            p.secagg_quantization_bits,
        )
        if cfg.attack.attack != "none":
            raise ConfigError(
                "secure-aggregation hides individual updates, so attacks and the defences "
                'against them cannot be simulated with it; set attack="none"'
            )


def rounds_per_task(cfg: Sections) -> int:
    """Rounds each task lasts on the schedule's clock (the `rounds-per-task` key or auto)."""
    cl = cfg.continual
    return cl.rounds_per_task or max(1, cfg.federation.rounds // cl.num_tasks)
