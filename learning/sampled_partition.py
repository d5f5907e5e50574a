"""The `sampled` partition, computed per client on demand: cross-device populations far
larger than the dataset (1,000,000 registered clients) cost no table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from learning.errors import DataError
from learning.streams import Tag, generator


def sampled_shard(n: int, seed: int, client: int, examples_per_client: int) -> np.ndarray:
    """Client `client`'s shard of the `sampled` partition: `examples_per_client` indices
    into ``range(n)`` drawn with replacement from the (seed, client) stream, sorted.

    Computed per client on demand, so a federation of any size costs nothing until a
    client trains (O(1) memory per registered client); shards overlap across clients
    and may repeat an example, as independent draws from one population do."""
    if n < 1:
        raise DataError("the sampled partition needs at least one example")
    rng = generator(seed, Tag.SAMPLED_SHARD, client)
    return np.sort(rng.integers(0, n, size=examples_per_client, dtype=np.int64))


class SampledShards(Sequence):
    """The `sampled` partition as a lazy sequence of shards (nothing stored per client)."""

    def __init__(self, n: int, num_clients: int, seed: int, examples_per_client: int) -> None:
        self.n, self.num_clients = n, num_clients
        self.seed, self.examples_per_client = seed, examples_per_client

    def __len__(self) -> int:
        return self.num_clients

    def __getitem__(self, client):  # type: ignore[override]
        if isinstance(client, slice):
            return [self[i] for i in range(*client.indices(self.num_clients))]
        client = int(client)
        if client < 0:
            client += self.num_clients
        if not 0 <= client < self.num_clients:
            raise IndexError(f"client {client} is outside [0, {self.num_clients})")
        return sampled_shard(self.n, self.seed, client, self.examples_per_client)
