"""The weights-only mod on pooled (multi-client) replies: the declared sums, per-client
lists and the clients' model-health sums pass; a malformed, incomplete or (under
central DP / SecAgg+) undeclared health sum is refused."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from helpers import context

from privacy.reply_check import CLIENT_LIST_METRICS, ReplyRefused, weights_only_mod
from strategies.pooling import UNIT_SUM, UPDATE_SUM

W = [np.zeros((2, 3), np.float32), np.zeros(3, np.float32)]
PIDS = [4, 9]


def _instruction(**config) -> Message:
    record = ConfigRecord({"strategy": "fedavg", "partition-ids": PIDS, "chunk": 0, **config})
    content = RecordDict({"arrays": ArrayRecord(W), "config": record})
    return Message(content=content, dst_node_id=3, message_type=MessageType.TRAIN)


def _pooled(**records):
    """A handler answering an honest pooled reply, plus `records` (None: left out)."""

    def handle(msg: Message, ctx) -> Message:
        lists = {name: [0, 0] for name in CLIENT_LIST_METRICS}
        lists["partition-id"] = list(PIDS)
        content = RecordDict(
            {
                "arrays": ArrayRecord([w + 2 for w in W]),
                "metrics": MetricRecord({"num-examples": 10, "pooled-clients": 2}),
                "client-metrics": MetricRecord(lists),
                UNIT_SUM: ArrayRecord([w + 1 for w in W]),
                UPDATE_SUM: ArrayRecord([w + 3 for w in W]),
            }
        )
        for key, value in records.items():
            if value is None:
                del content[key]
            else:
                content[key] = value
        return Message(content=content, reply_to=msg)

    return handle


def test_a_pooled_reply_with_its_health_sums_passes():
    reply = weights_only_mod(_instruction(), context(3), _pooled())
    assert set(reply.content.keys()) == {
        "arrays",
        "metrics",
        "client-metrics",
        UNIT_SUM,
        UPDATE_SUM,
    }
    np.testing.assert_array_equal(reply.content[UNIT_SUM].to_numpy_ndarrays()[1], W[1] + 1)
    no_sums = weights_only_mod(
        _instruction(), context(3), _pooled(**{UNIT_SUM: None, UPDATE_SUM: None})
    )
    assert UNIT_SUM not in no_sums.content


@pytest.mark.parametrize(
    ("records", "fragment"),
    [
        ({UNIT_SUM: ArrayRecord([W[0], np.zeros(4, np.float32)])}, "do not match"),
        ({UNIT_SUM: ArrayRecord([W[0].astype(np.float64), W[1]])}, "do not match"),
        ({UPDATE_SUM: ArrayRecord([W[0]])}, "do not match"),
        ({UPDATE_SUM: None}, "health sums are incomplete"),
        ({UNIT_SUM: None}, "health sums are incomplete"),
    ],
)
def test_a_malformed_health_sum_is_refused(records, fragment):
    with pytest.raises(ReplyRefused, match=fragment):
        weights_only_mod(_instruction(), context(3), _pooled(**records))


@pytest.mark.parametrize("config", [{"dp": "central"}, {"secure-aggregation": True}])
def test_health_sums_may_not_leave_under_central_dp_or_secagg(config):
    """Under central DP only the noisy sum is released; the unit vectors of the clipped
    updates would be more. (Workers there never compute them: clients/pooling.py.)"""
    with pytest.raises(ReplyRefused, match="not allowed to leave"):
        weights_only_mod(_instruction(**config), context(3), _pooled())
    plain = {UNIT_SUM: None, UPDATE_SUM: None}
    assert weights_only_mod(_instruction(**config), context(3), _pooled(**plain))
