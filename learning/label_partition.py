"""Label-skew partitions: each client holds a few labels (McMahan et al.'s shards,
NIID-Bench's random label sets, PFLlib's labels dealt in order), and the helpers the
other schemes share. Each returns sorted int64 index arrays, one per client."""

from __future__ import annotations

import numpy as np

from learning.errors import ConfigError, DataError
from learning.natural_partition import group as _group


def even_sizes(total: int, parts: int) -> np.ndarray:
    """Sizes of ``parts`` nearly equal pieces of ``total`` (differ by at most one)."""
    sizes = np.full(parts, total // parts, dtype=np.int64)
    sizes[: total % parts] += 1
    return sizes


def by_class(labels: np.ndarray) -> list[np.ndarray]:
    """Indices of each present class, in ascending label order."""
    order = np.argsort(labels, kind="stable")
    _, starts = np.unique(labels[order], return_index=True)
    return np.split(order, starts[1:])


def _label_groups(labels: np.ndarray, classes_per_client: int) -> list[np.ndarray]:
    """`by_class`, refusing more labels per client than are present."""
    groups = by_class(labels)
    if classes_per_client > len(groups):
        raise ConfigError(
            f"classes-per-client must be <= the {len(groups)} labels present, "
            f"got {classes_per_client}; lower classes-per-client"
        )
    return groups


def shards(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    *,
    shards_per_client: int,
    **_: object,
) -> list:
    """McMahan et al. (2017) pathological non-IID: label-sorted shards, a few per client.

    Shard sizes differ by at most one, so every example is used even when the count does
    not divide evenly.
    """
    n = len(labels)
    num_shards = num_clients * shards_per_client
    if n < num_shards:
        raise DataError(
            f"shards partition needs at least num-clients * shards-per-client = {num_shards} "
            f"examples, got {n}; lower num-clients or shards-per-client"
        )
    shuffled = rng.permutation(n)
    by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
    shard_of = np.repeat(np.arange(num_shards), even_sizes(n, num_shards))
    client_of_shard = np.empty(num_shards, dtype=np.int64)
    client_of_shard[rng.permutation(num_shards)] = np.repeat(
        np.arange(num_clients), shards_per_client
    )
    owner = np.empty(n, dtype=np.int64)
    owner[by_label] = client_of_shard[shard_of]
    return _group(owner, num_clients)


def classes(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    *,
    classes_per_client: int,
    **_: object,
) -> list:
    """NIID-Bench "#C=k": each client holds k distinct labels, shared evenly among holders.

    Client i always holds the (i mod C)-th present label, so every label has an owner once
    there are at least C clients; the other k-1 labels are random. Labels with no owner
    (fewer clients than labels) are left out, and a client can end up without examples of a
    label that has fewer examples than holders.
    """
    groups = _label_groups(labels, classes_per_client)
    num_labels = len(groups)
    own = np.arange(num_clients) % num_labels
    scores = rng.random((num_clients, num_labels))
    scores[np.arange(num_clients), own] = -1.0  # the round-robin label always comes first
    if classes_per_client < num_labels:
        chosen = np.argpartition(scores, classes_per_client - 1, axis=1)[:, :classes_per_client]
    else:
        chosen = np.broadcast_to(np.arange(num_labels), (num_clients, num_labels))
    holds = np.zeros((num_clients, num_labels), dtype=bool)
    holds[np.arange(num_clients)[:, None], chosen] = True
    owner = np.full(len(labels), -1, dtype=np.int64)
    for c, idx in enumerate(groups):
        holders = np.flatnonzero(holds[:, c])
        if len(holders):
            owner[rng.permutation(idx)] = np.repeat(holders, even_sizes(len(idx), len(holders)))
    return _group(owner, num_clients)


def pathological(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    *,
    classes_per_client: int,
    **_: object,
) -> list:
    """PFLlib's "pat" split, the one its personalisation leaderboard uses: labels dealt in
    order, each to the next ceil(clients / labels * k) clients with room left, so with 20
    clients, 10 labels and k=2, clients 0-3 hold labels {0, 1}, clients 4-7 {2, 3}, and so on.

    Unlike `classes` (random label sets), neighbouring labels share clients, which on
    Fashion-MNIST pairs easy-to-tell classes. A label's examples are shared evenly among its
    holders (PFLlib's `balance` form, sizes differing by at most one; PFLlib gives the
    remainder to the last holder); labels left when no client has room are unowned. The
    holder count is computed in integers (PFLlib's float ceiling can give one more for
    uneven counts such as 28 clients, 100 labels, k=25), and a label absent from the data
    takes no client's room (PFLlib deals it anyway). With 10 labels who holds what agrees.
    """
    groups = _label_groups(labels, classes_per_client)
    num_labels = len(groups)
    per_label = -(-num_clients * classes_per_client // num_labels)
    room = np.full(num_clients, classes_per_client, dtype=np.int64)
    owner = np.full(len(labels), -1, dtype=np.int64)
    for idx in groups:
        holders = np.flatnonzero(room > 0)[:per_label]
        if not len(holders):
            break
        owner[rng.permutation(idx)] = np.repeat(holders, even_sizes(len(idx), len(holders)))
        room[holders] -= 1
    return _group(owner, num_clients)
