"""SCAFFOLD: hand-computed server and client steps, properties, drift correction on
quadratics, and the Flower shell (scaffold-c out, scaffold-dc back, state)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.config import ExperimentConfig
from learning.errors import AggregationError
from strategies.registry import build_strategy
from strategies.scaffold import (
    SCAFFOLD_C_KEY,
    SCAFFOLD_DC_KEY,
    Scaffold,
    scaffold_client_control,
    scaffold_server_update,
)


def a(*values):
    return np.array(values, dtype=np.float64)


def test_server_update_by_hand():
    x, c = [a(1, 2)], [a(0.5, 0.5)]
    ys = [[a(3, 2)], [a(1, 6)]]
    dcs = [[a(1, -1)], [a(3, 1)]]
    x_new, c_new = scaffold_server_update(x, ys, dcs, c, server_lr=0.5, num_clients=4)
    # mean(y - x) = ([2, 0] + [0, 4]) / 2 = [1, 2]; x + 0.5 * [1, 2]
    np.testing.assert_allclose(x_new[0], [1.5, 3.0])
    # mean(dc) = [2, 0]; c + (2 / 4) * [2, 0]
    np.testing.assert_allclose(c_new[0], [1.5, 0.5])
    # inputs untouched
    np.testing.assert_array_equal(x[0], [1, 2])
    np.testing.assert_array_equal(c[0], [0.5, 0.5])


def test_client_control_by_hand():
    # c_i - c + (x - y) / (K lr) = [0.1, 0] - [0.5, 0.5] + [1, 1] / (2 * 0.5)
    got = scaffold_client_control([a(0.1, 0)], [a(0.5, 0.5)], [a(1, 2)], [a(0, 1)], 2, 0.5)
    np.testing.assert_allclose(got[0], [0.6, 0.5])


def test_errors_are_one_line_aggregation_errors():
    x = [a(0, 0)]
    cases = [
        lambda: scaffold_server_update(x, [], [], x, 1.0, 4),
        lambda: scaffold_server_update(x, [[a(1, 2, 3)]], [x], x, 1.0, 4),
        lambda: scaffold_server_update(x, [x], [[a(1)]], x, 1.0, 4),
        lambda: scaffold_server_update(x, [x, x], [x], x, 1.0, 4),
        lambda: scaffold_server_update(x, [x, x, x], [x, x, x], x, 1.0, 2),
        lambda: scaffold_client_control(x, x, x, x, 0, 0.1),
    ]
    for case in cases:
        with pytest.raises(AggregationError) as info:
            case()
        assert "\n" not in str(info.value)


vectors = st.lists(st.lists(st.floats(-100, 100), min_size=3, max_size=3), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(ys=vectors, dcs_seed=st.integers(0, 1000), perm_seed=st.integers(0, 1000))
def test_client_order_does_not_matter(ys, dcs_seed, perm_seed):
    rng = np.random.default_rng(dcs_seed)
    x, c = [a(1, 2, 3)], [rng.normal(size=3)]
    y_list = [[np.array(y)] for y in ys]
    dc_list = [[rng.normal(size=3)] for _ in ys]
    order = np.random.default_rng(perm_seed).permutation(len(ys))
    x1, c1 = scaffold_server_update(x, y_list, dc_list, c, 0.7, 10)
    x2, c2 = scaffold_server_update(
        x, [y_list[i] for i in order], [dc_list[i] for i in order], c, 0.7, 10
    )
    np.testing.assert_allclose(x1[0], x2[0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(c1[0], c2[0], rtol=1e-12, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(x=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=4), k=st.integers(1, 5))
def test_clients_that_did_not_move_leave_the_model_and_c_alone(x, k):
    xs = [np.array(x)]
    zeros = [np.zeros(len(x))]
    x_new, c_new = scaffold_server_update(
        xs, [xs] * k, [zeros] * k, [np.full(len(x), 2.0)], 1.0, 10
    )
    np.testing.assert_allclose(x_new[0], x)
    np.testing.assert_allclose(c_new[0], 2.0)


def _run_quadratics(use_control: bool, rounds: int = 300) -> float:
    """Two clients f_i(w) = a_i/2 (w - b_i)^2, K local GD steps, full participation."""
    curv, target = np.array([1.0, 4.0]), np.array([0.0, 1.0])
    lr, steps = 0.05, 10
    x, c = [a(0.0)], [a(0.0)]
    c_i = [[a(0.0)], [a(0.0)]]
    for _ in range(rounds):
        ys, dcs = [], []
        for i in range(2):
            y = x[0].copy()
            corr = (c[0] - c_i[i][0]) if use_control else 0.0
            for _ in range(steps):
                y = y - lr * (curv[i] * (y - target[i]) + corr)
            ys.append([y])
            plus = scaffold_client_control(c_i[i], c, x, [y], steps, lr)
            dcs.append([plus[0] - c_i[i][0]] if use_control else [a(0.0)])
            if use_control:
                c_i[i] = plus
        x, c = scaffold_server_update(x, ys, dcs, c, 1.0, 2)
    return float(x[0][0])


def test_control_variates_remove_client_drift():
    optimum = 4.0 / 5.0  # argmin of the sum: (1 * 0 + 4 * 1) / (1 + 4)
    assert abs(_run_quadratics(use_control=True) - optimum) < 1e-6
    assert abs(_run_quadratics(use_control=False) - optimum) > 0.05  # FedAvg drifts


def _strategy(num_clients: int = 4, server_lr: float = 0.5) -> Scaffold:
    return Scaffold(
        num_clients=num_clients,
        server_lr=server_lr,
        fraction_evaluate=0.0,
        min_train_nodes=2,
        min_available_nodes=2,
    )


def test_shell_sends_c_and_matches_the_pure_function(grid, mock_reply):
    x = [np.array([1.0, 2.0], np.float32), np.array([[0.5]], np.float32)]
    strategy = _strategy()
    messages = list(strategy.configure_train(1, ArrayRecord(x), ConfigRecord({}), grid))
    assert sorted(m.metadata.dst_node_id for m in messages) == [11, 12]
    for msg in messages:
        sent = msg.content[SCAFFOLD_C_KEY]
        assert list(sent.keys()) == ["0", "1"]
        for got, ref in zip(sent.to_numpy_ndarrays(), x, strict=True):
            assert got.shape == ref.shape and got.dtype == np.float32 and not got.any()
        assert "arrays" in msg.content and "config" in msg.content

    ys = [
        [np.array([3.0, 2.0], np.float32), np.array([[1.5]], np.float32)],
        [np.array([1.0, 6.0], np.float32), np.array([[0.0]], np.float32)],
    ]
    dcs = [
        [np.array([1.0, -1.0], np.float32), np.array([[2.0]], np.float32)],
        [np.array([3.0, 1.0], np.float32), np.array([[0.0]], np.float32)],
    ]
    replies = [
        mock_reply(y, 10 * (i + 1), 5, {SCAFFOLD_DC_KEY: dc}, partition_id=i)
        for i, (y, dc) in enumerate(zip(ys, dcs, strict=True))
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    zeros = [np.zeros_like(v) for v in x]
    want_x, want_c = scaffold_server_update(x, ys, dcs, zeros, 0.5, 4)
    got = arrays.to_numpy_ndarrays()
    for g, w in zip(got, want_x, strict=True):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w)
    np.testing.assert_allclose(got[0], [1.5, 3.0])
    assert metrics is not None and "train-loss" in metrics
    state = strategy.state_dict()
    for g, w in zip(state["c"], want_c, strict=True):
        np.testing.assert_allclose(g, w)

    # the next round sends the updated c; a restored strategy sends the same
    messages = list(strategy.configure_train(2, arrays, ConfigRecord({}), grid))
    sent = messages[0].content[SCAFFOLD_C_KEY].to_numpy_ndarrays()
    np.testing.assert_allclose(sent[0], want_c[0])
    other = _strategy()
    other.load_state_dict(state)
    again = list(other.configure_train(2, arrays, ConfigRecord({}), grid))
    np.testing.assert_allclose(again[0].content[SCAFFOLD_C_KEY].to_numpy_ndarrays()[0], sent[0])


def test_shell_rejects_replies_without_dc_and_bad_state(grid, mock_reply):
    strategy = _strategy()
    x = [np.zeros(2, np.float32)]
    strategy.configure_train(1, ArrayRecord(x), ConfigRecord({}), grid)
    with pytest.raises(AggregationError, match="scaffold-dc"):
        strategy.aggregate_train(1, [mock_reply([np.ones(2, np.float32)], 5, 1)])
    assert strategy.aggregate_train(1, []) == (None, None)
    strategy.load_state_dict({"c": [np.zeros(3, np.float32)]})
    with pytest.raises(AggregationError, match="shape"):
        strategy.configure_train(2, ArrayRecord(x), ConfigRecord({}), grid)
    fresh = _strategy()
    assert fresh.state_dict() == {"c": []}
    with pytest.raises(AggregationError, match="before configure_train"):
        fresh.aggregate_train(1, [mock_reply(x, 5, 1, {SCAFFOLD_DC_KEY: x})])


def test_registry_builds_scaffold():
    cfg = ExperimentConfig().replace(strategy="scaffold", server_lr=0.3, num_clients=50)
    strategy = build_strategy(cfg, 4)
    assert isinstance(strategy, Scaffold)
    assert strategy.num_clients == 50 and strategy.server_lr == 0.3
