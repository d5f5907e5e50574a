"""Split example indices among simulated clients (IID and the usual non-IID schemes, and
`natural`: the split a dataset brings with it, one client per client folder).

Every scheme assigns a client id to each example and then groups once, so the cost stays
O(N log N) even for 100,000 clients. Results are sorted int64 index arrays into ``labels``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np

from learning.config_keys import check_value
from learning.errors import ConfigError, DataError
from learning.natural_partition import group as _group
from learning.natural_partition import natural
from learning.partition_plugin import plugin_scheme
from learning.plugins import is_plugin
from learning.sampled_partition import SampledShards
from learning.streams import Tag, generator

if TYPE_CHECKING:
    from learning.config_schema import DataConfig

MAX_DIRICHLET_DRAWS = 100

Partitioner = Callable[..., list[np.ndarray]]


# --------------------------------------------------------------------------- helpers


def _even_sizes(total: int, parts: int) -> np.ndarray:
    """Sizes of ``parts`` nearly equal pieces of ``total`` (differ by at most one)."""
    sizes = np.full(parts, total // parts, dtype=np.int64)
    sizes[: total % parts] += 1
    return sizes


def _by_class(labels: np.ndarray) -> list[np.ndarray]:
    """Indices of each present class, in ascending label order."""
    order = np.argsort(labels, kind="stable")
    _, starts = np.unique(labels[order], return_index=True)
    return np.split(order, starts[1:])


def _label_groups(labels: np.ndarray, classes_per_client: int) -> list[np.ndarray]:
    """`_by_class`, refusing more labels per client than are present."""
    groups = _by_class(labels)
    if classes_per_client > len(groups):
        raise ConfigError(
            f"classes-per-client must be <= the {len(groups)} labels present, "
            f"got {classes_per_client}; lower classes-per-client"
        )
    return groups


def _effective_min(min_shard_size: int, n: int, num_clients: int) -> int:
    return min(min_shard_size, n // num_clients)


# --------------------------------------------------------------------------- schemes


def iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator, **_: object) -> list:
    """Uniformly shuffled, nearly equal parts: the baseline every non-IID run is compared to."""
    owner = np.empty(len(labels), dtype=np.int64)
    owner[rng.permutation(len(labels))] = np.repeat(
        np.arange(num_clients), _even_sizes(len(labels), num_clients)
    )
    return _group(owner, num_clients)


def dirichlet(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    *,
    alpha: float,
    min_shard_size: int,
    **_: object,
) -> list:
    """Label skew as in NIID-Bench (Li et al. 2021): each class spread over clients by Dir(alpha).

    The whole draw repeats until every client holds at least
    ``min(min_shard_size, N // num_clients)`` examples. Capping by ``N // num_clients`` keeps
    the rule satisfiable: with 100,000 clients and 60,000 examples the minimum is 0, so some
    clients are simply empty. NIID-Bench's balancing is kept too: a client already holding
    ``N / num_clients`` examples gets no share of later classes.
    """
    n = len(labels)
    need = _effective_min(min_shard_size, n, num_clients)
    classes = _by_class(labels)
    fair_share = n / num_clients
    clients = np.arange(num_clients)
    for _attempt in range(MAX_DIRICHLET_DRAWS):
        owner = np.empty(n, dtype=np.int64)
        held = np.zeros(num_clients, dtype=np.int64)
        for idx in classes:
            p = rng.dirichlet(np.full(num_clients, alpha))
            balanced = np.where(held < fair_share, p, 0.0)
            total = balanced.sum()
            p = balanced / total if total > 0 else p / p.sum()
            cuts = (np.cumsum(p) * len(idx)).astype(np.int64)[:-1]
            counts = np.diff(np.concatenate(([0], np.clip(cuts, 0, len(idx)), [len(idx)])))
            owner[rng.permutation(idx)] = np.repeat(clients, counts)
            held += counts
        if held.min() >= need:
            return _group(owner, num_clients)
    raise DataError(
        f"dirichlet partition could not give all {num_clients} clients >= {need} examples in "
        f"{MAX_DIRICHLET_DRAWS} draws (alpha={alpha}, {n} examples); "
        "lower min-shard-size or raise alpha"
    )


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
    shard_of = np.repeat(np.arange(num_shards), _even_sizes(n, num_shards))
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
            owner[rng.permutation(idx)] = np.repeat(holders, _even_sizes(len(idx), len(holders)))
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
        owner[rng.permutation(idx)] = np.repeat(holders, _even_sizes(len(idx), len(holders)))
        room[holders] -= 1
    return _group(owner, num_clients)


def quantity(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    *,
    quantity_sigma: float,
    min_shard_size: int,
    **_: object,
) -> list:
    """Quantity skew: client sizes follow lognormal(0, sigma) weights, labels stay IID.

    Each client first gets ``min(min_shard_size, N // num_clients)`` examples; the rest is
    shared in proportion to the weights (largest remainders get the leftovers).
    """
    n = len(labels)
    floor = _effective_min(min_shard_size, n, num_clients)
    rest = n - floor * num_clients
    log_w = rng.normal(0.0, quantity_sigma, size=num_clients)  # lognormal, in log space
    weights = np.exp(log_w - log_w.max())  # so a large sigma cannot overflow
    share = weights / weights.sum() * rest
    sizes = np.floor(share).astype(np.int64)
    leftover = rest - int(sizes.sum())
    if leftover:
        sizes[np.argsort(sizes - share, kind="stable")[:leftover]] += 1
    sizes += floor
    owner = np.empty(n, dtype=np.int64)
    owner[rng.permutation(n)] = np.repeat(np.arange(num_clients), sizes)
    return _group(owner, num_clients)


def sampled(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    *,
    seed: int,
    examples_per_client: int,
    **_: object,
) -> list:
    """Every client draws `examples_per_client` examples with replacement (cross-device
    populations larger than the dataset); eager form of `SampledShards`."""
    return list(SampledShards(len(labels), num_clients, seed, examples_per_client))


PARTITIONERS: dict[str, Partitioner] = {
    "classes": classes,
    "dirichlet": dirichlet,
    "iid": iid,
    "natural": natural,
    "pathological": pathological,
    "quantity": quantity,
    "sampled": sampled,
    "shards": shards,
}


# --------------------------------------------------------------------------- entry points


def _check_int(key: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_labels(labels: object) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise DataError(
            f"labels must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}; "
            "pass class indices"
        )
    if y.size and y.min() < 0:
        raise DataError(f"labels must be >= 0, found {int(y.min())}; pass class indices")
    return y.astype(np.int64, copy=False)


def partition(
    name: str,
    labels: np.ndarray,
    num_clients: int,
    seed: int,
    *,
    alpha: float = 0.5,
    min_shard_size: int = 10,
    shards_per_client: int = 2,
    classes_per_client: int = 2,
    quantity_sigma: float = 1.0,
    examples_per_client: int = 20,
    owners: np.ndarray | None = None,
    settings: Mapping[str, Any] | None = None,
) -> list[np.ndarray]:
    """Split ``range(len(labels))`` into ``num_clients`` disjoint, sorted int64 index arrays.

    Deterministic for a given seed. All parameters are validated whatever the scheme, so a
    bad value in a config is reported even when the chosen scheme ignores it. ``owners``
    (each example's client, from a dataset split by client) is what `natural` groups by;
    ``settings`` (the [plugin] table) reach a plug-in partitioner that asks for them.
    """
    scheme = PARTITIONERS.get(name)
    if scheme is None and is_plugin(name):
        scheme = plugin_scheme(name, settings)
    if scheme is None:
        raise ConfigError(f"unknown partition {name!r}; expected one of {sorted(PARTITIONERS)}")
    y = _check_labels(labels)
    # The config's own rules (config_schema.py), so a value is judged the same way here
    # as in a config file.
    options = {
        "alpha": check_value("alpha", alpha),
        "min_shard_size": check_value("min-shard-size", min_shard_size),
        "shards_per_client": check_value("shards-per-client", shards_per_client),
        "classes_per_client": check_value("classes-per-client", classes_per_client),
        "quantity_sigma": check_value("quantity-sigma", quantity_sigma),
        "examples_per_client": check_value("examples-per-client", examples_per_client),
        "seed": check_value("seed", seed),
    }
    k = check_value("num-clients", num_clients)
    rng = generator(options["seed"], Tag.PARTITION)
    who = None if owners is None else _check_labels(owners)
    return scheme(y, k, rng, owners=who, **options)


def label_histograms(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """Per-client label counts, shape (num_clients, num_classes) int64, for skew reports."""
    c = _check_int("num-classes", num_classes, 1)
    y = _check_labels(labels)
    if y.size and y.max() >= c:
        raise DataError(f"label {int(y.max())} is outside [0, {c}); pass the dataset's num_classes")
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    flat = (
        np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
        if parts
        else np.zeros(0, dtype=np.int64)
    )
    client = np.repeat(np.arange(len(parts)), lengths)
    counts = np.bincount(client * c + y[flat], minlength=len(parts) * c)
    return counts.reshape(len(parts), c).astype(np.int64)


def partition_as_configured(
    data: DataConfig,
    labels: np.ndarray,
    num_clients: int,
    seed: int,
    owners: np.ndarray | None = None,
    settings: Mapping[str, Any] | None = None,
) -> list[np.ndarray]:
    """`partition` with the partitioner and its parameters taken from the data config;
    `owners` is the dataset's own split (`Dataset.owners`), if it has one, and `settings`
    a plug-in's [plugin] table."""
    return partition(
        data.partition,
        labels,
        num_clients,
        seed,
        alpha=data.alpha,
        min_shard_size=data.min_shard_size,
        shards_per_client=data.shards_per_client,
        classes_per_client=data.classes_per_client,
        quantity_sigma=data.quantity_sigma,
        examples_per_client=data.examples_per_client,
        owners=owners,
        settings=settings,
    )
