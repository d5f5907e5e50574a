"""Centred clipping: hand-computed iterations, the tau bound on any one update,
properties, and the Flower shell with its state."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.config import ExperimentConfig
from learning.errors import AggregationError
from strategies.centered_clipping import CenteredClipping, centered_clip
from strategies.registry import build_strategy


def a(*values):
    return np.array(values, dtype=np.float64)


def test_iterations_by_hand():
    updates = [[a(3, 4)], [a(0, 0)]]
    center = [a(0, 0)]
    # clip([3, 4]) with tau 1 = [0.6, 0.8]; clip(0) = 0; mean = [0.3, 0.4]
    np.testing.assert_allclose(centered_clip(updates, center, 1.0, 1)[0], [0.3, 0.4])
    # second pass: [2.7, 3.6] clips to [0.6, 0.8]; [-0.3, -0.4] is inside -> +[0.15, 0.2]
    np.testing.assert_allclose(centered_clip(updates, center, 1.0, 2)[0], [0.45, 0.6])
    np.testing.assert_array_equal(updates[0][0], [3, 4])


def test_norm_spans_all_arrays_and_big_tau_is_the_mean():
    updates = [[a(3, 0), a(4)], [a(1, 1), a(1)]]
    center = [a(1, 1), a(1)]
    # m1 - v = [2, -1, 3], norm sqrt(14); m2 - v = 0
    got = centered_clip(updates, center, 1.0, 1)
    step = a(2, -1, 3) / np.sqrt(14) / 2
    np.testing.assert_allclose(np.concatenate(got), a(1, 1, 1) + step)
    mean = centered_clip(updates, center, 1e6, 1)
    np.testing.assert_allclose(mean[0], [2.0, 0.5])
    np.testing.assert_allclose(mean[1], [2.5])


def test_errors():
    c = [a(0, 0)]
    for case in (
        lambda: centered_clip([], c, 1.0),
        lambda: centered_clip([[a(1)]], c, 1.0),
        lambda: centered_clip([c], c, 0.0),
        lambda: centered_clip([c], c, 1.0, 0),
    ):
        with pytest.raises(AggregationError) as info:
            case()
        assert "\n" not in str(info.value)


vecs = st.lists(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(
    updates=vecs,
    tau=st.floats(0.01, 100),
    iterations=st.integers(1, 4),
    perm_seed=st.integers(0, 1000),
)
def test_order_does_not_matter_and_each_iteration_moves_at_most_tau(
    updates, tau, iterations, perm_seed
):
    center = [a(0.5, -0.5, 0)]
    ms = [[np.array(m)] for m in updates]
    order = np.random.default_rng(perm_seed).permutation(len(ms))
    one = centered_clip(ms, center, tau, iterations)
    two = centered_clip([ms[i] for i in order], center, tau, iterations)
    np.testing.assert_allclose(one[0], two[0], rtol=1e-9, atol=1e-9)
    assert np.linalg.norm(one[0] - center[0]) <= iterations * tau * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(updates=vecs, tau=st.floats(0.01, 10), huge=st.floats(1e3, 1e12))
def test_one_huge_update_moves_the_result_by_at_most_two_tau_over_k(updates, tau, huge):
    center = [a(0, 0, 0)]
    ms = [[np.array(m)] for m in updates] + [[a(0, 0, 0)]]
    bad = ms[:-1] + [[a(huge, -huge, huge)]]
    k = len(ms)
    honest = centered_clip(ms, center, tau, 1)[0]
    attacked = centered_clip(bad, center, tau, 1)[0]
    assert np.linalg.norm(attacked - honest) <= 2 * tau / k * (1 + 1e-9)


@settings(max_examples=30, deadline=None)
@given(point=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=4), k=st.integers(1, 5))
def test_equal_updates_at_the_centre_come_back(point, k):
    p = [np.array(point)]
    np.testing.assert_array_equal(centered_clip([p] * k, p, 1.0, 3)[0], point)


def _strategy() -> CenteredClipping:
    return CenteredClipping(
        tau=1.0, iterations=1, fraction_evaluate=0.0, min_train_nodes=2, min_available_nodes=2
    )


def test_shell_applies_clipped_update_and_keeps_the_centre(grid, mock_reply):
    x = [np.array([1.0, 1.0], np.float32)]
    strategy = _strategy()
    strategy.configure_train(1, ArrayRecord(x), ConfigRecord({}), grid)
    replies = [
        mock_reply([np.array([4.0, 5.0], np.float32)], 5, 1, partition_id=0),  # update [3, 4]
        mock_reply([np.array([1.0, 1.0], np.float32)], 5, 1, partition_id=1),  # update 0
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    got = arrays.to_numpy_ndarrays()[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [1.3, 1.4], rtol=1e-6)
    assert metrics is not None
    np.testing.assert_allclose(strategy.state_dict()["v"][0], [0.3, 0.4], rtol=1e-6)

    # round 2 starts from v = [0.3, 0.4]: same replies relative to the new x
    new_x = arrays.to_numpy_ndarrays()
    strategy.configure_train(2, arrays, ConfigRecord({}), grid)
    replies = [mock_reply([new_x[0] + a(3, 4)], 5, 1), mock_reply([new_x[0]], 5, 1)]
    arrays, _ = strategy.aggregate_train(2, replies)
    v = centered_clip([[a(3, 4)], [a(0, 0)]], [a(0.3, 0.4)], 1.0, 1)[0]
    np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], new_x[0] + v, rtol=1e-6)


def test_shell_state_round_trip_and_errors(grid, mock_reply):
    fresh = _strategy()
    assert fresh.state_dict() == {"v": []}
    with pytest.raises(AggregationError, match="before configure_train"):
        fresh.aggregate_train(1, [mock_reply([np.zeros(2)], 1, 1)])
    fresh.load_state_dict({"v": [np.array([0.5, 0.5], np.float32)]})
    fresh.configure_train(1, ArrayRecord([np.zeros(2, np.float32)]), ConfigRecord({}), grid)
    arrays, _ = fresh.aggregate_train(1, [mock_reply([np.zeros(2, np.float32)], 1, 1)])
    # one update 0 at distance 0.707 from v: clipped to 1.0 is the full step back to 0
    np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], [0.0, 0.0], atol=1e-7)
    with pytest.raises(AggregationError, match="'v'"):
        fresh.load_state_dict({})


def test_registry_builds_centeredclip():
    cfg = ExperimentConfig().replace(strategy="centeredclip", clip_tau=2.5, clip_iterations=3)
    strategy = build_strategy(cfg, 3)
    assert isinstance(strategy, CenteredClipping)
    assert strategy.tau == 2.5 and strategy.iterations == 3
