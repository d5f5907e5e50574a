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
from learning.label_partition import by_class, classes, even_sizes, pathological, shards
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


def _effective_min(min_shard_size: int, n: int, num_clients: int) -> int:
    return min(min_shard_size, n // num_clients)


# --------------------------------------------------------------------------- schemes


def iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator, **_: object) -> list:
    """Uniformly shuffled, nearly equal parts: the baseline every non-IID run is compared to."""
    owner = np.empty(len(labels), dtype=np.int64)
    owner[rng.permutation(len(labels))] = np.repeat(
        np.arange(num_clients), even_sizes(len(labels), num_clients)
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
    classes = by_class(labels)
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
