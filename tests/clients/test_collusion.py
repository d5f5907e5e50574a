"""Colluding attacks (ALIE, IPM, Min-Max) at the aggregate level: fake replies through
the real Flower strategies, no Ray. Each colluder's reply must be a record of its own,
since FedMedian/FedTrimmedAvg pop arrays out of every reply they aggregate."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict

from clients.attacks import apply_collusion, is_malicious
from learning.config import ExperimentConfig
from strategies.registry import build_strategy

N, F = 11, 2  # Bulyan needs n >= 4f + 3


def _reply(pid: int, arrays: list[np.ndarray]) -> Message:
    instruction = Message(
        content=RecordDict({"config": ConfigRecord({"partition-id": pid})}),
        dst_node_id=100 + pid,
        message_type=MessageType.TRAIN,
    )
    metrics = MetricRecord(
        {"num-examples": 10, "train-loss": 1.0, "train-accuracy": 0.5, "partition-id": pid}
    )
    return Message(
        RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}), reply_to=instruction
    )


def _cfg(strategy: str, attack: str = "alie") -> ExperimentConfig:
    return ExperimentConfig.from_flat(
        {
            "strategy": strategy,
            "num-clients": N,
            "clients-per-round": N,
            "num-malicious": F,
            "attack": attack,
            "malicious-fraction": 0.2,
        }
    )


@pytest.mark.parametrize("attack", ["alie", "ipm", "min-max"])
@pytest.mark.parametrize("strategy", ["fedmedian", "fedtrimmedavg", "bulyan", "krum", "fedavg"])
def test_colluders_survive_the_robust_aggregators(strategy, attack):
    cfg = _cfg(strategy, attack)
    bad = [p for p in range(N) if is_malicious(cfg, p)]
    assert len(bad) == F
    rng = np.random.default_rng(0)
    x = [np.zeros((3, 2), np.float32), np.zeros(4, np.float32)]
    replies = [
        _reply(p, [(w + rng.normal(size=w.shape)).astype(np.float32) for w in x]) for p in range(N)
    ]
    originals = [r.content["arrays"] for r in replies]
    before = [r.content["arrays"].to_numpy_ndarrays() for r in replies]
    out = apply_collusion(cfg, replies, x)
    # The replies it was given are untouched; the colluders' are new, one record each.
    for r, rec, arrays in zip(replies, originals, before, strict=True):
        assert r.content["arrays"] is rec
        for a, b in zip(rec.to_numpy_ndarrays(), arrays, strict=True):
            np.testing.assert_array_equal(a, b)
    records = [id(m.content["arrays"]) for m in out]
    assert len(set(records)) == N
    poisoned = [m for m in out if int(m.content["metrics"]["partition-id"]) in bad]
    assert all(m is not r for m, r in zip(poisoned, [replies[p] for p in bad], strict=True))
    a, b = (m.content["arrays"].to_numpy_ndarrays() for m in poisoned)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert poisoned[0].metadata.src_node_id == replies[bad[0]].metadata.src_node_id
    arrays, _ = build_strategy(cfg, N).aggregate_train(1, out)
    assert arrays is not None
    assert all(np.isfinite(w).all() for w in arrays.to_numpy_ndarrays())
