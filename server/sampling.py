"""Which logical clients train in a round: a pure function of (seed, round).

Flower's own sampler draws from random node ids with the global `random` module,
so two runs with the same seed pick different clients. Drawing partition ids from
`default_rng([seed, round])` makes a run reproducible and a resumed run draw the
same clients as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np


def sample_clients(
    seed: int, server_round: int, num_clients: int, k: int, attempt: int = 0
) -> list[int]:
    """`k` distinct partition ids in [0, num_clients), sorted; `attempt` > 0 redraws
    for a retried round (still a pure function of its arguments)."""
    key = [seed, server_round] if attempt == 0 else [seed, server_round, attempt]
    rng = np.random.default_rng(key)
    chosen = rng.choice(num_clients, size=min(k, num_clients), replace=False)
    return sorted(int(c) for c in chosen)
