"""The ClientApp's train handler, called in-process with real Messages and real Keras."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from helpers import context

from clients.app import train
from clients.state_store import ClientStore
from learning.config import build_config
from learning.warm_start import initial_weights
from strategies.scaffold import SCAFFOLD_C_KEY, SCAFFOLD_DC_KEY

pytestmark = pytest.mark.tf

SMALL = [
    "num-clients=4",
    "clients-per-round=2",
    "train-subset=400",
    "test-subset=100",
    'model="mlp"',
    "local-epochs=1",
    'partition="iid"',
]


def _message(cfg, pid: int, rnd: int, extra: dict | None = None) -> Message:
    weights = initial_weights("mlp", (28, 28, 1), 10, seed=0)
    config = ConfigRecord({**cfg.to_flat(), "partition-id": pid, "server-round": rnd})
    content = RecordDict({"arrays": ArrayRecord(weights), "config": config})
    for key, value in (extra or {}).items():
        content[key] = ArrayRecord(value)
    return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)


def test_reply_holds_only_weights_and_scalar_metrics():
    cfg = build_config(None, SMALL)
    reply = train(_message(cfg, pid=2, rnd=1), context(7))
    assert set(reply.content.keys()) == {"arrays", "metrics"}
    arrays = reply.content["arrays"]
    assert isinstance(arrays, ArrayRecord)
    sent = initial_weights("mlp", (28, 28, 1), 10, seed=0)
    got = arrays.to_numpy_ndarrays()
    assert [a.shape for a in got] == [a.shape for a in sent]
    assert any(not np.array_equal(a, b) for a, b in zip(got, sent, strict=True))
    metrics = reply.content["metrics"]
    assert isinstance(metrics, MetricRecord)
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    assert metrics["partition-id"] == 2 and metrics["num-examples"] == 100


def test_scaffold_client_keeps_control_variate_in_its_store(tmp_path):
    cfg = build_config(None, [*SMALL, 'strategy="scaffold"', f'out-dir="{tmp_path}"'])
    zeros = [np.zeros_like(w) for w in initial_weights("mlp", (28, 28, 1), 10, seed=0)]
    reply = train(_message(cfg, pid=1, rnd=1, extra={SCAFFOLD_C_KEY: zeros}), context(7))
    assert set(reply.content.keys()) == {"arrays", "metrics", SCAFFOLD_DC_KEY}
    store = ClientStore(tmp_path / "client-state")
    assert store.clients() == [1]
    saved = store.load(1)
    dc = reply.content[SCAFFOLD_DC_KEY].to_numpy_ndarrays()
    for i, d in enumerate(dc):  # c_1 started at zero, so dc equals the saved c_1
        np.testing.assert_allclose(saved[f"c{i}"], d)


def test_whole_client_app_with_its_mods_passes_an_honest_scaffold_reply(tmp_path):
    from clients.app import app

    cfg = build_config(None, [*SMALL, 'strategy="scaffold"', f'out-dir="{tmp_path}"'])
    zeros = [np.zeros_like(w) for w in initial_weights("mlp", (28, 28, 1), 10, seed=0)]
    reply = app(_message(cfg, pid=0, rnd=1, extra={SCAFFOLD_C_KEY: zeros}), context(7))
    assert not reply.has_error()
    assert set(reply.content.keys()) == {"arrays", "metrics", SCAFFOLD_DC_KEY}


def test_qfedavg_client_reports_the_loss_of_the_model_it_received():
    """q-FFL weights client k by F_k(w^t): the received model's loss on its own data,
    not the running mean of the loss during local training (Li et al. 2020, eq. 4)."""
    from learning.federated_data import client_shard
    from learning.training import get_trainer, to_float_images
    from strategies.registry import build_strategy

    cfg = build_config(None, [*SMALL, 'strategy="qfedavg"'])
    assert build_strategy(cfg, 2).train_loss_key == "received-loss"
    reply = train(_message(cfg, pid=1, rnd=1), context(7))
    metrics = reply.content["metrics"]
    x, y = client_shard(cfg, 1)
    weights = initial_weights("mlp", (28, 28, 1), 10, seed=0)
    want, _ = get_trainer("mlp", (28, 28, 1), 10).evaluate(weights, to_float_images(x), y)
    assert metrics["received-loss"] == pytest.approx(want, rel=1e-6)
    assert metrics["received-loss"] != pytest.approx(metrics["train-loss"], rel=1e-3)
    plain = train(_message(build_config(None, SMALL), pid=1, rnd=1), context(7))
    assert "received-loss" not in plain.content["metrics"]
