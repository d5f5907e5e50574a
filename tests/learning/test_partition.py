import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from learning.errors import ConfigError, DataError
from learning.partition import PARTITIONERS, label_histograms, partition

FAST = settings(max_examples=25, deadline=None)
COVERING = ["iid", "dirichlet", "quantity", "shards"]
# `natural` draws nothing: it groups by the dataset's own owners (test_client_folders.py).
DRAWN = sorted(set(PARTITIONERS) - {"natural"})

seeds = st.integers(0, 2**32 - 1)


@st.composite
def label_arrays(draw, min_size=1, max_size=300, max_classes=10):
    num_classes = draw(st.integers(1, max_classes))
    n = draw(st.integers(min_size, max_size))
    seed = draw(seeds)
    return np.random.default_rng(seed).integers(0, num_classes, n)


def balanced_labels(num_classes: int, per_class: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(num_classes), per_class))


def check_disjoint_sorted(parts: list[np.ndarray], n: int, num_clients: int) -> np.ndarray:
    assert len(parts) == num_clients
    for p in parts:
        assert p.dtype == np.int64 and p.ndim == 1
        assert np.all(np.diff(p) > 0)  # sorted, no duplicates
    flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    assert len(np.unique(flat)) == len(flat)  # disjoint
    assert flat.size == 0 or (flat.min() >= 0 and flat.max() < n)
    return flat


def mean_label_entropy(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> float:
    h = label_histograms(labels, parts, num_classes).astype(float)
    h = h[h.sum(1) > 0]
    p = h / h.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return float(ent.mean())


# --------------------------------------------------------------------------- common properties


@FAST
@given(
    name=st.sampled_from(COVERING),
    labels=label_arrays(min_size=40),
    num_clients=st.integers(1, 20),
    seed=seeds,
)
def test_disjoint_cover_deterministic(name, labels, num_clients, seed):
    opts = {"alpha": 1.0, "min_shard_size": 0}
    parts = partition(name, labels, num_clients, seed, **opts)
    flat = check_disjoint_sorted(parts, len(labels), num_clients)
    assert len(flat) == len(labels)  # cover
    again = partition(name, labels, num_clients, seed, **opts)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


@pytest.mark.parametrize("name", DRAWN)
def test_different_seeds_differ(name):
    labels = balanced_labels(5, 40)
    a = partition(name, labels, 8, seed=1)
    b = partition(name, labels, 8, seed=2)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", DRAWN)
def test_labels_can_be_a_list(name):
    parts = partition(
        name,
        [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2],
        3,
        seed=0,
        min_shard_size=1,
        examples_per_client=4,
    )
    assert sum(len(p) for p in parts) == 12


# --------------------------------------------------------------------------- iid


@FAST
@given(labels=label_arrays(), num_clients=st.integers(1, 400), seed=seeds)
def test_iid_sizes_within_one(labels, num_clients, seed):
    parts = partition("iid", labels, num_clients, seed)
    flat = check_disjoint_sorted(parts, len(labels), num_clients)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert len(flat) == len(labels)


# --------------------------------------------------------------------------- dirichlet


@FAST
@given(
    labels=label_arrays(min_size=50),
    num_clients=st.integers(1, 15),
    alpha=st.floats(0.3, 20),
    min_shard_size=st.integers(0, 10),
    seed=seeds,
)
def test_dirichlet_minimum_respected(labels, num_clients, alpha, min_shard_size, seed):
    try:
        parts = partition(
            "dirichlet",
            labels,
            num_clients,
            seed,
            alpha=alpha,
            min_shard_size=min_shard_size,
        )
    except DataError:
        assume(False)  # an unlucky parameter mix is allowed to give up after 100 draws
    flat = check_disjoint_sorted(parts, len(labels), num_clients)
    assert len(flat) == len(labels)
    need = min(min_shard_size, len(labels) // num_clients)
    assert min(len(p) for p in parts) >= need


def test_dirichlet_small_alpha_more_skewed():
    labels = balanced_labels(10, 200)
    skewed = partition("dirichlet", labels, 20, seed=5, alpha=0.1, min_shard_size=1)
    mild = partition("dirichlet", labels, 20, seed=5, alpha=100.0, min_shard_size=1)
    low = mean_label_entropy(labels, skewed, 10)
    high = mean_label_entropy(labels, mild, 10)
    assert low < 0.7 * high
    assert high > 0.9 * np.log(10)  # large alpha is close to uniform


def test_dirichlet_gives_up_with_clear_message():
    labels = balanced_labels(2, 50)
    with pytest.raises(DataError) as excinfo:
        partition("dirichlet", labels, 10, seed=0, alpha=0.001, min_shard_size=10)
    msg = str(excinfo.value)
    assert "\n" not in msg and "min-shard-size" in msg and "alpha" in msg


def test_dirichlet_100k_clients_in_one_vectorised_draw_and_covering(monkeypatch):
    """More clients than examples: one vectorised draw (no retry loop) must do, every
    example is owned exactly once, and the split is a function of the seed."""
    import learning.partition as part

    monkeypatch.setattr(part, "MAX_DIRICHLET_DRAWS", 1)
    labels = balanced_labels(10, 6000)
    parts = partition("dirichlet", labels, 100_000, seed=0)
    assert len(parts) == 100_000
    flat = np.concatenate(parts)
    assert len(flat) == 60_000 and len(np.unique(flat)) == 60_000
    again = partition("dirichlet", labels, 100_000, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


# --------------------------------------------------------------------------- shards


@FAST
@given(
    data=st.data(),
    num_classes=st.integers(2, 6),
    shards_per_client=st.integers(1, 3),
    seed=seeds,
)
def test_shards_labels_per_client(data, num_classes, shards_per_client, seed):
    shards_per_class = data.draw(st.integers(1, 6))
    num_shards = num_classes * shards_per_class
    assume(num_shards % shards_per_client == 0)
    shard_size = data.draw(st.integers(1, 5))
    labels = balanced_labels(num_classes, shards_per_class * shard_size, seed % 1000)
    num_clients = num_shards // shards_per_client
    parts = partition("shards", labels, num_clients, seed, shards_per_client=shards_per_client)
    flat = check_disjoint_sorted(parts, len(labels), num_clients)
    assert len(flat) == len(labels)
    assert all(len(p) == shards_per_client * shard_size for p in parts)
    held = (label_histograms(labels, parts, num_classes) > 0).sum(1)
    assert held.max() <= shards_per_client


def test_shards_too_few_examples():
    with pytest.raises(DataError) as excinfo:
        partition("shards", np.zeros(9, np.int64), 5, seed=0, shards_per_client=2)
    msg = str(excinfo.value)
    assert "\n" not in msg and "num-clients" in msg and "shards-per-client" in msg


# --------------------------------------------------------------------------- classes


@FAST
@given(
    data=st.data(),
    num_classes=st.integers(2, 6),
    seed=seeds,
)
def test_classes_exactly_k_labels(data, num_classes, seed):
    k = data.draw(st.integers(1, num_classes))
    num_clients = data.draw(st.integers(num_classes, 20))
    labels = balanced_labels(num_classes, 25, seed % 1000)
    parts = partition("classes", labels, num_clients, seed, classes_per_client=k)
    flat = check_disjoint_sorted(parts, len(labels), num_clients)
    assert len(flat) == len(labels)  # every label has an owner with >= num_classes clients
    held = (label_histograms(labels, parts, num_classes) > 0).sum(1)
    assert held.tolist() == [k] * num_clients


def test_classes_more_than_present():
    with pytest.raises(ConfigError) as excinfo:
        partition("classes", balanced_labels(3, 5), 4, seed=0, classes_per_client=4)
    assert "classes-per-client" in str(excinfo.value) and "4" in str(excinfo.value)


def test_pathological_deals_labels_in_order_like_pflib():
    # PFLlib's "pat" split with 20 clients, 10 labels, 2 per client: clients 0-3 hold
    # {0, 1}, 4-7 {2, 3}, ..., 16-19 {8, 9}; each label shared evenly by its 4 holders.
    labels = balanced_labels(10, 40, 0)
    parts = partition("pathological", labels, 20, seed=3, classes_per_client=2)
    flat = check_disjoint_sorted(parts, len(labels), 20)
    assert len(flat) == len(labels)
    hist = label_histograms(labels, parts, 10)
    for client in range(20):
        pair = 2 * (client // 4)
        assert np.flatnonzero(hist[client]).tolist() == [pair, pair + 1]
        assert hist[client, pair] == hist[client, pair + 1] == 10


def test_pathological_is_seeded_and_leaves_unowned_labels_out():
    shared = balanced_labels(10, 40, 1)
    a = partition("pathological", shared, 20, seed=5, classes_per_client=2)
    b = partition("pathological", shared, 20, seed=5, classes_per_client=2)
    c = partition("pathological", shared, 20, seed=6, classes_per_client=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    # 2 clients, 6 labels, 2 each: one holder per label (ceil(2 * 2 / 6) = 1), in order,
    # so client 0 holds {0, 1}, client 1 {2, 3}, and labels 4-5 have no owner.
    labels = balanced_labels(6, 10, 1)
    hist = label_histograms(labels, partition("pathological", labels, 2, 0), 6)
    assert np.flatnonzero(hist[0]).tolist() == [0, 1]
    assert np.flatnonzero(hist[1]).tolist() == [2, 3]
    with pytest.raises(ConfigError, match="classes-per-client"):
        partition("pathological", labels, 2, seed=0, classes_per_client=7)


# --------------------------------------------------------------------------- quantity


@FAST
@given(
    labels=label_arrays(min_size=20),
    num_clients=st.integers(1, 30),
    sigma=st.floats(0, 3),
    min_shard_size=st.integers(0, 15),
    seed=seeds,
)
def test_quantity_minimum_and_cover(labels, num_clients, sigma, min_shard_size, seed):
    parts = partition(
        "quantity",
        labels,
        num_clients,
        seed,
        quantity_sigma=sigma,
        min_shard_size=min_shard_size,
    )
    flat = check_disjoint_sorted(parts, len(labels), num_clients)
    assert len(flat) == len(labels)
    assert min(len(p) for p in parts) >= min(min_shard_size, len(labels) // num_clients)


def test_quantity_sizes_vary():
    labels = balanced_labels(10, 100)
    sizes = np.array([len(p) for p in partition("quantity", labels, 20, seed=0)])
    assert sizes.max() > 2 * sizes.min()
    assert sizes.min() >= 10
    flat_sizes = [len(p) for p in partition("quantity", labels, 20, seed=0, quantity_sigma=0)]
    assert max(flat_sizes) - min(flat_sizes) <= 1  # sigma 0 means equal weights


# --------------------------------------------------------------------------- validation


def test_unknown_partition_message():
    with pytest.raises(ConfigError) as excinfo:
        partition("iidd", np.zeros(4, np.int64), 2, seed=0)
    assert str(excinfo.value) == (
        "unknown partition 'iidd'; expected one of "
        "['classes', 'dirichlet', 'iid', 'natural', 'pathological', 'quantity', 'sampled', "
        "'shards']"
    )


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"num_clients": 0}, "num-clients"),
        ({"num_clients": 2.5}, "num-clients"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"min_shard_size": -1}, "min-shard-size"),
        ({"shards_per_client": 0}, "shards-per-client"),
        ({"classes_per_client": 0}, "classes-per-client"),
        ({"quantity_sigma": -0.5}, "quantity-sigma"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_parameters(kwargs, key):
    args = {"num_clients": 2, "seed": 0, **kwargs}
    with pytest.raises(ConfigError) as excinfo:
        partition("iid", np.zeros(10, np.int64), **args)
    msg = str(excinfo.value)
    assert "\n" not in msg and repr(key) in msg and repr(next(iter(kwargs.values()))) in msg


@pytest.mark.parametrize("labels", [np.zeros((2, 2), np.int64), np.array([0.5, 1.0]), [-1, 0]])
def test_invalid_labels(labels):
    with pytest.raises(DataError):
        partition("iid", labels, 2, seed=0)


# --------------------------------------------------------------------------- histograms


def test_label_histograms():
    labels = np.array([0, 1, 1, 2, 2, 2])
    parts = [np.array([0, 3]), np.array([], dtype=np.int64), np.array([1, 2, 4, 5])]
    h = label_histograms(labels, parts, 4)
    assert h.dtype == np.int64
    assert h.tolist() == [[1, 0, 1, 0], [0, 0, 0, 0], [0, 2, 2, 0]]
    with pytest.raises(DataError):
        label_histograms(labels, parts, 2)
    assert label_histograms(labels, [], 3).shape == (0, 3)
