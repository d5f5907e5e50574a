"""The ClientApp under continual scenarios: task data, method state on disk, clean replies."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from helpers import context

from clients.app import app, train
from clients.continual import STATE_DIR
from clients.state_store import ClientStore
from learning.config import build_config
from learning.warm_start import initial_weights

pytestmark = pytest.mark.tf

CL = [
    "num-clients=4",
    "clients-per-round=2",
    "train-subset=2000",
    "test-subset=100",
    'model="mlp"',
    'partition="iid"',
    'scenario="class-incremental"',
    "num-tasks=2",
    "rounds=4",
]


def _message(cfg, pid: int, rnd: int, seed: int = 0) -> Message:
    weights = initial_weights("mlp", (28, 28, 1), 10, seed=seed)
    config = ConfigRecord({**cfg.to_flat(), "partition-id": pid, "server-round": rnd})
    content = RecordDict({"arrays": ArrayRecord(weights), "config": config})
    return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)


def _store(tmp_path) -> ClientStore:
    return ClientStore(tmp_path / STATE_DIR)


def test_replay_buffer_stays_on_the_client_and_holds_past_tasks(tmp_path):
    cfg = build_config(None, [*CL, 'cl-method="replay"', "buffer-size=30", f'out-dir="{tmp_path}"'])
    r1 = app(_message(cfg, pid=1, rnd=1), context(7))  # task 0, with the weights-only mod
    assert not r1.has_error() and r1.content["metrics"]["task"] == 0
    assert "buf_y" not in _store(tmp_path).load(1)  # nothing past yet
    r3 = app(_message(cfg, pid=1, rnd=3), context(7))  # task 1: task 0 enters the reservoir
    assert not r3.has_error()
    assert set(r3.content.keys()) == {"arrays", "metrics"}
    assert r3.content["metrics"]["task"] == 1
    state = _store(tmp_path).load(1)
    assert len(state["buf_y"]) == 30 and set(np.unique(state["buf_y"])) <= {0, 1, 2, 3, 4}
    assert state["buf_x"].shape == (30, 28, 28, 1) and state["buf_x"].dtype == np.uint8
    assert int(state["buf_seen"]) > 30


def test_a_client_first_sampled_late_still_streams_the_tasks_it_held(tmp_path):
    cfg = build_config(None, [*CL, 'cl-method="replay"', "buffer-size=20", f'out-dir="{tmp_path}"'])
    train(_message(cfg, pid=2, rnd=4), context(7))
    assert set(np.unique(_store(tmp_path).load(2)["buf_y"])) <= {0, 1, 2, 3, 4}


def test_ewc_computes_fisher_at_the_previous_global_model_when_the_task_changes(tmp_path):
    cfg = build_config(None, [*CL, 'cl-method="ewc"', f'out-dir="{tmp_path}"'])
    train(_message(cfg, pid=0, rnd=2, seed=5), context(7))
    assert "fisher0" not in _store(tmp_path).load(0)
    reply = train(_message(cfg, pid=0, rnd=3, seed=6), context(7))
    assert set(reply.content.keys()) == {"arrays", "metrics"}
    state = _store(tmp_path).load(0)
    # The anchor is the global model received when the client moves on (it carries every
    # round of the finished task), not the older one it trained in task 0.
    end_of_task0 = initial_weights("mlp", (28, 28, 1), 10, seed=6)
    for i, w in enumerate(end_of_task0):
        np.testing.assert_array_equal(state[f"prev{i}"], w)
        assert state[f"fisher{i}"].shape == w.shape and (state[f"fisher{i}"] >= 0).all()
    assert sum(float(state[f"fisher{i}"].sum()) for i in range(len(end_of_task0))) > 0


def test_ewc_trains_a_batch_norm_model_its_anchor_the_trainable_weights(tmp_path):
    """A BN model's weights list holds moving statistics that are not trainable: the
    anchor must be the trainable part (before the fix the update failed)."""
    cfg = build_config(None, [*CL, 'cl-method="ewc"', 'model="mlp-bn"', f'out-dir="{tmp_path}"'])
    w = initial_weights("mlp-bn", (28, 28, 1), 10, seed=6)

    def msg(rnd: int) -> Message:
        config = ConfigRecord({**cfg.to_flat(), "partition-id": 0, "server-round": rnd})
        content = RecordDict({"arrays": ArrayRecord(w), "config": config})
        return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)

    train(msg(2), context(7))
    reply = train(msg(3), context(7))  # task 1: Fisher and anchor in force
    assert not reply.has_error()
    got = reply.content["arrays"].to_numpy_ndarrays()
    assert any(np.abs(a - b).max() > 1e-6 for a, b in zip(got, w, strict=True))
    assert "fisher0" in _store(tmp_path).load(0)


def test_lwf_keeps_the_previous_global_model_as_teacher(tmp_path):
    cfg = build_config(None, [*CL, 'cl-method="lwf"', f'out-dir="{tmp_path}"'])
    train(_message(cfg, pid=3, rnd=1, seed=8), context(7))
    train(_message(cfg, pid=3, rnd=3, seed=9), context(7))
    state = _store(tmp_path).load(3)
    np.testing.assert_array_equal(state["prev0"], initial_weights("mlp", (28, 28, 1), 10, 9)[0])
    assert "held0" not in state  # nothing model-sized is kept beyond the teacher


def test_client_evaluate_uses_the_current_task_data():
    from clients.app import evaluate

    cfg = build_config(None, CL)
    msg = _message(cfg, pid=1, rnd=3)
    msg = Message(content=msg.content, dst_node_id=7, message_type=MessageType.EVALUATE)
    reply = evaluate(msg, context(7))
    from learning.federated_data import task_shard

    assert reply.content["metrics"]["num-examples"] == len(task_shard(cfg, 1, 1)[1])
