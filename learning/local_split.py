"""Client-local evaluation data (local-eval): each shard split into its own train and
test parts, and the clients held out of training, both pure functions of the seed.

PFLlib's protocol: 75/25 of every client's data, so each client is tested on its own
distribution (docs/personalised.md). Seeded per client (`Tag.LOCAL_SPLIT`), the split
is the same in every process, every round and after a resume.
"""

from __future__ import annotations

import numpy as np

from learning.streams import Tag, generator


def local_split(n: int, seed: int, pid: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions within a shard of `n` examples, each sorted.

    The test part is round(n * fraction), at least 1 and at most n - 1 once n >= 2 (a
    client with one example only trains; with none it has neither)."""
    perm = generator(seed, Tag.LOCAL_SPLIT, pid).permutation(n)
    k = int(round(n * test_fraction))
    k = min(max(k, 1), n - 1) if n >= 2 else 0
    return np.sort(perm[k:]), np.sort(perm[:k])


def holdout_set(seed: int, num_clients: int, count: int) -> frozenset[int]:
    """The `count` clients that never train (`Tag.HOLDOUT`); empty when count is 0."""
    if count <= 0:
        return frozenset()
    rng = generator(seed, Tag.HOLDOUT)
    return frozenset(int(c) for c in rng.choice(num_clients, size=count, replace=False))
