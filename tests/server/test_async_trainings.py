"""The asynchronous scheduler's sends (server/pipeline/async_trainings.py) on a tiny
push/pull grid: timeouts run only for jobs the scheduler waits on, and a reply that
names another client is a failure, as it is in a blocking send."""

from __future__ import annotations

import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from server.pipeline.async_trainings import Job, Trainings


class Grid:
    """Answers the pids in `answers` (as `reported` pid, if given) on the next pull."""

    def __init__(self, answers: set[int], reported: dict[int, int] | None = None):
        self.answers, self.reported = answers, reported or {}
        self.waiting: dict[str, Message] = {}

    def push_messages(self, messages):
        from uuid import uuid4

        for m in messages:
            m.metadata.__dict__["_message_id"] = str(uuid4())
            pid = int(m.content["config"]["partition-id"])
            if pid in self.answers:
                metrics = MetricRecord(
                    {"num-examples": 5, "partition-id": self.reported.get(pid, pid)}
                )
                content = RecordDict({"arrays": m.content["arrays"], "metrics": metrics})
                self.waiting[m.metadata.message_id] = Message(content, reply_to=m)
        return [m.metadata.message_id for m in messages]

    def pull_messages(self, ids):
        return [self.waiting.pop(i) for i in list(ids) if i in self.waiting]


def _build(jobs, slot):
    out = []
    for j in jobs:
        content = RecordDict({"arrays": j.arrays, "config": ConfigRecord({"partition-id": j.pid})})
        out.append(Message(content, dst_node_id=1, message_type="train"))
    return out


def _jobs(*pids):
    arrays = ArrayRecord([np.zeros(3, np.float32)])
    return [Job(p, 0, 0.0, arrays, b"d") for p in pids]


def test_only_a_job_the_scheduler_waits_on_times_out():
    t = Trainings(Grid(answers=set()), _build, timeout=0.05)
    needed, ahead = _jobs(1, 2)
    t.send([needed, ahead])
    t.need([needed.key])
    time.sleep(0.1)
    t.receive(wait=True)
    assert t.known(needed.key) and t.take(needed.key).update is None
    assert t.waiting(ahead.key) and not t.known(ahead.key)  # sent ahead: still waited for


def test_a_reply_naming_another_client_is_a_failure():
    t = Trainings(Grid(answers={1, 2}, reported={2: 7}), _build, timeout=5.0)
    one, two = _jobs(1, 2)
    t.send([one, two])
    while t.waiting(one.key) or t.waiting(two.key):
        t.receive(wait=True)
    assert t.take(one.key).update is not None
    assert t.take(two.key).update is None


def test_jobs_that_can_no_longer_be_used_are_dropped_and_counted():
    t = Trainings(Grid(answers={1}), _build, timeout=5.0)
    one, two = _jobs(1, 2)
    t.send([one, two])
    t.receive(wait=True)
    assert t.forget_before(1.0) == 2  # one kept result, one still unanswered
    assert not t.known(one.key) and not t.waiting(two.key)
