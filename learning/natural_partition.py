"""The `natural` partition: the split a dataset brings with it (client-folders: one
client per folder), and the grouping every partitioner ends with."""

from __future__ import annotations

import numpy as np

from learning.errors import ConfigError, DataError


def group(owner: np.ndarray, num_clients: int) -> list[np.ndarray]:
    """Turn a per-example client id (-1 = nobody) into one sorted index array per client."""
    assigned = np.flatnonzero(owner >= 0)
    owners = owner[assigned]
    grouped = assigned[np.argsort(owners, kind="stable")].astype(np.int64, copy=False)
    bounds = np.concatenate(([0], np.cumsum(np.bincount(owners, minlength=num_clients))))
    b = bounds.tolist()
    return [grouped[b[i] : b[i + 1]] for i in range(num_clients)]


def natural(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    *,
    owners: np.ndarray | None,
    **_: object,
) -> list:
    """Example i belongs to client owners[i] (`Dataset.owners`, client-folders).

    Nothing is drawn; the seed plays no part. A client left with no example (after
    train-subset) keeps an empty shard rather than shifting the other clients' ids."""
    if owners is None:
        raise ConfigError(
            'partition "natural" is the split a dataset brings with it; it needs '
            'dataset = "client-folders" (one client per folder)'
        )
    if len(owners) != len(labels):
        raise DataError(f"owners has {len(owners)} entries for {len(labels)} labels")
    if owners.size and owners.max() >= num_clients:
        raise ConfigError(
            f"the data names {int(owners.max()) + 1} clients but num-clients is "
            f"{num_clients}; set num-clients={int(owners.max()) + 1}"
        )
    return group(owners, num_clients)
