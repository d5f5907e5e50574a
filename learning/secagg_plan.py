"""How many key shares SecAgg+ deals and how many rebuild a key, for a round of `n`.

Kept apart from the protocol so the config can refuse an impossible plan before a
run starts, and so the rules can be tested without Flower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from learning.errors import ConfigError

MODULUS_BITS = 32  # Flower's SecAgg+ masks live in [0, 2**32)


@dataclass(frozen=True)
class SecAggPlan:
    clients: int  # sampled this round
    shares: int  # neighbourhood size: a client deals one key share to each neighbour
    threshold: int  # shares that rebuild a client's mask seed or key
    max_dropouts: int  # clients that may drop anywhere in the round


def secagg_plan(
    n: int, num_shares: int, threshold: int, dropout_tolerance: float, quantization_bits: int
) -> SecAggPlan:
    """The plan for `n` sampled clients; a ConfigError says which setting to change.

    Each client's neighbourhood (itself included) holds `shares` clients; its secrets
    can be rebuilt from any `threshold` of them. With up to `max_dropouts` clients gone,
    at least `shares - max_dropouts` neighbours are left, so the threshold must not
    exceed that; it must also exceed `shares / 2`, or a server could collect both the
    mask seed and the key of one client from two disjoint halves.
    """
    if n < 3:
        raise ConfigError(f"secure aggregation needs at least 3 clients in a round, got {n}")
    if n * 2**quantization_bits >= 2**MODULUS_BITS:
        raise ConfigError(
            f"{n} clients x 2**{quantization_bits} quantisation levels overflow the 2**32 "
            "modulus; lower secagg-quantization-bits or clients-per-round"
        )
    shares = n if num_shares == 0 else min(num_shares, n)
    if shares < n and shares % 2 == 0:
        shares += 1  # neighbourhoods are symmetric rings: k on each side plus oneself
    if shares < 3:
        raise ConfigError(f"num-shares must be at least 3, got {num_shares}")
    max_dropouts = math.floor(dropout_tolerance * n)
    most = shares - max_dropouts
    least = shares // 2 + 1
    t = most if threshold == 0 else threshold
    if t > most:
        raise ConfigError(
            f"reconstruction-threshold {t} cannot survive {max_dropouts} dropouts among "
            f"{shares} shares (at most {most}); lower it or dropout-tolerance"
        )
    if t < least:
        raise ConfigError(
            f"reconstruction-threshold {t} must exceed half of the {shares} shares "
            f"(>= {least}) to keep a client's secrets apart; lower dropout-tolerance "
            "or raise num-shares"
        )
    return SecAggPlan(clients=n, shares=shares, threshold=t, max_dropouts=max_dropouts)


def max_round_size(clients_per_round: int, num_clients: int, poisson: bool) -> int:
    """Most clients a round can hold: clients-per-round, or under Poisson sampling
    (central DP) about 4 standard deviations above it."""
    if not poisson:
        return clients_per_round
    extra = 4 * math.ceil(math.sqrt(clients_per_round)) + 2
    return min(num_clients, clients_per_round + extra)
