"""The worker's pooling without Keras: a client whose arrays are not the model's (names,
shapes, dtypes) fails alone and adds nothing, the health sums cover exactly the pooled
clients, and the one-client messages name their client without touching the received one."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from clients.pooling import ClientMessages, pooled_reply
from strategies.pooling import FAILED, OK, UNIT_SUM, UPDATE_SUM

W = [np.zeros((2, 3), np.float32), np.ones(3, np.float32)]
BROKEN = {
    1: lambda y: [y[0], y[1][:2]],  # a shape
    2: lambda y: [y[0].astype(np.float64), y[1]],  # a dtype
    3: lambda y: y[:1],  # an array missing
}


def _pooled(pids, **config) -> Message:
    record = ConfigRecord(
        {"strategy": "fedavg", "server-round": 1, "partition-ids": pids, "chunk": 0, **config}
    )
    content = RecordDict({"arrays": ArrayRecord(W), "config": record})
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1
    try:
        return Message(content=content, dst_node_id=3, message_type=MessageType.TRAIN)
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved


def _train_one(sub: Message, weights):
    pid = int(sub.content["config"]["partition-id"])
    y = [w + np.float32(pid + 1) for w in weights]
    y = BROKEN.get(pid, lambda v: v)(y)
    metrics = MetricRecord({"num-examples": 10, "num-steps": 1, "partition-id": pid})
    return Message(RecordDict({"arrays": ArrayRecord(y), "metrics": metrics}), reply_to=sub)


def test_a_client_with_arrays_unlike_the_model_fails_alone():
    content = pooled_reply(_pooled([0, 1, 2, 3, 4]), _train_one)
    lists = content["client-metrics"]
    assert list(lists["status"]) == [OK, FAILED, FAILED, FAILED, OK]
    metrics = content["metrics"]
    assert metrics["pooled-clients"] == 2 and metrics["num-examples"] == 20
    total = content["arrays"].to_numpy_ndarrays()
    np.testing.assert_allclose(total[1], 10 * (W[1] + 1) + 10 * (W[1] + 5))
    unit, update = (content[k].to_numpy_ndarrays() for k in (UNIT_SUM, UPDATE_SUM))
    np.testing.assert_allclose(update[0], np.full((2, 3), 1 + 5))  # clients 0 and 4 only
    np.testing.assert_allclose(unit[0], np.full((2, 3), 2 / 3))  # (1,...,1)/3 twice


def test_no_health_sums_under_central_dp():
    content = pooled_reply(_pooled([0, 4], dp="central", **{"clipping-norm": 100.0}), _train_one)
    assert UNIT_SUM not in content and UPDATE_SUM not in content


def test_one_client_messages_name_their_client_and_leave_the_received_one_alone():
    msg = _pooled([5, 6])
    one = ClientMessages(msg)
    for pid in (5, 6):
        config = one(pid).content["config"]
        assert config["partition-id"] == pid
        assert "partition-ids" not in config and "chunk" not in config
        assert one(pid).content["arrays"] is msg.content["arrays"]  # never copied
    assert list(msg.content["config"]["partition-ids"]) == [5, 6]
    assert "partition-id" not in msg.content["config"]
