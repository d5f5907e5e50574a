"""The weights-only mod stops replies holding extra arrays or non-scalar metrics."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from helpers import context

from privacy.reply_check import ReplyRefused, weights_only_mod

W = [np.zeros((2, 3), np.float32), np.zeros(3, np.float32)]


def _instruction(strategy: str = "fedavg", weights_only: bool = True) -> Message:
    config = ConfigRecord({"strategy": strategy, "weights-only": weights_only})
    content = RecordDict({"arrays": ArrayRecord(W), "config": config})
    return Message(content=content, dst_node_id=3, message_type=MessageType.TRAIN)


def _handler(**records):
    def handle(msg: Message, ctx: Context) -> Message:
        content = RecordDict(
            {
                "arrays": ArrayRecord([w + 1 for w in W]),
                "metrics": MetricRecord({"num-examples": 5, "train-loss": 0.3}),
            }
        )
        for key, value in records.items():
            content[key] = value
        return Message(content=content, reply_to=msg)

    return handle


def test_honest_reply_passes():
    reply = weights_only_mod(_instruction(), context(3), _handler())
    assert set(reply.content.keys()) == {"arrays", "metrics"}


@pytest.mark.parametrize(
    ("records", "fragment"),
    [
        ({"stolen": ArrayRecord([np.ones((5, 28, 28), np.uint8)])}, "record is not allowed"),
        ({"arrays": ArrayRecord([W[0], W[1], np.ones(2, np.float32)])}, "do not match"),
        ({"arrays": ArrayRecord([W[0].astype(np.float64), W[1]])}, "do not match"),
        ({"metrics": MetricRecord({"num-examples": 5, "train-loss": [0.1, 0.2]})}, "not a scalar"),
        ({"metrics": MetricRecord({"num-examples": 5, "labels-seen": 3})}, "not one a client"),
        ({"scaffold-dc": ArrayRecord(W)}, "record is not allowed"),
        ({"config": ConfigRecord({"labels": "3,1,4"})}, "record is not allowed"),
    ],
)
def test_anything_else_is_stopped(records, fragment):
    with pytest.raises(ReplyRefused, match=fragment):
        weights_only_mod(_instruction(), context(3), _handler(**records))


def test_declared_extras_pass_for_their_strategy_only():
    handler = _handler(**{"scaffold-dc": ArrayRecord(W)})
    reply = weights_only_mod(_instruction("scaffold"), context(3), handler)
    assert "scaffold-dc" in reply.content


def test_a_client_app_with_the_mod_refuses_extra_arrays():
    app = ClientApp(mods=[weights_only_mod])

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _handler(leak=ArrayRecord([np.ones(3, np.float32)]))(msg, ctx)

    with pytest.raises(ReplyRefused):
        app(_instruction(), context(3))


def test_perennial_client_app_runs_the_mod():
    from clients.app import app

    assert weights_only_mod in app._mods
