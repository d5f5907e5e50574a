"""Fixtures for strategy tests: reply Messages and a Grid stand-in, no Flower runtime.

Flower stamps every new Message with the run and node of the task that creates it
(`TaskIdentity`), which only a running ServerApp or ClientApp sets; here a fixed
identity is set for the test session and the previous one put back afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict


class FakeGrid:
    """Just enough Grid for FedAvg's node sampling (`get_node_ids`)."""

    def __init__(self, node_ids: list[int]):
        self.node_ids = list(node_ids)

    def get_node_ids(self) -> list[int]:
        return list(self.node_ids)


def create_mock_reply(
    arrays: list[np.ndarray],
    num_examples: int,
    num_steps: int,
    extra: dict[str, list[np.ndarray]] | None = None,
    partition_id: int = 0,
) -> Message:
    """A train reply as our ClientApp sends it, plus any extra ArrayRecords."""
    instruction = Message(
        content=RecordDict({"config": ConfigRecord({"partition-id": partition_id})}),
        dst_node_id=100 + partition_id,
        message_type=MessageType.TRAIN,
    )
    metrics = MetricRecord(
        {
            "num-examples": int(num_examples),
            "num-steps": int(num_steps),
            "train-loss": 1.0,
            "train-accuracy": 0.5,
            "partition-id": int(partition_id),
            "train-seconds": 0.1,
        }
    )
    content = RecordDict(
        {"arrays": ArrayRecord([np.asarray(a) for a in arrays]), "metrics": metrics}
    )
    for key, value in (extra or {}).items():
        content[key] = ArrayRecord([np.asarray(a) for a in value])
    return Message(content, reply_to=instruction)


@pytest.fixture(name="mock_reply")
def _mock_reply():
    """`create_mock_reply` for tests (conftest modules are not imported directly)."""
    return create_mock_reply


@pytest.fixture(name="grid")
def _grid() -> FakeGrid:
    return FakeGrid([11, 12])
