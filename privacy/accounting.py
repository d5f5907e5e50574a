"""Privacy accounting and the server's half of the privacy wiring.

Epsilon comes from two accountants for the Poisson-subsampled Gaussian mechanism at
user level (each round every client takes part with probability q = clients-per-round /
num-clients, the noisy mean has noise multiplier z): Flower's RDP accountant
(`epsilon`) and dp-accounting's privacy-loss-distribution accountant (`epsilon_pld`),
which is tighter (5.15 where RDP gives 5.89 for z = 1, q = 0.1, 50 rounds). Both are
rebuilt from the release count, so the figure after a resume is the figure of an
uninterrupted run. `target-epsilon` solves for the noise with the tighter of the two.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=256)
def epsilon_pld(
    noise_multiplier: float, releases: int, num_clients: int, expected: float, delta: float
) -> float:
    """Epsilon at `delta` from the PLD accountant (inf without noise, 0 before any).

    The discretisation (1e-3) is dp-accounting's pessimistic one: an upper bound, 0.01%
    above the default 1e-4 grid's figure and ten times faster."""
    if releases == 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant

    q = min(1.0, expected / num_clients)
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise_multiplier))
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, releases))
    return float(accountant.get_epsilon(delta))


def tightest_epsilon(
    noise_multiplier: float, releases: int, num_clients: int, expected: float, delta: float
) -> float:
    """The smaller of the RDP and PLD figures (both are valid upper bounds)."""
    args = (noise_multiplier, releases, num_clients, expected, delta)
    return min(epsilon_spent(*args), epsilon_pld(*args))


@functools.lru_cache(maxsize=64)
def noise_for_epsilon(
    target: float, rounds: int, num_clients: int, expected: float, delta: float
) -> float:
    """Smallest noise multiplier (to 0.1%) whose epsilon after `rounds` is <= target,
    by the tighter accountant."""
    lo, hi = 0.05, 1.0
    while tightest_epsilon(hi, rounds, num_clients, expected, delta) > target:
        hi *= 2
        if hi > 1e4:
            raise ConfigError(f"target-epsilon {target:g} is out of reach; raise it")
    while hi - lo > 1e-3 * hi:
        mid = (lo + hi) / 2
        if tightest_epsilon(mid, rounds, num_clients, expected, delta) > target:
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


def quantisation_step(cfg: ExperimentConfig) -> float:
    """SecAgg+'s rounding grid step 2r / 2**bits (0 without SecAgg+)."""
    p = cfg.privacy
    if not p.secure_aggregation:
        return 0.0
    return 2 * p.secagg_clipping_range / 2**p.secagg_quantization_bits


def check_secagg_clipping(cfg: ExperimentConfig, num_params: int) -> None:
    """Clients clip to C - sqrt(d) * step so that the quantised update still has norm
    <= C, the sensitivity the accountant assumes; refuse a model too large for that."""
    p = cfg.privacy
    if p.dp != "central" or not p.secure_aggregation:
        return
    margin = math.sqrt(num_params) * quantisation_step(cfg)
    if p.clipping_norm - margin <= 0:
        raise ConfigError(
            f"clipping-norm ({p.clipping_norm:g}) must exceed SecAgg+'s quantisation error "
            f"sqrt({num_params}) x 2 x {p.secagg_clipping_range:g} / 2**"
            f"{p.secagg_quantization_bits} = {margin:.3g}; raise clipping-norm or "
            "secagg-quantization-bits"
        )


def wrap_private(cfg: ExperimentConfig, strategy: Strategy, key: int | None = None) -> Strategy:
    """The strategy with central DP around it when `dp = "central"`; `key` is the
    server's secret run key (privacy/server_key.py) that its noise is drawn from."""
    p = cfg.privacy
    if p.dp != "central":
        return strategy
    if key is None:
        raise ValueError("central DP needs the server's secret key")
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
        key=key,
        secure_noise=p.secure_noise,
        quantisation_step=quantisation_step(cfg),
    )


def privacy_row(cfg: ExperimentConfig, strategy: Strategy) -> dict:
    """What a metrics row records about privacy after this round."""
    p, fed = cfg.privacy, cfg.federation
    if not isinstance(strategy, CentralDP):
        return {}
    args = (
        strategy.noise_multiplier,
        strategy.releases,
        fed.num_clients,
        fed.clients_per_round,
        p.delta,
    )
    eps, pld = epsilon_spent(*args), epsilon_pld(*args)
    return {
        "epsilon": eps if math.isfinite(eps) else None,
        "epsilon_pld": pld if math.isfinite(pld) else None,
        "delta": p.delta,
        "noise_multiplier": strategy.noise_multiplier,
        "clipping_norm": strategy.clipping_norm,
        "noise_std": strategy.last_noise_std,
    }
