"""The deployment collect (server/pipeline/node_faults.py) against a scripted push/pull
Grid and a fake clock: which nodes are re-sent to, when the round's deadline ends the
wait, the messages' time to live, and the fault events the rows get. The real
processes are in tests/simulations/test_deploy_faults.py; this pins the rules fast."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode

from learning.config import ExperimentConfig
from server.pipeline.node_faults import NodeFaults, lost_nodes, node_name
from simulations.deployment.bench_faults import Schedule, expected_events, recorded_events


class ScriptedGrid:
    """Node n answers per `script[n]`, one entry per message it is sent: "ok" (an
    update), "down" (the SuperLink's NODE_UNAVAILABLE), "crash" (its ClientApp raised),
    "silent" (never answers)."""

    def __init__(self, clock: list[float], script: dict[int, list[str]]) -> None:
        self.clock, self.script, self.sent, self.ttls = clock, script, [], []
        self.queue: dict[str, Message] = {}

    def push_messages(self, messages):
        ids = []
        for m in messages:
            node = m.metadata.dst_node_id
            self.sent.append(node)
            self.ttls.append(m.metadata.ttl)
            if self.script[node][0] == "refused":  # the SuperLink does not store it
                self.script[node].pop(0)
                ids.append("")
                continue
            mid = f"m{len(self.sent)}"
            m.metadata.__dict__["_message_id"] = mid
            what = self.script[node].pop(0)
            if what == "ok":
                arrays = ArrayRecord([np.ones(2, np.float32)])
                metrics = MetricRecord({"num-examples": 5, "partition-id": node})
                reply = Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=m)
            elif what == "down":
                reply = Message(Error(ErrorCode.NODE_UNAVAILABLE, "offline"), reply_to=m)
            elif what == "crash":
                reply = Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "x"), reply_to=m)
            else:
                reply = None
            if reply is not None:
                reply.metadata.__dict__["_src_node_id"] = node
                self.queue[mid] = reply
            ids.append(mid)
        return ids

    def pull_messages(self, ids):
        return [self.queue.pop(i) for i in list(ids) if i in self.queue]


def _faults(clock: list[float], **keys) -> NodeFaults:
    cfg = ExperimentConfig.from_flat({"federation-mode": "deployment", **keys})

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return NodeFaults(cfg, clock=lambda: clock[0], sleep=sleep)


def _messages(nodes: list[int]) -> list[Message]:
    content = RecordDict(
        {"arrays": ArrayRecord([np.zeros(2, np.float32)]), "config": ConfigRecord()}
    )
    return [Message(content, dst_node_id=n, message_type="train") for n in nodes]


def test_unavailable_nodes_are_resent_after_backoff_until_the_deadline():
    clock = [0.0]
    faults = _faults(clock, **{"deploy-round-timeout": 30.0, "deploy-backoff": 2.0})
    grid = ScriptedGrid(clock, {1: ["ok"], 2: ["down", "down", "ok"], 3: ["silent"]})
    attempt = faults.collect(grid, _messages([1, 2, 3]))
    assert sorted(u.node_id for u in attempt.updates) == [1, 2]
    assert attempt.failures == 1
    assert grid.sent == [1, 2, 3, 2, 2]  # node 2 re-sent twice (after 2 s, then 4 s)
    assert set(grid.ttls) == {30.0}  # a message lives as long as the round
    assert 30.0 <= clock[0] <= 31.0  # node 3 held the round to its deadline, no longer
    row = faults.take()
    assert row["node_resends"] == 2
    assert row["fault_events"] == [
        {"event": "round-timeout", "waiting": 1},
        {"event": "node-lost", "node": node_name(3), "reason": "timeout"},
    ]
    assert faults.take() == {}  # a quiet round adds nothing to its row


def test_a_message_the_superlink_refuses_loses_its_node_at_once():
    clock = [0.0]
    faults = _faults(clock)
    grid = ScriptedGrid(clock, {1: ["ok"], 2: ["refused"]})
    attempt = faults.collect(grid, _messages([1, 2]))
    assert [u.node_id for u in attempt.updates] == [1] and attempt.failures == 1
    assert clock[0] < 5  # nothing waits for it
    assert faults.take()["fault_events"] == [
        {"event": "node-lost", "node": node_name(2), "reason": "refused"}
    ]


def test_a_lost_node_rejoins_and_a_crash_is_not_a_node_fault():
    clock = [0.0]
    faults = _faults(clock, **{"deploy-retries": 1, "deploy-backoff": 1.0})
    grid = ScriptedGrid(clock, {1: ["down", "down", "ok"], 2: ["crash", "crash"]})
    first = faults.collect(grid, _messages([1, 2]))
    assert first.updates == () and first.failures == 2
    one = node_name(1)
    row = faults.take()
    assert row["fault_events"] == [{"event": "node-lost", "node": one, "reason": "unavailable"}]
    assert clock[0] < 5  # both answered (with errors): nothing waits for a deadline
    faults.collect(grid, _messages([1, 2]))
    assert faults.take()["fault_events"] == [{"event": "node-rejoined", "node": one}]


def test_a_resumed_run_knows_its_lost_nodes_from_the_rows():
    rows = [
        {"round": 1},
        {"round": 2, "fault_events": [{"event": "node-lost", "node": "a"}]},
        {"round": 3, "fault_events": [{"event": "node-lost", "node": "b"}]},
        {"round": 4, "fault_events": [{"event": "node-rejoined", "node": "a"}]},
    ]
    assert lost_nodes(rows) == {"b"}
    faults = _faults([0.0])
    faults.resume(rows, 4)
    assert faults.lost == {"b"}
    assert faults.take()["fault_events"] == [{"event": "resumed", "after_round": 4}]


def test_bench_schedule_events_are_the_injected_ones():
    s = Schedule(node=1, kill_round=2, restart_round=4, link_round=5)
    assert expected_events(s, "n1", True) == [
        (2, "node-lost", "n1"),
        (4, "node-rejoined", "n1"),
        (5, "resumed", None),
    ]
    rows = [
        {
            "round": 2,
            "fault_events": [{"event": "round-timeout"}, {"event": "node-lost", "node": "n1"}],
        },
        {"round": 4, "fault_events": [{"event": "node-rejoined", "node": "n1"}]},
    ]
    assert recorded_events(rows) == expected_events(s, "n1", False)
    assert recorded_events(rows[:1]) != expected_events(s, "n1", False)


def test_a_dead_supernode_does_not_block_the_next_round():
    """Bug (bench-faults): the strategy was built to wait for every SuperNode present
    at the start (min-available-nodes), so once one died Flower's configure_train waited
    for it for ever and the round never started. In a deployment the loop samples the
    nodes itself: one connected node is enough to build the round's message."""
    from fake_grid import FakeClients
    from netns_site import hard_limit

    from server.pipeline.setup import build_stages

    cfg = ExperimentConfig.from_flat(
        {"federation-mode": "deployment", "num-clients": 3, "clients-per-round": 3}
    )
    grid = FakeClients(3)
    stages = build_stages(grid, cfg, 3, None)
    grid.get_node_ids = lambda: [1, 3]  # node 2 died after the run started
    with hard_limit(20):
        sent = stages.dispatch(2, ArrayRecord(stages.weights), [0, 1, 2])
    assert [m.metadata.dst_node_id for m in sent] == [1, 2, 3]  # node 2 still asked
