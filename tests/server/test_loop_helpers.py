"""Small loop helpers: dtype preservation and update validation."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord

from server.pipeline.aggregate import cast_like as _cast_like


def test_global_model_keeps_model_dtypes():
    record = ArrayRecord([np.ones((2, 2), np.float64), np.zeros(3, np.float64)])
    out = _cast_like(record, [np.dtype(np.float32), np.dtype(np.float32)])
    assert [a.dtype for a in out.to_numpy_ndarrays()] == [np.float32, np.float32]
    same = ArrayRecord([np.ones(2, np.float32)])
    assert _cast_like(same, [np.dtype(np.float32)]) is same


def test_a_round_short_of_the_defence_bound_is_skipped_loudly(caplog):
    """Config passed (11 >= 4f + 3 for f = 2), but only 10 replies arrived: skip, warn."""
    import logging

    from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict

    from learning.config import build_config
    from server.pipeline.aggregate import round_bound

    def reply(pid: int) -> Message:
        ask = Message(
            RecordDict({"c": ConfigRecord({})}), dst_node_id=pid, message_type=MessageType.TRAIN
        )
        content = RecordDict(
            {"arrays": ArrayRecord([np.ones(2)]), "metrics": MetricRecord({"num-examples": 1})}
        )
        return Message(content, reply_to=ask)

    cfg = build_config(None, ['strategy="bulyan"', "num-malicious=2", "clients-per-round=11"])
    assert round_bound(cfg, 3, [reply(p) for p in range(11)]) is None
    logging.getLogger("flwr").addHandler(caplog.handler)  # Flower's logger does not propagate
    try:
        with caplog.at_level(logging.WARNING, logger="flwr"):
            reason = round_bound(cfg, 3, [reply(p) for p in range(10)])
    finally:
        logging.getLogger("flwr").removeHandler(caplog.handler)
    assert reason is not None and "needs at least 11" in reason and "got 10" in reason
    assert any("round 3 skipped" in r.getMessage() for r in caplog.records)
    fedavg = build_config(None, ["num-malicious=2"])
    assert round_bound(fedavg, 3, [reply(0)]) is None
