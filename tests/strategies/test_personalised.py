"""The personalised methods' split and update rules on hand-made arrays, no TensorFlow:
each against the paper's formula (docs/personalised.md)."""

from __future__ import annotations

import numpy as np
import pytest

from learning.local_split import holdout_set, local_split
from server.pipeline.local_eval import local_metrics
from strategies.personalised import (
    PERSONAL,
    Phase,
    apfl_lr,
    apfl_mix,
    apfl_unmix,
    ditto_step,
    fedrep_phases,
    frozen_for,
    merge,
    personal_part,
    shared_reply,
    state_bytes,
)

# A "model" of four arrays: body kernel, body bias, head kernel, head bias.
W = [np.full((2, 3), 1.0), np.full(3, 2.0), np.full((3, 2), 3.0), np.full(2, 4.0)]
HEAD = (False, False, True, True)


def test_fedper_split_keeps_the_head_and_shares_the_body():
    mine = [np.full((3, 2), -1.0), np.full(2, -2.0)]
    model = merge(W, mine, HEAD)  # the client's model: global body, its own head
    assert [float(a.flat[0]) for a in model] == [1.0, 2.0, -1.0, -2.0]
    assert merge(W, None, HEAD)[2] is not W[2]  # a copy, never the received array
    trained = [a + 0.5 for a in model]
    kept = personal_part(trained, HEAD)
    assert [float(a.flat[0]) for a in kept] == [-0.5, -1.5]
    sent = shared_reply(trained, W, HEAD)
    # the body's update leaves; the head goes back exactly as received (zero change)
    assert [float(a.flat[0]) for a in sent] == [1.5, 2.5, 3.0, 4.0]
    np.testing.assert_array_equal(sent[2], W[2])
    with pytest.raises(ValueError):
        merge(W, [*mine, mine[0]], HEAD)


def test_fedavg_of_fedper_replies_leaves_the_head_where_it_was():
    """FedAvg over clients whose heads came back unchanged: the mean head is the sent one."""
    replies = [shared_reply([a + k for a in W], W, HEAD) for k in (1.0, 2.0, 6.0)]
    n = np.array([10.0, 20.0, 30.0])
    mean = [sum(r[i] * w for r, w in zip(replies, n, strict=True)) / n.sum() for i in range(4)]
    np.testing.assert_allclose(mean[0], W[0] + (10 * 1 + 20 * 2 + 30 * 6) / 60)
    np.testing.assert_allclose(mean[2], W[2])
    np.testing.assert_allclose(mean[3], W[3])


def test_fedbn_keeps_the_batch_norm_arrays():
    bn = (False, True, True, False)
    mine = [np.full(3, 7.0), np.full((3, 2), 8.0)]
    model = merge(W, mine, bn)
    assert [float(a.flat[0]) for a in model] == [1.0, 7.0, 8.0, 4.0]
    assert [float(a.flat[0]) for a in shared_reply(model, W, bn)] == [1.0, 2.0, 3.0, 4.0]


def test_fedrep_trains_the_head_first_then_the_body():
    phases = fedrep_phases(head_epochs=5, body_epochs=1)
    assert phases == (Phase("head", 5), Phase("body", 1))
    # frozen per array: the head phase freezes the body, the body phase the head
    assert frozen_for(phases[0], HEAD) == [True, True, False, False]
    assert frozen_for(phases[1], HEAD) == [False, False, True, True]
    assert frozen_for(Phase("all", 1), HEAD) == [False] * 4


def test_ditto_step_is_the_papers_proximal_step():
    v = [np.array([1.0, -2.0]), np.array([[0.5]])]
    w = [np.array([0.0, 0.0]), np.array([[1.5]])]
    g = [np.array([0.2, 0.4]), np.array([[-1.0]])]
    lr, lam = 0.1, 0.5
    got = ditto_step(v, g, w, lr, lam)
    # v - eta (grad F_k(v) + lambda (v - w))  (Li et al. 2021, Algorithm 1)
    np.testing.assert_allclose(got[0], [1.0 - 0.1 * (0.2 + 0.5), -2.0 - 0.1 * (0.4 - 1.0)])
    np.testing.assert_allclose(got[1], [[0.5 - 0.1 * (-1.0 + 0.5 * -1.0)]])
    # lambda = 0 is plain local training; a huge lambda is capped at 1/lr: lands on w - lr g
    np.testing.assert_allclose(ditto_step(v, g, w, lr, 0.0)[0], v[0] - lr * g[0])
    np.testing.assert_allclose(ditto_step(v, g, w, lr, 1e9)[0], w[0] - lr * g[0])


def test_apfl_step_on_the_mixed_model_is_the_step_on_v():
    """APFL (Deng et al. 2020): v <- v - eta alpha grad f(v_bar), v_bar = a v + (1-a) w.
    On f(u) = 1/2 ||u - c||^2 (grad = u - c), SGD on v_bar with eta a^2, unmixed, is it."""
    rng = np.random.default_rng(0)
    v, w, c = ([rng.normal(size=(3, 2))] for _ in range(3))
    for alpha in (0.25, 0.5, 1.0):
        eta = 0.3
        u = apfl_mix(v, w, alpha)
        np.testing.assert_allclose(u[0], alpha * v[0] + (1 - alpha) * w[0])
        stepped = [u[0] - apfl_lr(eta, alpha) * (u[0] - c[0])]
        want = v[0] - eta * alpha * (u[0] - c[0])
        np.testing.assert_allclose(apfl_unmix(stepped, w, alpha)[0], want, rtol=1e-12)
        np.testing.assert_allclose(apfl_unmix(u, w, alpha)[0], v[0], rtol=1e-12)
    # alpha = 1 is purely local, its step unchanged
    assert apfl_lr(0.3, 1.0) == 0.3


def test_what_each_method_keeps_and_its_bytes():
    assert PERSONAL["fedavg"] is None and PERSONAL["fedavg-ft"] is None
    assert (PERSONAL["fedper"], PERSONAL["fedrep"], PERSONAL["fedbn"]) == ("head", "head", "bn")
    assert PERSONAL["ditto"] == PERSONAL["apfl"] == "model" and PERSONAL["local"] == "all"
    shapes, sizes = [a.shape for a in W], [4] * 4
    assert state_bytes(None, shapes, sizes, HEAD) == 0
    assert state_bytes("head", shapes, sizes, HEAD) == (6 + 2) * 4
    assert state_bytes("model", shapes, sizes, HEAD) == (6 + 3 + 6 + 2) * 4


def test_local_split_is_seeded_disjoint_and_75_25():
    train, test = local_split(100, seed=3, pid=7, test_fraction=0.25)
    assert len(test) == 25 and len(train) == 75
    assert not set(train) & set(test) and set(train) | set(test) == set(range(100))
    again = local_split(100, seed=3, pid=7, test_fraction=0.25)
    np.testing.assert_array_equal(again[1], test)
    assert not np.array_equal(local_split(100, seed=3, pid=8, test_fraction=0.25)[1], test)
    assert [len(p) for p in local_split(2, 0, 0, 0.25)] == [1, 1]  # both parts non-empty
    assert [len(p) for p in local_split(1, 0, 0, 0.25)] == [1, 0]


def test_holdout_set_is_seeded_and_sized():
    held = holdout_set(0, 25, 5)
    assert len(held) == 5 and held == holdout_set(0, 25, 5) and max(held) < 25
    assert holdout_set(1, 25, 5) != held
    assert holdout_set(0, 25, 0) == frozenset()


def test_local_metrics_mean_weighted_std_worst10_and_new_clients():
    trained = [(a / 10, 10 * (a + 1)) for a in range(10)] + [(0.0, 0)]  # last: no test data
    got = local_metrics(trained, [(0.5, 10), (1.0, 30)], failures=2)
    acc = np.arange(10) / 10
    n = 10 * (np.arange(10) + 1)
    assert got["personalised_accuracy"] == pytest.approx(acc.mean())
    assert got["personalised_accuracy_weighted"] == pytest.approx((acc * n).sum() / n.sum())
    assert got["personalised_accuracy_std"] == pytest.approx(acc.std())
    assert got["worst10_accuracy"] == pytest.approx(0.09)  # 10th percentile, interpolated
    assert got["new_client_accuracy"] == pytest.approx(0.75)
    assert got["new_client_accuracy_weighted"] == pytest.approx((5 + 30) / 40)
    assert got["local_eval_clients"] == 12 and got["local_eval_failures"] == 2
    empty = local_metrics([], [])
    assert empty["personalised_accuracy"] is None and empty["new_client_accuracy"] is None
