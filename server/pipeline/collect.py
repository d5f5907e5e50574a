"""Collect: send a batch through the Grid and read every answer once into a ClientUpdate.

A `Cohort` gathers one round's updates over all its attempts (first sample and
top-ups): who was tried, what answered (valid or refused), and the counts a metrics row
reports. Under SecAgg+ the four-stage exchange of `privacy.secagg.round.SecureSender`
replaces the plain send: only metrics come back, and the securely computed mean.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Message
from flwr.serverapp import Grid

from privacy.secagg.round import SecureSender
from server.pipeline.dispatch import nbytes
from server.pipeline.updates import ClientUpdate, PooledReply, validity
from strategies.pooling import CHUNK, PoolSum


@dataclass(frozen=True)
class Attempt:
    """One send and receive: the answers in arrival order and how many failed."""

    updates: tuple[ClientUpdate, ...]  # answered (error replies are failures)
    failures: int  # sent but not answered: error reply or no reply within the timeout
    bytes_sent: int
    pool: PoolSum | None = None  # pooled dispatch: the attempt's sums, in chunk order
    pooled_bytes: int = 0  # bytes of the pooled replies' arrays


def collect(grid: Grid, messages: list[Message], timeout: float) -> Attempt:
    """Send `messages`, wait for the replies, deserialise each answered one once.

    In simulation the replies are pulled every `PULL_INTERVAL` (Flower's own
    `send_and_receive` sleeps 0.1 s between pulls, which an asynchronous run, sending a
    few clients at a time, pays per send); a deployment's Grid pulls at its own pace."""
    if _in_memory(grid):
        replies = [reply for _, reply in _replies(grid, messages, timeout)]
    else:
        replies = list(grid.send_and_receive(messages, timeout=timeout))
    answered = tuple(ClientUpdate.from_reply(m) for m in replies if not m.has_error())
    sent = sum(nbytes(m.content) for m in messages)
    return Attempt(answered, len(messages) - len(answered), sent)


def collect_pooled(
    grid: Grid, messages: list[Message], timeout: float, kind: str, shapes: list[tuple[int, ...]]
) -> Attempt:
    """Send pooled messages and fold each reply into a running sum as it arrives.

    The chunks' sums are added in chunk order (a reply that arrives early waits in
    `pending` until the ones before it are in), so the total does not depend on which
    worker finished first or on how many there are; a reply's arrays are dropped once
    added. The server holds the running sum plus the out-of-order replies: O(workers)
    models in practice, never O(cohort)."""
    sent = sum(nbytes(m.content) for m in messages)
    clients = [list(m.content["config"]["partition-ids"]) for m in messages]
    pool, pending, next_chunk = None, {}, 0
    updates: list[ClientUpdate] = []
    failures, received = 0, 0

    def fold() -> None:
        nonlocal pool, next_chunk
        while next_chunk in pending:
            part = pending.pop(next_chunk)
            next_chunk += 1
            if part is None or part.pool is None:
                continue
            if pool is None:
                pool = part.pool
            else:
                pool.merge(part.pool)

    for chunk, reply in _replies(grid, messages, timeout):
        if chunk is None:  # a test grid: the reply names its chunk
            if reply.has_error():
                continue  # counted below as unanswered
            chunk = int(reply.content["metrics"][CHUNK])
        if reply.has_error():
            failures += len(clients[chunk])
            pending[chunk] = None
        else:
            part = PooledReply.from_reply(reply, kind, shapes)
            updates.extend(part.members)
            failures += len(part.failed)
            received += part.nbytes
            pending[chunk] = part
        fold()
    answered = set(pending) | set(range(next_chunk))
    for chunk in range(len(messages)):
        if chunk not in answered:  # no reply within the timeout
            failures += len(clients[chunk])
            pending[chunk] = None
    fold()
    return Attempt(tuple(updates), failures, sent, pool, received)


# Between empty pulls of replies: a pull is a look-up in the in-memory LinkState (tens
# of microseconds), and a send's last reply waits half this on average.
PULL_INTERVAL = 0.01
# Any other Grid (a deployment's) pulls with a request to the SuperLink: at Flower's own
# `send_and_receive` pace.
REMOTE_PULL_INTERVAL = 0.1


def pull_interval(grid: Grid) -> float:
    """Seconds between empty pulls of replies from `grid`."""
    return PULL_INTERVAL if _in_memory(grid) else REMOTE_PULL_INTERVAL


def _in_memory(grid: Grid) -> bool:
    return type(grid).__name__ == "InMemoryGrid"  # the simulation's: a pull is a look-up


def _replies(grid: Grid, messages: list[Message], timeout: float):
    """(chunk, reply) as replies arrive (push, then pull) where the Grid can; else all
    at once with chunk None (test grids without push/pull)."""
    if not hasattr(grid, "push_messages"):
        for reply in grid.send_and_receive(messages, timeout=timeout):
            yield None, reply
        return
    index = {mid: i for i, mid in enumerate(grid.push_messages(messages))}
    ids = set(index)
    end, interval = time.time() + timeout, pull_interval(grid)
    while ids and time.time() < end:
        got = list(grid.pull_messages(list(ids)))
        for reply in got:
            mid = reply.metadata.reply_to_message_id
            ids.discard(mid)
            yield index.get(mid), reply
        if ids and not got:
            time.sleep(interval)


@dataclass
class Cohort:
    """What one round gathered, over all its attempts."""

    tried: set[int] = field(default_factory=set)
    answered: list[ClientUpdate] = field(default_factory=list)  # valid and refused
    valid: list[ClientUpdate] = field(default_factory=list)
    failures: int = 0
    rejected: int = 0
    retries: int = 0
    bytes_sent: int = 0
    bytes_received: int | None = None  # None: the sum of what answered
    enough: bool = False  # the last attempt had min-clients useful updates
    secure_mean: list[np.ndarray] | None = None  # SecAgg+: the survivors' mean update
    pool: PoolSum | None = None  # pooled dispatch: the round's sums over all attempts
    pooled: bool = False  # the round was dispatched pooled
    pooled_bytes: int = 0

    def add(self, attempt: Attempt, shapes: list[tuple[int, ...]]) -> None:
        """Count an attempt in; refused updates are kept (with why) apart from valid."""
        self.failures += attempt.failures
        self.bytes_sent += attempt.bytes_sent
        self.pooled_bytes += attempt.pooled_bytes
        if attempt.pool is not None:
            if self.pool is None:
                self.pool = attempt.pool
            else:
                self.pool.merge(attempt.pool)
        for u in attempt.updates:
            why = validity(u, shapes)
            u = u if why is None else u.refuse(why)
            self.answered.append(u)
            if why is None:
                self.valid.append(u)
            else:
                self.rejected += 1

    def useful(self) -> list[ClientUpdate]:
        """Valid updates that trained on at least one example."""
        return [u for u in self.valid if u.num_examples > 0]

    def received(self) -> int:
        if self.bytes_received is not None:
            return self.bytes_received
        return sum(u.nbytes for u in self.answered if not u.pooled) + self.pooled_bytes


def collect_secure(
    sender: SecureSender, grid: Grid, messages: list[Message], server_round: int
) -> Cohort:
    """A SecAgg+ round's cohort: the protocol's replies (metrics only) and mean."""
    sent = sum(nbytes(m.content) for m in messages)
    outcome = sender.run(grid, messages, server_round)
    updates = [ClientUpdate.from_reply(m) for m in outcome.replies]
    return Cohort(
        answered=list(updates),
        valid=list(updates),
        failures=outcome.dropped,
        bytes_sent=sent,
        bytes_received=outcome.bytes_received,
        secure_mean=outcome.mean,
    )
