"""The weights-only mod stops replies holding extra arrays or non-scalar metrics."""

from __future__ import annotations

import io

import numpy as np
import pytest
from flwr.app import (
    Array,
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

from privacy.reply_check import ReplyRefused, fixed_errors_mod, weights_only_mod

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


def _forged(payload: np.ndarray, like: np.ndarray, extra: bytes = b"") -> Array:
    """An Array whose metadata claims `like`'s shape and dtype but carries `payload`."""
    buf = io.BytesIO()
    np.save(buf, payload, allow_pickle=True)
    data = buf.getvalue() + extra
    return Array(dtype=str(like.dtype), shape=like.shape, stype="numpy.ndarray", data=data)


@pytest.mark.parametrize(
    "forged",
    [
        _forged(np.ones(6400, np.float32), W[0]),  # 25 kB behind a (2, 3) label
        _forged(W[0] + 1, W[0], extra=b"\x00" * 25_000),  # the right values plus 25 kB
        _forged(np.array([{"x": 1}], dtype=object), W[0]),  # a pickle
    ],
)
def test_forged_array_bytes_are_refused(forged):
    arrays = ArrayRecord({"0": forged, "1": Array(W[1] + 1)})
    with pytest.raises(ReplyRefused):
        weights_only_mod(_instruction(), context(3), _handler(arrays=arrays))


def test_the_reply_sent_is_rebuilt_from_checked_values():
    reply = weights_only_mod(_instruction(), context(3), _handler())
    for a, w in zip(reply.content["arrays"].values(), W, strict=True):
        assert a.data == Array(w + 1).data


def test_oversized_and_unknown_metrics_are_refused():
    many = MetricRecord({"num-examples": 5, **{f"m{i}": 1.0 for i in range(40)}})
    with pytest.raises(ReplyRefused, match="more than"):
        weights_only_mod(_instruction(), context(3), _handler(metrics=many))
    with pytest.raises(ReplyRefused, match="not one a client may report"):
        weights_only_mod(
            _instruction(),
            context(3),
            _handler(metrics=MetricRecord({"num-examples": 5, "label-3-count": 12})),
        )


def test_no_error_text_sent_to_the_server_holds_client_data():
    app = ClientApp(mods=[fixed_errors_mod, weights_only_mod])
    secret = "/home/alice/scan-0042.png"

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        if msg.content["config"].get("strategy") == "boom":
            raise ValueError(f"cannot decode {secret}")
        return _handler(**{secret: ArrayRecord([np.ones(3, np.float32)])})(msg, ctx)

    for instruction in (_instruction("boom"), _instruction()):
        reply = app(instruction, context(3))
        assert reply.has_error()
        assert secret not in reply.error.reason and "alice" not in reply.error.reason


def test_perennial_client_app_hides_error_texts_outermost():
    from clients.app import app

    assert app._mods[0] is fixed_errors_mod
