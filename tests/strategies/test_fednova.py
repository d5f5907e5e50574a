"""FedNova: normalisers, a hand-computed aggregate, properties, objective consistency
on quadratics, and the Flower shell."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.config import ExperimentConfig
from learning.errors import AggregationError, ConfigError
from strategies.fednova import FedNova, fednova_aggregate, fednova_normaliser
from strategies.registry import build_strategy


def a(*values):
    return np.array(values, dtype=np.float64)


def test_normaliser_by_hand():
    assert fednova_normaliser(3) == 3.0
    # momentum 0.5: step coefficients 1, 1.5 -> 2.5; and 1, 1.5, 1.75 -> 4.25
    assert fednova_normaliser(2, 0.5) == pytest.approx(2.5)
    assert fednova_normaliser(3, 0.5) == pytest.approx(4.25)


def test_aggregate_by_hand():
    x = [a(0, 0)]
    ys = [[a(-2, -4)], [a(-3, 0)]]
    # p = (1/4, 3/4); a = (2, 3); d1 = [1, 2], d2 = [1, 0]; sum p d = [1, 0.5]
    # tau_eff = 1/4 * 2 + 3/4 * 3 = 2.75; x_new = -2.75 * [1, 0.5]
    got = fednova_aggregate(x, ys, [1, 3], [2, 3])
    np.testing.assert_allclose(got[0], [-2.75, -1.375])
    # server_lr scales the step; momentum 0.5 changes a to (2.5, 4.25)
    np.testing.assert_allclose(
        fednova_aggregate(x, ys, [1, 3], [2, 3], server_lr=2)[0], [-5.5, -2.75]
    )
    tau_eff = 0.25 * 2.5 + 0.75 * 4.25
    want = -tau_eff * (0.25 * a(2, 4) / 2.5 + 0.75 * a(3, 0) / 4.25)
    np.testing.assert_allclose(fednova_aggregate(x, ys, [1, 3], [2, 3], 0.5)[0], want)
    np.testing.assert_array_equal(ys[0][0], [-2, -4])


def test_errors():
    x = [a(0, 0)]
    for case in (
        lambda: fednova_aggregate(x, [], [], []),
        lambda: fednova_aggregate(x, [x], [1], [0]),
        lambda: fednova_aggregate(x, [x], [0], [1]),
        lambda: fednova_aggregate(x, [x, x], [1], [1, 1]),
        lambda: fednova_aggregate(x, [[a(1, 2, 3)]], [1], [1]),
        lambda: fednova_aggregate(x, [x], [1], [1], momentum=1.0),
    ):
        with pytest.raises(AggregationError) as info:
            case()
        assert "\n" not in str(info.value)


clients = st.lists(
    st.tuples(
        st.lists(st.floats(-100, 100), min_size=2, max_size=2),
        st.integers(1, 1000),
        st.integers(1, 50),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=40, deadline=None)
@given(clients=clients, perm_seed=st.integers(0, 1000), momentum=st.sampled_from([0.0, 0.9]))
def test_client_order_does_not_matter(clients, perm_seed, momentum):
    x = [a(1, -1)]
    ys = [[np.array(y)] for y, _, _ in clients]
    n = [c[1] for c in clients]
    tau = [c[2] for c in clients]
    order = np.random.default_rng(perm_seed).permutation(len(clients))
    one = fednova_aggregate(x, ys, n, tau, momentum)
    two = fednova_aggregate(
        x, [ys[i] for i in order], [n[i] for i in order], [tau[i] for i in order], momentum
    )
    np.testing.assert_allclose(one[0], two[0], rtol=1e-10, atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(clients=clients, steps=st.integers(1, 20))
def test_equal_steps_is_fedavg_and_equal_models_come_back(clients, steps):
    x = [a(1, -1)]
    ys = [[np.array(y)] for y, _, _ in clients]
    n = np.array([c[1] for c in clients], dtype=float)
    got = fednova_aggregate(x, ys, n, [steps] * len(ys))
    fedavg = sum(w * y[0] for w, y in zip(n / n.sum(), ys, strict=True))
    np.testing.assert_allclose(got[0], fedavg, rtol=1e-10, atol=1e-8)
    same = fednova_aggregate(ys[0], [ys[0]] * len(ys), n, [c[2] for c in clients], 0.9)
    np.testing.assert_allclose(same[0], ys[0][0])


def test_heterogeneous_steps_do_not_bias_the_solution():
    """f_i(w) = (w - b_i)^2 / 2 with 1 and 10 local steps, equal data: the target is
    the plain mean 0.5; FedAvg drifts towards the client that runs more steps."""
    b, steps, lr = [0.0, 1.0], [1, 10], 0.01

    def local(x: float, i: int) -> float:
        for _ in range(steps[i]):
            x = x - lr * (x - b[i])
        return x

    x_nova = x_avg = 0.0
    for _ in range(2000):
        ys = [[a(local(x_nova, i))] for i in range(2)]
        x_nova = float(fednova_aggregate([a(x_nova)], ys, [1, 1], steps)[0][0])
        x_avg = float(np.mean([local(x_avg, i) for i in range(2)]))
    assert abs(x_nova - 0.5) < 0.02
    assert x_avg > 0.85


def test_shell_matches_the_pure_function(grid, mock_reply):
    x = [np.array([0.0, 0.0], np.float32), np.array([1.0], np.float32)]
    strategy = FedNova(
        momentum=0.5,
        server_lr=0.8,
        fraction_evaluate=0.0,
        min_train_nodes=2,
        min_available_nodes=2,
    )
    messages = list(strategy.configure_train(1, ArrayRecord(x), ConfigRecord({}), grid))
    assert len(messages) == 2
    ys = [
        [np.array([-2.0, -4.0], np.float32), np.array([2.0], np.float32)],
        [np.array([-3.0, 0.0], np.float32), np.array([0.0], np.float32)],
    ]
    replies = [mock_reply(ys[0], 1, 2, partition_id=0), mock_reply(ys[1], 3, 3, partition_id=1)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    want = fednova_aggregate(x, ys, [1, 3], [2, 3], 0.5, 0.8)
    for got, w in zip(arrays.to_numpy_ndarrays(), want, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, w, rtol=1e-6)
    assert metrics is not None and "train-accuracy" in metrics


def test_shell_needs_configure_train_first(mock_reply):
    strategy = FedNova(fraction_evaluate=0.0)
    with pytest.raises(AggregationError, match="before configure_train"):
        strategy.aggregate_train(1, [mock_reply([np.zeros(2)], 1, 1)])


def test_registry_builds_fednova():
    cfg = ExperimentConfig().replace(strategy="fednova", momentum=0.9, server_lr=0.5)
    strategy = build_strategy(cfg, 3)
    assert isinstance(strategy, FedNova)
    assert strategy.momentum == 0.9 and strategy.server_lr == 0.5
    with pytest.raises(ConfigError, match="assumes local SGD steps"):  # its a_i counts SGD steps
        cfg.replace(optimizer="adam")
