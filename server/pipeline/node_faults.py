"""Collect in a deployment: per-SuperNode outcomes, re-sends after back-off, fault events.

In a simulation a client that fails is a seeded fault; in a deployment it is a machine
that died, a cable that was pulled, a SuperNode restarted. Flower's SuperLink answers a
message to a node it considers offline (no heartbeat for two 30 s intervals) with a
NODE_UNAVAILABLE error; a node that is online but never answers leaves the message
unanswered. So one send here:

- pushes the round's messages and pulls the replies every `PULL_INTERVAL` seconds until
  all are in or `deploy-round-timeout` has passed (then the round times out cleanly:
  the missing nodes are lost, the round aggregates what came);
- re-sends to nodes the SuperLink called unavailable, after `deploy-backoff` seconds
  (doubling), up to `deploy-retries` times while the deadline allows: a node that is
  restarted or whose link comes back within the back-off trains in the same round;
- records every fault as an event of the round's metrics row (`fault_events`):
  node-lost (unavailable or timeout), node-rejoined (a lost node answered again),
  round-timeout, resumed (the first round after `deploy run --resume`), node-joined
  (a late joiner entered the population, with deploy-late-joiners).

Which nodes were lost is replayed from the rows, so a resumed run knows them too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from flwr.app import Message
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from learning.config import ExperimentConfig
from server.messages import addressed_copy
from server.pipeline.collect import Attempt
from server.pipeline.dispatch import nbytes
from server.pipeline.updates import ClientUpdate

PULL_INTERVAL = 1.0  # seconds between pulls (Flower's own loop: 3 s)
NODE_UNAVAILABLE = ErrorCode.NODE_UNAVAILABLE


def node_name(node_id: int) -> str:
    """A SuperNode as rows name it (the `worker-node` its replies carry, in hex)."""
    return f"{int(node_id) & (2**48 - 1):012x}"


def lost_nodes(rows: Iterable[dict[str, Any]]) -> set[str]:
    """Nodes lost and not yet rejoined after `rows` (replayed from their events)."""
    lost: set[str] = set()
    for row in rows:
        for e in row.get("fault_events") or []:
            if e["event"] == "node-lost":
                lost.add(e["node"])
            elif e["event"] == "node-rejoined":
                lost.discard(e["node"])
    return lost


class NodeFaults:
    """One deployment run's sends: deadlines, re-sends and the events they produce."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        d = cfg.deploy
        self.timeout, self.retries = d.deploy_round_timeout, d.deploy_retries
        self.backoff = d.deploy_backoff
        self.lost: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.resends = 0
        self.clock, self.sleep = clock, sleep

    def resume(self, rows: list[dict[str, Any]], after_round: int) -> None:
        """The run continues after `after_round` (its checkpoint) in a new ServerApp:
        the nodes lost so far come back from the rows, and the next row says so."""
        self.lost = lost_nodes(rows)
        self.events.append({"event": "resumed", "after_round": after_round})

    def joined(self, nodes: list[int]) -> None:
        """Late joiners entered the population this round."""
        self.events += [{"event": "node-joined", "node": node_name(n)} for n in nodes]

    def take(self) -> dict[str, Any]:
        """The round's fault record for its row (and start the next round's); nothing
        when nothing happened, so a fault-free deployment records what it always did."""
        row: dict[str, Any] = {"fault_events": self.events} if self.events else {}
        if self.resends:
            row["node_resends"] = self.resends
        self.events, self.resends = [], 0
        return row

    def collect(self, grid: Grid, messages: list[Message]) -> Attempt:
        """Send `messages` (one per node), re-send to unavailable nodes after back-off,
        and read each answered reply once; unanswered nodes count as failures."""
        deadline = self.clock() + self.timeout
        sent = sum(nbytes(m.content) for m in messages)
        pending = {m.metadata.dst_node_id: m for m in messages}
        answered: list[ClientUpdate] = []
        tries = {node: 0 for node in pending}
        retry_at: dict[int, float] = {}
        if not hasattr(grid, "push_messages"):  # a test grid: one exchange, no re-sends
            replies = grid.send_and_receive(messages, timeout=self.timeout)
            by_node = {_node_of(r, messages): r for r in replies}
            for node in list(pending):
                reply = by_node.get(node)
                if reply is None or _unavailable(reply):
                    self._lost(node, "timeout" if reply is None else "unavailable")
                else:
                    self._answered(node, reply, answered)
            return Attempt(tuple(answered), len(messages) - len(answered), sent)
        waiting = self._push(grid, list(pending.values()), pending)
        while (waiting or retry_at) and self.clock() < deadline:
            for reply in grid.pull_messages(list(waiting)) if waiting else []:
                node = waiting.pop(reply.metadata.reply_to_message_id, None)
                if node is None:
                    continue
                if not _unavailable(reply):
                    self._answered(node, reply, answered)
                    del pending[node]
                elif tries[node] < self.retries:
                    retry_at[node] = self.clock() + self.backoff * 2 ** tries[node]
                    tries[node] += 1
                else:
                    self._lost(node, "unavailable")
                    del pending[node]
            due = [n for n, t in retry_at.items() if t <= self.clock()]
            if due:
                for n in due:
                    del retry_at[n]
                self.resends += len(due)
                waiting.update(self._push(grid, [_again(pending[n]) for n in due], pending))
            if waiting or retry_at:
                self.sleep(PULL_INTERVAL)
        if waiting or retry_at:
            self.events.append({"event": "round-timeout", "waiting": len(pending)})
            for node in pending:
                self._lost(node, "timeout" if node in waiting.values() else "unavailable")
        return Attempt(tuple(answered), len(messages) - len(answered), sent)

    def _push(
        self, grid: Grid, messages: list[Message], pending: dict[int, Message]
    ) -> dict[str, int]:
        """Push with a time to live of the round's deadline: a node that comes back after
        it (its link restored) is not handed the stale round's work, which would keep
        it busy through the next round. A message the SuperLink refuses to store (an
        empty id: e.g. a node it no longer knows) loses its node at once."""
        for m in messages:
            m.metadata.ttl = self.timeout
        ids = grid.push_messages(messages)
        waiting = {}
        for mid, m in zip(ids, messages, strict=True):
            if mid:
                waiting[mid] = m.metadata.dst_node_id
            else:
                self._lost(m.metadata.dst_node_id, "refused")
                del pending[m.metadata.dst_node_id]
        return waiting

    def _lost(self, node: int, why: str) -> None:
        """A node failed this round; an event when it was not lost already (a node down
        for several rounds is one loss, its failures are counted per round)."""
        name = node_name(node)
        if name not in self.lost:
            self.events.append({"event": "node-lost", "node": name, "reason": why})
            self.lost.add(name)

    def _answered(self, node: int, reply: Message, answered: list[ClientUpdate]) -> None:
        """The node answered: its update, or an error its ClientApp raised (a failure of
        the client, not of the node: no event). A node lost before is back."""
        if not reply.has_error():
            answered.append(ClientUpdate.from_reply(reply))
        name = node_name(node)
        if name in self.lost:
            self.lost.discard(name)
            self.events.append({"event": "node-rejoined", "node": name})


def _again(message: Message) -> Message:
    """A fresh copy of `message` to push again (a pushed message has its id)."""
    return addressed_copy(message, message.metadata.dst_node_id)


def _node_of(reply: Message, messages: list[Message]) -> int:
    """The node a test grid's reply answers for (its message, by id, else its source)."""
    for m in messages:
        if m.metadata.message_id and m.metadata.message_id == reply.metadata.reply_to_message_id:
            return m.metadata.dst_node_id
    return reply.metadata.src_node_id


def _unavailable(reply: Message) -> bool:
    """The SuperLink's answer for a node it counts as offline (no heartbeat)."""
    return reply.has_error() and reply.error.code == NODE_UNAVAILABLE
