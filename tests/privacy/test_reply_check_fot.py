"""FOT's extended reply rule: a `fot-gram` record of the model-fixed shapes, under
cl-method "fot" only, and nothing else besides the weights."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from helpers import context

from privacy.reply_check import ReplyRefused, weights_only_mod

# a 2-layer dense model: kernels "0" (4, 3) and "2" (3, 2), biases "1", "3"
W = [np.zeros((4, 3), np.float32), np.zeros(3, np.float32), np.zeros((3, 2), np.float32)]
W.append(np.zeros(2, np.float32))


def _instruction(method: str) -> Message:
    config = ConfigRecord({"strategy": "fedavg", "cl-method": method})
    content = RecordDict({"arrays": ArrayRecord(W), "config": config})
    return Message(content=content, dst_node_id=3, message_type=MessageType.TRAIN)


def _handler(gram: dict[str, np.ndarray]):
    def handle(msg, ctx):
        content = RecordDict(
            {
                "arrays": ArrayRecord([w + 1 for w in W]),
                "metrics": MetricRecord({"num-examples": 5}),
                "fot-gram": ArrayRecord({k: Array(v) for k, v in gram.items()}),
            }
        )
        return Message(content=content, reply_to=msg)

    return handle


GOOD = {"0": np.eye(5, dtype=np.float32), "2": np.eye(4, dtype=np.float32)}


def test_a_gram_of_the_model_fixed_shapes_passes_under_fot():
    reply = weights_only_mod(_instruction("fot"), context(3), _handler(GOOD))
    assert set(reply.content.keys()) == {"arrays", "metrics", "fot-gram"}
    np.testing.assert_array_equal(reply.content["fot-gram"]["2"].numpy(), np.eye(4))


@pytest.mark.parametrize(
    ("gram", "method", "fragment"),
    [
        (GOOD, "lwf", "record is not allowed"),
        (GOOD, "finetune", "record is not allowed"),
        ({"0": np.eye(5, dtype=np.float32)}, "fot", "do not match"),  # a layer missing
        ({**GOOD, "1": np.eye(4, dtype=np.float32)}, "fot", "do not match"),  # a bias key
        ({"0": np.eye(6, dtype=np.float32), "2": GOOD["2"]}, "fot", "do not match"),  # size
        ({"0": np.ones((5, 100), np.uint8), "2": GOOD["2"]}, "fot", "do not match"),  # raw
        ({"0": GOOD["0"].astype(np.float64), "2": GOOD["2"]}, "fot", "do not match"),
    ],
)
def test_anything_else_in_a_gram_record_is_refused(gram, method, fragment):
    with pytest.raises(ReplyRefused, match=fragment):
        weights_only_mod(_instruction(method), context(3), _handler(gram))
