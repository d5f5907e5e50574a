"""Strategies by name: a plain dict of builders taking the experiment config.

Every builder returns a Flower message-API Strategy that trains all the execution
slots it is given (fraction 1.0): which *logical* clients train is decided by the
server's seeded sampler, not by Flower's node sampling, so runs are reproducible.
Federated (client-side) evaluation is off; the server evaluates centrally.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.serverapp import strategy as fl

from learning.config import PERSONAL_STRATEGIES, ExperimentConfig
from learning.errors import ConfigError
from learning.plugins import call, is_plugin, plugin_error, resolve, settings_kwargs
from strategies.centered_clipping import CenteredClipping
from strategies.feddyn import FedDyn
from strategies.fednova import FedNova
from strategies.geometric_median import GeometricMedian
from strategies.pooling import CENTRAL_DP, MEAN
from strategies.scaffold import Scaffold

Builder = Callable[[ExperimentConfig, int], fl.Strategy]


def _common(num_slots: int) -> dict:
    return {
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": num_slots,
        "min_evaluate_nodes": 0,
        "min_available_nodes": num_slots,
    }


def _byzantine(cfg: ExperimentConfig) -> int:
    return cfg.strategy.num_malicious


STRATEGIES: dict[str, Builder] = {
    "fedavg": lambda c, n: fl.FedAvg(**_common(n)),
    "fedprox": lambda c, n: fl.FedProx(**_common(n), proximal_mu=c.strategy.proximal_mu),
    "fedavgm": lambda c, n: fl.FedAvgM(
        **_common(n),
        server_learning_rate=c.strategy.server_lr,
        server_momentum=c.strategy.server_momentum,
    ),
    "fedadam": lambda c, n: fl.FedAdam(
        **_common(n),
        eta=c.strategy.server_lr,
        eta_l=c.train.lr,
        beta_1=c.strategy.beta1,
        beta_2=c.strategy.beta2,
        tau=c.strategy.tau,
    ),
    "fedyogi": lambda c, n: fl.FedYogi(
        **_common(n),
        eta=c.strategy.server_lr,
        eta_l=c.train.lr,
        beta_1=c.strategy.beta1,
        beta_2=c.strategy.beta2,
        tau=c.strategy.tau,
    ),
    "fedadagrad": lambda c, n: fl.FedAdagrad(
        **_common(n), eta=c.strategy.server_lr, eta_l=c.train.lr, tau=c.strategy.tau
    ),
    # q-FFL weights client k by F_k(w^t), the loss of the model it received (Li et al.
    # 2020), which the client measures before training (clients/app.py).
    "qfedavg": lambda c, n: fl.QFedAvg(
        client_learning_rate=c.train.lr,
        q=c.strategy.q,
        train_loss_key="received-loss",
        **_common(n),
    ),
    "fedmedian": lambda c, n: fl.FedMedian(**_common(n)),
    "fedtrimmedavg": lambda c, n: fl.FedTrimmedAvg(**_common(n), beta=c.strategy.trim_beta),
    "krum": lambda c, n: fl.Krum(**_common(n), num_malicious_nodes=_byzantine(c)),
    "multikrum": lambda c, n: fl.MultiKrum(
        **_common(n),
        num_malicious_nodes=_byzantine(c),
        # m = n - f (El Mhamdi et al. 2018): keep every update Krum does not suspect.
        num_nodes_to_select=c.strategy.num_to_keep
        or max(1, c.federation.clients_per_round - _byzantine(c)),
    ),
    "bulyan": lambda c, n: fl.Bulyan(**_common(n), num_malicious_nodes=_byzantine(c)),
    "scaffold": lambda c, n: Scaffold(
        **_common(n), num_clients=c.federation.num_clients, server_lr=c.strategy.server_lr
    ),
    "fednova": lambda c, n: FedNova(
        **_common(n),
        momentum=c.train.momentum,  # optimizer = "sgd": config refuses adam with FedNova
        server_lr=c.strategy.server_lr,
    ),
    "feddyn": lambda c, n: FedDyn(
        **_common(n), alpha=c.strategy.feddyn_alpha, num_clients=c.federation.num_clients
    ),
    "rfa": lambda c, n: GeometricMedian(
        **_common(n), iterations=c.strategy.rfa_iterations, eps=c.strategy.rfa_eps
    ),
    # Asynchronous: the server step is strategies/fedasync.py / fedbuff.py, applied by
    # server/pipeline/async_scheduler.py; the Flower shell only builds the messages.
    "fedasync": lambda c, n: fl.FedAvg(**_common(n)),
    "fedbuff": lambda c, n: fl.FedAvg(**_common(n)),
    "centeredclip": lambda c, n: CenteredClipping(
        **_common(n), tau=c.strategy.clip_tau, iterations=c.strategy.clip_iterations
    ),
    # Personalised methods (docs/personalised.md): the server averages what clients
    # share; personal layers come back as they were sent (zero change), personal models
    # never leave the client (clients/personal.py).
    **dict.fromkeys(PERSONAL_STRATEGIES, lambda c, n: fl.FedAvg(**_common(n))),
}


# The partial aggregate each strategy's workers may send (strategies/pooling.py): Flower's
# mean-based strategies by name, ours from their class attribute; absent = individual
# updates needed (Krum family, median, trimmed mean, RFA, centred clipping, q-FedAvg).
POOLING: dict[str, str] = {
    **dict.fromkeys(("fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad"), MEAN),
    "scaffold": Scaffold.POOLING,
    "fednova": FedNova.POOLING,
    "feddyn": FedDyn.POOLING,
}


def pooling_kind(strategy: str, dp: str = "none") -> str | None:
    """How workers pool a run's clients (None: one reply per client). Central DP wraps
    a mean-based strategy: workers send the sum of clipped deltas whatever it is."""
    kind = POOLING.get(strategy)
    if kind is not None and dp == "central":
        return CENTRAL_DP
    return kind


def check_strategy_name(name: str) -> None:
    if name not in STRATEGIES and not is_plugin(name):
        raise ConfigError(f"unknown strategy {name!r}; expected one of {sorted(STRATEGIES)}")


def build_strategy(cfg: ExperimentConfig, num_slots: int) -> fl.Strategy:
    """The named strategy (or a user's, by import path) for `num_slots` training messages."""
    check_strategy_name(cfg.strategy.strategy)
    if is_plugin(cfg.strategy.strategy):
        return user_strategy(cfg, num_slots)
    return STRATEGIES[cfg.strategy.strategy](cfg, num_slots)


def user_strategy(cfg: ExperimentConfig, num_slots: int) -> fl.Strategy:
    """A user's strategy: a Strategy subclass built with the arguments ours get (all slots
    train, no federated evaluation), or a factory called with the experiment config;
    either gets `settings=` (the [plugin] table) if it declares that parameter.
    perennial's loop runs it (seeded sampling, metrics, checkpoints of its array state)."""
    value = cfg.strategy.strategy
    obj = resolve("strategy", value)
    if isinstance(obj, type):
        if not issubclass(obj, fl.Strategy):
            raise plugin_error("strategy", value, f"{obj.__name__} is not a Strategy subclass")
        try:
            return obj(**_common(num_slots), **settings_kwargs(obj, cfg.plugin))
        except TypeError as exc:
            why = f"{obj.__name__}(**FedAvg arguments) failed ({str(exc).splitlines()[0]})"
            raise plugin_error("strategy", value, why) from None
        except ConfigError:
            raise
        except Exception as exc:  # the user's __init__ failed (a setting missing, say)
            first = str(exc).splitlines()[0] if str(exc) else ""
            why = f"{obj.__name__}(...) raised {type(exc).__name__}: {first}"
            raise plugin_error("strategy", value, why) from None
    built = call("strategy", value, cfg, settings=cfg.plugin)
    if not isinstance(built, fl.Strategy):
        raise plugin_error("strategy", value, f"returned {type(built).__name__}, not a Strategy")
    return built
