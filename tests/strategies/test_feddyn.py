"""FedDyn: hand-computed server and client steps, properties, convergence to the
global optimum on quadratics, and the Flower shell with its state."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.config import ExperimentConfig
from learning.errors import AggregationError
from strategies.feddyn import FedDyn, feddyn_client_state_update, feddyn_server_update
from strategies.registry import build_strategy


def a(*values):
    return np.array(values, dtype=np.float64)


def test_server_update_by_hand():
    x, h = [a(0, 0)], [a(0, 0)]
    thetas = [[a(1, 2)], [a(3, 4)]]
    x_new, h_new = feddyn_server_update(x, thetas, h, alpha=0.1, num_clients=4)
    # h = 0 - 0.1 * (1/4) * ([1, 2] + [3, 4]) = [-0.1, -0.15]
    np.testing.assert_allclose(h_new[0], [-0.1, -0.15])
    # x = mean(theta) - h / alpha = [2, 3] + [1, 1.5]
    np.testing.assert_allclose(x_new[0], [3.0, 4.5])
    np.testing.assert_array_equal(h[0], [0, 0])


def test_server_update_with_state_by_hand():
    x, h = [a(1)], [a(0.2)]
    thetas = [[a(2)], [a(0)], [a(4)]]
    x_new, h_new = feddyn_server_update(x, thetas, h, alpha=0.5, num_clients=10)
    # h = 0.2 - 0.5 / 10 * (1 - 1 + 3) = 0.05; x = 2 - 0.05 / 0.5 = 1.9
    np.testing.assert_allclose(h_new[0], [0.05])
    np.testing.assert_allclose(x_new[0], [1.9])


def test_client_state_update_by_hand():
    got = feddyn_client_state_update([a(0.5, 0)], [a(1, 3)], [a(0, 1)], alpha=0.1)
    np.testing.assert_allclose(got[0], [0.4, -0.2])


def test_errors():
    x = [a(0, 0)]
    for case in (
        lambda: feddyn_server_update(x, [], x, 0.1, 4),
        lambda: feddyn_server_update(x, [[a(1)]], x, 0.1, 4),
        lambda: feddyn_server_update(x, [x], [a(1)], 0.1, 4),
        lambda: feddyn_server_update(x, [x, x, x], x, 0.1, 2),
        lambda: feddyn_server_update(x, [x], x, 0.0, 4),
        lambda: feddyn_client_state_update(x, [a(1, 2, 3)], x, 0.1),
    ):
        with pytest.raises(AggregationError) as info:
            case()
        assert "\n" not in str(info.value)


@settings(max_examples=40, deadline=None)
@given(
    thetas=st.lists(st.lists(st.floats(-100, 100), min_size=2, max_size=2), min_size=1, max_size=5),
    perm_seed=st.integers(0, 1000),
)
def test_client_order_does_not_matter(thetas, perm_seed):
    x, h = [a(1, -1)], [a(0.3, 0.1)]
    ts = [[np.array(t)] for t in thetas]
    order = np.random.default_rng(perm_seed).permutation(len(ts))
    one = feddyn_server_update(x, ts, h, 0.1, 10)
    two = feddyn_server_update(x, [ts[i] for i in order], h, 0.1, 10)
    for u, v in zip(one, two, strict=True):
        np.testing.assert_allclose(u[0], v[0], rtol=1e-10, atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(x=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=4), k=st.integers(1, 5))
def test_clients_that_did_not_move_give_the_model_back(x, k):
    xs = [np.array(x)]
    x_new, h_new = feddyn_server_update(xs, [xs] * k, [np.zeros(len(x))], 0.01, 10)
    np.testing.assert_allclose(x_new[0], x)
    np.testing.assert_array_equal(h_new[0], 0.0)


def test_converges_to_the_global_optimum_on_quadratics():
    """f_i(w) = c_i/2 (w - b_i)^2, exact local solves, full participation."""
    curv, target, alpha = np.array([1.0, 4.0]), np.array([0.0, 1.0]), 0.5
    x, h = [a(0.0)], [a(0.0)]
    g = [[a(0.0)], [a(0.0)]]
    for _ in range(200):
        thetas = []
        for i in range(2):
            # argmin f_i(t) - g_i t + alpha/2 (t - x)^2
            t = (curv[i] * target[i] + g[i][0] + alpha * x[0]) / (curv[i] + alpha)
            thetas.append([t])
            g[i] = feddyn_client_state_update(g[i], [t], x, alpha)
        x, h = feddyn_server_update(x, thetas, h, alpha, 2)
    assert abs(float(x[0][0]) - 0.8) < 1e-6


def _strategy() -> FedDyn:
    return FedDyn(
        alpha=0.1,
        num_clients=4,
        fraction_evaluate=0.0,
        min_train_nodes=2,
        min_available_nodes=2,
    )


def test_shell_matches_the_pure_function_and_keeps_h(grid, mock_reply):
    x = [np.array([0.0, 0.0], np.float32), np.array([[2.0]], np.float32)]
    strategy = _strategy()
    messages = list(strategy.configure_train(1, ArrayRecord(x), ConfigRecord({}), grid))
    assert {k for k in messages[0].content.keys()} == {"arrays", "config"}
    thetas = [
        [np.array([1.0, 2.0], np.float32), np.array([[1.0]], np.float32)],
        [np.array([3.0, 4.0], np.float32), np.array([[3.0]], np.float32)],
    ]
    replies = [mock_reply(t, 5, 3, partition_id=i) for i, t in enumerate(thetas)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    zeros = [np.zeros_like(v) for v in x]
    want_x, want_h = feddyn_server_update(x, thetas, zeros, 0.1, 4)
    for got, w in zip(arrays.to_numpy_ndarrays(), want_x, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, w, rtol=1e-6)
    np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], [3.0, 4.5], rtol=1e-6)
    assert metrics is not None
    state = strategy.state_dict()
    np.testing.assert_allclose(state["h"][0], want_h[0])

    # a restored strategy continues exactly like the original
    other = _strategy()
    other.load_state_dict(state)
    for s in (strategy, other):
        s.configure_train(2, arrays, ConfigRecord({}), grid)
    one, _ = strategy.aggregate_train(2, replies)
    two, _ = other.aggregate_train(2, replies)
    for u, v in zip(one.to_numpy_ndarrays(), two.to_numpy_ndarrays(), strict=True):
        np.testing.assert_array_equal(u, v)


def test_shell_errors(grid, mock_reply):
    fresh = _strategy()
    assert fresh.state_dict() == {"h": []}
    with pytest.raises(AggregationError, match="before configure_train"):
        fresh.aggregate_train(1, [mock_reply([np.zeros(2)], 1, 1)])
    with pytest.raises(AggregationError, match="'h'"):
        fresh.load_state_dict({"c": []})
    fresh.load_state_dict({"h": [np.zeros(3)]})
    with pytest.raises(AggregationError, match="shape"):
        fresh.configure_train(1, ArrayRecord([np.zeros(2)]), ConfigRecord({}), grid)


def test_registry_builds_feddyn():
    cfg = ExperimentConfig().replace(strategy="feddyn", feddyn_alpha=0.05, num_clients=20)
    strategy = build_strategy(cfg, 2)
    assert isinstance(strategy, FedDyn)
    assert strategy.alpha == 0.05 and strategy.num_clients == 20
