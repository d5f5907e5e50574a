"""RFA geometric median: a hand-computed Weiszfeld step, convergence, robustness to
an outlier, properties, and the Flower shell."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.config import ExperimentConfig
from learning.errors import AggregationError
from strategies.geometric_median import GeometricMedian, geometric_median
from strategies.registry import build_strategy


def a(*values):
    return np.array(values, dtype=np.float64)


P1 = [a(0, 0), a(0)]
P2 = [a(3, 0), a(4)]  # flattened, 5 away from P1


def test_one_weiszfeld_step_by_hand():
    # weighted mean (weights 1:3) = 0.75 * P2, 3.75 from P1 and 1.25 from P2;
    # beta = (0.25 / 3.75, 0.75 / 1.25) = (1/15, 9/15) -> v = 0.9 * P2
    got = geometric_median([P1, P2], [1, 3], iterations=1)
    np.testing.assert_allclose(got[0], [2.7, 0.0])
    np.testing.assert_allclose(got[1], [3.6])
    assert [g.shape for g in got] == [(2,), (1,)]
    mean = geometric_median([P1, P2], [1, 3], iterations=0)
    np.testing.assert_allclose(mean[0], [2.25, 0.0])
    np.testing.assert_array_equal(P2[0], [3, 0])


def test_two_points_converge_to_the_heavier_one():
    got = geometric_median([P1, P2], [1, 3], iterations=50)
    np.testing.assert_allclose(got[0], P2[0], atol=1e-5)
    np.testing.assert_allclose(got[1], P2[1], atol=1e-5)


def test_outlier_moves_the_mean_but_not_the_median():
    cluster = [[a(0, 0)], [a(1, 0)], [a(0, 1)], [a(1, 1)]]
    points = [*cluster, [a(1000, 1000)]]
    median = geometric_median(points)[0]
    mean = geometric_median(points, iterations=0)[0]
    assert np.linalg.norm(median - 0.5) < 0.75  # inside the unit square (+ a little)
    assert np.linalg.norm(mean - 0.5) > 250


def test_errors():
    for case in (
        lambda: geometric_median([]),
        lambda: geometric_median([P1, [a(1, 2, 3), a(1)]]),
        lambda: geometric_median([P1, [a(1, 2)]]),
        lambda: geometric_median([P1, P2], [1]),
        lambda: geometric_median([P1, P2], [0, 0]),
        lambda: geometric_median([P1, P2], [-1, 2]),
        lambda: geometric_median([P1, P2], eps=0.0),
    ):
        with pytest.raises(AggregationError) as info:
            case()
        assert "\n" not in str(info.value)


coords = st.floats(-1e3, 1e3)


@settings(max_examples=40, deadline=None)
@given(point=st.lists(coords, min_size=1, max_size=4), k=st.integers(1, 6))
def test_identical_points_give_that_point(point, k):
    p = [np.array(point), np.array([point[0]])]
    got = geometric_median([p] * k, list(range(1, k + 1)))
    np.testing.assert_allclose(got[0], point, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got[1], [point[0]], rtol=1e-12, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(st.lists(coords, min_size=2, max_size=2), min_size=1, max_size=6),
    weights_seed=st.integers(0, 1000),
)
def test_client_order_does_not_matter(points, weights_seed):
    rng = np.random.default_rng(weights_seed)
    ps = [[np.array(p)] for p in points]
    w = rng.uniform(0.5, 2.0, size=len(ps))
    order = rng.permutation(len(ps))
    one = geometric_median(ps, w)
    two = geometric_median([ps[i] for i in order], w[order])
    np.testing.assert_allclose(one[0], two[0], rtol=1e-7, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), far=st.floats(1e2, 1e4))
def test_one_outlier_among_five_stays_bounded(seed, far):
    rng = np.random.default_rng(seed)
    cluster = rng.uniform(-1, 1, size=(4, 3))
    direction = rng.normal(size=3)
    outlier = far * direction / np.linalg.norm(direction)
    points = [[c] for c in cluster] + [[outlier]]
    median = geometric_median(points)[0]
    assert np.linalg.norm(median - cluster.mean(axis=0)) < 2.0


def test_shell_weights_by_examples(mock_reply):
    strategy = GeometricMedian(iterations=1, fraction_evaluate=0.0)
    replies = [
        mock_reply([np.zeros(2, np.float32), np.zeros(1, np.float32)], 10, 1, partition_id=0),
        mock_reply(
            [np.array([3, 0], np.float32), np.array([4], np.float32)], 30, 1, partition_id=1
        ),
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    got = arrays.to_numpy_ndarrays()
    assert [g.dtype for g in got] == [np.float32, np.float32]
    np.testing.assert_allclose(got[0], [2.7, 0.0], rtol=1e-6)
    np.testing.assert_allclose(got[1], [3.6], rtol=1e-6)
    assert metrics is not None
    assert strategy.aggregate_train(1, []) == (None, None)


def test_registry_builds_rfa():
    cfg = ExperimentConfig().replace(strategy="rfa", rfa_iterations=5, rfa_eps=1e-4)
    strategy = build_strategy(cfg, 3)
    assert isinstance(strategy, GeometricMedian)
    assert strategy.iterations == 5 and strategy.eps == 1e-4
