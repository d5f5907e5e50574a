"""Privacy accounting and the server's half of the privacy wiring.

Epsilon comes from Flower's RDP accountant (Google's dp-accounting underneath) for
the Poisson-subsampled Gaussian mechanism at user level: each round every client
takes part with probability q = clients-per-round / num-clients and the noisy mean
has noise multiplier z. The accountant is rebuilt from the release count, so the
figure after a resume is the figure of an uninterrupted run.
"""

from __future__ import annotations

import logging
import math

from flwr.serverapp import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.serverapp.strategy import Strategy

from learning.config import ExperimentConfig
from learning.errors import ConfigError
from privacy.central_dp import CentralDP, update_noise_multiplier

# dp-accounting warns for every low RDP order it cannot evaluate; those orders are
# simply left out of the minimum, so the warnings say nothing a user can act on.
logging.getLogger("absl").setLevel(logging.ERROR)


def epsilon_spent(
    noise_multiplier: float, releases: int, num_clients: int, expected: float, delta: float
) -> float:
    """Epsilon at `delta` after `releases` rounds (inf without noise, 0 before any)."""
    if releases == 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    from flwr.serverapp import RdpAccountant

    accountant = RdpAccountant(
        PrivacyConfig(
            target_delta=delta,
            population_size=num_clients,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.POISSON,
        )
    )
    event = GaussianPrivacyEvent(
        noise_multiplier=noise_multiplier,
        sample_size=max(1, round(expected)),
        population_size=num_clients,
    )
    accountant.compose(event, count=releases)
    return float(accountant.get_epsilon(delta))


def noise_for_epsilon(
    target: float, rounds: int, num_clients: int, expected: float, delta: float
) -> float:
    """Smallest noise multiplier (to 0.1%) whose epsilon after `rounds` is <= target."""
    lo, hi = 0.05, 1.0
    while epsilon_spent(hi, rounds, num_clients, expected, delta) > target:
        hi *= 2
        if hi > 1e4:
            raise ConfigError(f"target-epsilon {target:g} is out of reach; raise it")
    while hi - lo > 1e-3 * hi:
        mid = (lo + hi) / 2
        if epsilon_spent(mid, rounds, num_clients, expected, delta) > target:
            lo = mid
        else:
            hi = mid
    return hi


def resolved_noise_multiplier(cfg: ExperimentConfig) -> float:
    p, fed = cfg.privacy, cfg.federation
    if p.target_epsilon > 0:
        return noise_for_epsilon(
            p.target_epsilon, fed.rounds, fed.num_clients, fed.clients_per_round, p.delta
        )
    return p.noise_multiplier


def check_central_dp(cfg: ExperimentConfig) -> float:
    """The noise multiplier to use; a ConfigError for settings that cannot work."""
    p = cfg.privacy
    z = resolved_noise_multiplier(cfg)
    if p.dp_clipping == "adaptive":
        count_std = p.clipped_count_stddev or cfg.federation.clients_per_round / 20
        try:
            update_noise_multiplier(z, count_std)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return z


def wrap_private(cfg: ExperimentConfig, strategy: Strategy) -> Strategy:
    """The strategy with central DP around it when `dp = "central"`."""
    p = cfg.privacy
    if p.dp != "central":
        return strategy
    z = check_central_dp(cfg)
    return CentralDP(
        strategy,
        noise_multiplier=z,
        clipping_norm=p.clipping_norm,
        expected_clients=float(cfg.federation.clients_per_round),
        adaptive=p.dp_clipping == "adaptive",
        target_quantile=p.target_quantile,
        clip_learning_rate=p.clip_learning_rate,
        count_std=p.clipped_count_stddev,
        seed=cfg.federation.seed,
        secure_noise=p.secure_noise,
    )


def privacy_row(cfg: ExperimentConfig, strategy: Strategy) -> dict:
    """What a metrics row records about privacy after this round."""
    p, fed = cfg.privacy, cfg.federation
    if not isinstance(strategy, CentralDP):
        return {}
    eps = epsilon_spent(
        strategy.noise_multiplier,
        strategy.releases,
        fed.num_clients,
        fed.clients_per_round,
        p.delta,
    )
    return {
        "epsilon": eps if math.isfinite(eps) else None,
        "delta": p.delta,
        "noise_multiplier": strategy.noise_multiplier,
        "clipping_norm": strategy.clipping_norm,
        "noise_std": strategy.last_noise_std,
    }
