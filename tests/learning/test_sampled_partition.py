"""The `sampled` partition: every client draws its own shard with replacement, on demand."""

from __future__ import annotations

import numpy as np
import pytest

from learning.errors import ConfigError
from learning.partition import partition
from learning.sampled_partition import SampledShards, sampled_shard


def test_shards_are_deterministic_in_range_and_sized():
    a = SampledShards(n=1000, num_clients=1_000_000, seed=3, examples_per_client=20)
    b = SampledShards(n=1000, num_clients=1_000_000, seed=3, examples_per_client=20)
    for client in (0, 1, 999_999, 123_456):
        s = a[client]
        assert s.dtype == np.int64 and s.shape == (20,)
        assert s.min() >= 0 and s.max() < 1000
        assert np.all(np.diff(s) >= 0)
        assert np.array_equal(s, b[client])
    assert len(a) == 1_000_000
    assert not np.array_equal(a[0], a[1])
    other_seed = SampledShards(1000, 1_000_000, 4, 20)
    assert not np.array_equal(a[7], other_seed[7])
    with pytest.raises(IndexError):
        a[1_000_000]


def test_eager_partition_equals_the_lazy_shards():
    labels = np.arange(50) % 5
    parts = partition("sampled", labels, 6, seed=2, examples_per_client=25)
    lazy = SampledShards(50, 6, 2, 25)
    assert all(np.array_equal(p, lazy[i]) for i, p in enumerate(parts))
    assert all(len(p) == 25 for p in parts)  # more than the 50 / 6 a disjoint split gives


def test_a_shard_does_not_depend_on_the_federation_size():
    assert np.array_equal(sampled_shard(100, 0, 5, 20), SampledShards(100, 10, 0, 20)[5])
    assert np.array_equal(sampled_shard(100, 0, 5, 20), SampledShards(100, 10**6, 0, 20)[5])


def test_examples_per_client_is_checked():
    with pytest.raises(ConfigError):
        partition("sampled", np.arange(10), 2, seed=0, examples_per_client=0)


def test_a_million_clients_cost_no_table():
    import sys

    shards = SampledShards(60_000, 1_000_000, 0, 20)
    assert sys.getsizeof(shards.__dict__) < 10_000
