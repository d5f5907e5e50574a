"""A Grid stand-in for running the real round loop without Flower's runtime or Ray."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Message, MessageType, MetricRecord, RecordDict

DELTA = 0.01  # every fake client moves each weight by this much


def eval_metrics(pid: int, rnd: int) -> MetricRecord:
    """A fake client's local test: accuracy (pid % 10) / 10 + round / 100, 20 + pid examples."""
    acc = (pid % 10) / 10 + rnd / 100
    return MetricRecord(
        {
            "num-examples": 20 + pid,
            "eval-loss": 1.0 - acc,
            "eval-accuracy": acc,
            "partition-id": pid,
        }
    )


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


class FakeClients(RecordingGrid):
    """A RecordingGrid with configurable clients, for the round loop's golden and stage tests.

    Each client answers deterministically from (partition id, round): x + DELTA * (pid + 1)
    / 10 plus small seeded noise, with `10 + pid` examples. `crash`, `drop`, `nan` and
    `bad_shape` name (partition id, round) pairs (round 0 = every round) that answer with an
    error, do not answer at all, answer NaN weights or a wrong shape; `scaffold` adds the
    extra `scaffold-dc` ArrayRecord; `zero` pairs report 0 examples. In deployment mode
    (no partition id in the message) client k is the k-th node.
    """

    def __init__(
        self,
        slots: int,
        *,
        crash=(),
        drop=(),
        nan=(),
        bad_shape=(),
        zero=(),
        scaffold: bool = False,
    ):
        super().__init__(slots)
        self.crash, self.drop, self.nan = set(crash), set(drop), set(nan)
        self.bad_shape, self.zero, self.scaffold = set(bad_shape), set(zero), scaffold

    @staticmethod
    def _hit(pairs: set, pid: int, rnd: int) -> bool:
        return (pid, rnd) in pairs or (pid, 0) in pairs

    def send_and_receive(self, messages, timeout=None):

        from clients.pooling import is_pooled, pooled_reply

        replies = []
        for msg in messages:
            if is_pooled(msg):  # the real worker pooling over fake per-client updates
                self.seen.append(msg)
                content = pooled_reply(msg, self._train_one)
                replies.append(Message(content, reply_to=msg))
                continue
            replies.extend(self._answer([msg]))
        return replies

    def _train_one(self, sub, weights):
        """One client of a pooled message, answered as a one-client message would be;
        a crash or a dropped client raises (the worker records it as failed)."""
        got = self._answer([sub], record=False)
        if not got or got[0].has_error():
            raise RuntimeError("fake client failed")
        return got[0]

    def _answer(self, messages, record: bool = True):
        from flwr.app import Error

        replies = []
        for msg in messages:
            if record:
                self.seen.append(msg)
            config = msg.content["config"]
            rnd = int(config["server-round"])
            if "partition-id" in config:
                pid = int(config["partition-id"])
            else:
                pid = self.get_node_ids().index(msg.metadata.dst_node_id)
            if self._hit(self.drop, pid, rnd):
                continue
            if msg.metadata.message_type == MessageType.EVALUATE:  # local-eval: scalars only
                replies.append(
                    Message(RecordDict({"metrics": eval_metrics(pid, rnd)}), reply_to=msg)
                )
                continue
            if self._hit(self.crash, pid, rnd):
                replies.append(Message(Error(0, f"crash {pid}"), reply_to=msg))
                continue
            x = msg.content["arrays"].to_numpy_ndarrays()
            rng = np.random.default_rng([pid, rnd])
            y = [
                w
                + np.float32(DELTA * (pid + 1) / 10)
                + rng.normal(0, 0.01, w.shape).astype(w.dtype)
                for w in x
            ]
            if self._hit(self.nan, pid, rnd):
                y = [np.full_like(w, np.nan) for w in y]
            if self._hit(self.bad_shape, pid, rnd):
                y = y[:-1]
            metrics = MetricRecord(
                {
                    "num-examples": 0 if self._hit(self.zero, pid, rnd) else 10 + pid,
                    "num-steps": 1,
                    "train-loss": 1.0 / (pid + 1),
                    "train-accuracy": 0.5 + pid / 1000,
                    "partition-id": pid,
                    "train-seconds": 0.001 * ((pid * 7 + rnd) % 11),
                }
            )
            content = RecordDict({"arrays": ArrayRecord(y), "metrics": metrics})
            if self.scaffold:
                content["scaffold-dc"] = ArrayRecord(
                    [(b - a) / 10 for a, b in zip(x, y, strict=False)]
                )
            replies.append(Message(content, reply_to=msg))
        return replies


class StreamingClients(FakeClients):
    """FakeClients behind push/pull, as Flower's Grids are: a pushed message is answered
    over later pulls in a seeded random order (each pull returns each waiting answer with
    probability `answer`); a dropped client's message is never answered. `overlap` counts the
    pushes made while earlier messages were still unanswered."""

    def __init__(self, slots: int, *, seed: int = 0, answer: float = 0.5, **kw):
        super().__init__(slots, **kw)
        self.rng = np.random.default_rng(seed)
        self.answer = answer  # chance that a waiting answer comes back in a pull
        self.waiting: dict[str, Message | None] = {}  # id -> answer (None: never)
        self.pushes = self.overlap = 0

    def push_messages(self, messages):
        from uuid import uuid4

        self.pushes += 1
        self.overlap += bool(self.waiting)
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = str(uuid4())
            answers = FakeClients.send_and_receive(self, [msg])
            self.waiting[msg.metadata.message_id] = answers[0] if answers else None
            ids.append(msg.metadata.message_id)
        return ids

    def pull_messages(self, message_ids):
        out = []
        for mid in sorted(set(message_ids) & set(self.waiting)):
            answer = self.waiting[mid]
            if answer is not None and self.rng.random() < self.answer:
                out.append(answer)
                del self.waiting[mid]
        return out
