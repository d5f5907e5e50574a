"""The real ClientApp's train handler on a pooled (multi-client) message, with Keras:
the pooled sums equal the per-client replies, a crashing or NaN client costs only its
own entry, and the reply passes the weights-only check as declared."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from helpers import context

from clients.app import train
from clients.attacks import fault_draw
from learning.config import build_config
from learning.warm_start import initial_weights
from privacy.client_mods import privacy_mod
from privacy.reply_check import fixed_errors_mod, weights_only_mod
from strategies.pooling import FAILED, NOT_FINITE, OK

pytestmark = pytest.mark.tf

SMALL = [
    "num-clients=6",
    "clients-per-round=4",
    "train-subset=300",
    "test-subset=50",
    'model="mlp"',
    "local-epochs=1",
    'partition="iid"',
]


def _message(cfg, config_extra: dict) -> Message:
    weights = initial_weights("mlp", (28, 28, 1), 10, seed=0)
    config = ConfigRecord({**cfg.to_flat(), "server-round": 2, **config_extra})
    content = RecordDict({"arrays": ArrayRecord(weights), "config": config})
    return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)


def _app(msg: Message) -> Message:
    """The ClientApp's mods around its train handler (SecAgg+ off)."""
    return fixed_errors_mod(
        msg,
        context(7),
        lambda m, c: weights_only_mod(m, c, lambda m2, c2: privacy_mod(m2, c2, train)),
    )


def test_pooled_reply_sums_the_clients_and_isolates_failures():
    cfg = build_config(None, [*SMALL, "fault-crash-prob=0.4", "fault-nan-prob=0.3"])
    pids = [0, 1, 2, 3, 4, 5]
    crash = {p for p in pids if fault_draw(0, 2, p, "crash") < 0.4}
    nan = {p for p in pids if fault_draw(0, 2, p, "nan") < 0.3} - crash
    assert crash and len(crash | nan) < len(pids)  # the seed gives all three outcomes
    pooled = _app(_message(cfg, {"partition-ids": pids, "chunk": 0}))
    assert not pooled.has_error()
    lists = pooled.content["client-metrics"]
    want = [FAILED if p in crash else NOT_FINITE if p in nan else OK for p in pids]
    assert list(lists["status"]) == want
    assert list(lists["partition-id"]) == pids
    x = initial_weights("mlp", (28, 28, 1), 10, 0)
    total = [np.zeros(a.shape, np.float64) for a in x]
    units, updates = [a.copy() for a in total], [a.copy() for a in total]
    n_total = 0
    for p in pids:
        if p in crash or p in nan:
            continue
        one = _app(_message(cfg, {"partition-id": p}))
        n = int(one.content["metrics"]["num-examples"])
        n_total += n
        y = one.content["arrays"].to_numpy_ndarrays()
        u = [b.astype(np.float64) - a for a, b in zip(x, y, strict=True)]
        norm = np.sqrt(sum(np.vdot(d, d) for d in u))
        for t, a, s, d, e in zip(total, y, units, updates, u, strict=True):
            t += n * a.astype(np.float64)
            s += e / norm
            d += e
    metrics = pooled.content["metrics"]
    assert metrics["num-examples"] == n_total
    assert metrics["pooled-clients"] == len(pids) - len(crash | nan)
    for t, a in zip(total, pooled.content["arrays"].to_numpy_ndarrays(), strict=True):
        np.testing.assert_allclose(a, t, rtol=1e-5, atol=1e-4)
    for key, want in (("health-unit-sum", units), ("health-update-sum", updates)):
        for t, a in zip(want, pooled.content[key].to_numpy_ndarrays(), strict=True):
            np.testing.assert_allclose(a, t, rtol=1e-5, atol=1e-5)
    assert set(pooled.content.keys()) == {
        "arrays",
        "metrics",
        "client-metrics",
        "health-unit-sum",
        "health-update-sum",
    }
