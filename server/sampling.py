"""Which logical clients train in a round: a pure function of (key, round).

Flower's own sampler draws from random node ids with the global `random` module,
so two runs with the same seed pick different clients. Drawing partition ids from
a stream of (seed, round) makes a run reproducible and a resumed run draw the same
clients as an uninterrupted one. Central DP's Poisson draw is keyed by the server's
secret instead (privacy/server_key.py): amplification by sampling needs a sample no
client can reproduce from what it receives.
"""

from __future__ import annotations

import numpy as np

from learning.streams import Tag, generator


def sample_clients(seed: int, server_round: int, num_clients: int, k: int) -> list[int]:
    """`k` distinct partition ids in [0, num_clients), sorted."""
    rng = generator(seed, Tag.SAMPLE, server_round)
    chosen = rng.choice(num_clients, size=min(k, num_clients), replace=False)
    return sorted(int(c) for c in chosen)


def top_up_clients(
    seed: int, server_round: int, attempt: int, num_clients: int, tried: set[int], k: int
) -> list[int]:
    """`k` more partition ids for a round retried after failures: none already tried,
    drawn from the (seed, round, attempt) stream so a rerun tops up identically."""
    if k <= 0:
        return []
    rng = generator(seed, Tag.TOP_UP, server_round, attempt)
    chosen: list[int] = []
    # Rejection sampling keeps this O(k) at 100,000 clients instead of a full permutation.
    budget = 50 * k + 100
    while len(chosen) < k and budget > 0 and len(tried) + len(chosen) < num_clients:
        c = int(rng.integers(num_clients))
        budget -= 1
        if c not in tried and c not in chosen:
            chosen.append(c)
    return sorted(chosen)


def poisson_clients(key: int, server_round: int, num_clients: int, rate: float) -> list[int]:
    """Each client independently with probability `rate` (Poisson sampling), sorted.

    Central DP needs it: the accountant's amplification by sampling assumes that
    whether one client takes part says nothing about any other. `key` is the
    server's secret run key, never the public seed.
    """
    rng = generator(key, Tag.POISSON, server_round)
    return [int(c) for c in np.flatnonzero(rng.random(num_clients) < rate)]
