"""Which logical clients train in a round: a pure function of (seed, round).

Flower's own sampler draws from random node ids with the global `random` module,
so two runs with the same seed pick different clients. Drawing partition ids from
`default_rng([seed, round])` makes a run reproducible and a resumed run draw the
same clients as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np


def sample_clients(seed: int, server_round: int, num_clients: int, k: int) -> list[int]:
    """`k` distinct partition ids in [0, num_clients), sorted."""
    rng = np.random.default_rng([seed, server_round])
    chosen = rng.choice(num_clients, size=min(k, num_clients), replace=False)
    return sorted(int(c) for c in chosen)


def top_up_clients(
    seed: int, server_round: int, attempt: int, num_clients: int, tried: set[int], k: int
) -> list[int]:
    """`k` more partition ids for a round retried after failures: none already tried,
    drawn from `default_rng([seed, round, attempt])` so a rerun tops up identically."""
    if k <= 0:
        return []
    rng = np.random.default_rng([seed, server_round, attempt])
    chosen: list[int] = []
    # Rejection sampling keeps this O(k) at 100,000 clients instead of a full permutation.
    budget = 50 * k + 100
    while len(chosen) < k and budget > 0 and len(tried) + len(chosen) < num_clients:
        c = int(rng.integers(num_clients))
        budget -= 1
        if c not in tried and c not in chosen:
            chosen.append(c)
    return sorted(chosen)
