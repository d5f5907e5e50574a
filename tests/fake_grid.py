"""A Grid stand-in for running the real round loop without Flower's runtime or Ray."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

DELTA = 0.01  # every fake client moves each weight by this much


class RecordingGrid:
    """A Grid whose clients answer at once with x + DELTA; it keeps what they saw."""

    def __init__(self, slots: int):
        self.slots = slots
        self.seen: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return list(range(1, self.slots + 1))

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for msg in messages:
            self.seen.append(msg)
            x = msg.content["arrays"].to_numpy_ndarrays()
            pid = int(msg.content["config"]["partition-id"])
            metrics = MetricRecord(
                {
                    "num-examples": 10,
                    "num-steps": 1,
                    "train-loss": 1.0,
                    "train-accuracy": 0.5,
                    "partition-id": pid,
                    "train-seconds": 0.0,
                }
            )
            content = RecordDict(
                {"arrays": ArrayRecord([w + np.float32(DELTA) for w in x]), "metrics": metrics}
            )
            replies.append(Message(content, reply_to=msg))
        return replies
