"""The asynchronous scheduler's client trainings: sent ahead, kept under what they use.

A training is a `Job`: a client (partition id) starting from one model version at one
virtual instant. Its result is kept under everything it depends on (partition id,
version, start time, digest of the model's bytes), so the scheduler can only ever use
the result of exactly the job it starts; when, and in which order, results come back
changes nothing but the wall time.

Where the Grid can push and pull (Flower's simulation and deployment Grids), sends do
not wait for each other: the lookahead sends as soon as it knows a job, replies are
pulled as they arrive, and a new send goes out while the workers still train the last
one, so Flower's engine's per-send latency (it hands each SuperNode one message per
0.1 s) overlaps with training instead of adding to it. Grids with only
`send_and_receive` (the tests' fake grids) train each send to the end before the next.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, Message
from flwr.serverapp import Grid

from server.pipeline.async_events import Key
from server.pipeline.collect import collect, pull_interval
from server.pipeline.dispatch import nbytes
from server.pipeline.updates import ClientUpdate


def model_digest(arrays: Sequence[np.ndarray]) -> bytes:
    """A digest of the arrays' bytes, dtypes and shapes: a model's identity in a job key."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.data)
    return h.digest()


@dataclass(frozen=True)
class Trained:
    update: ClientUpdate | None  # None: an error reply or no reply
    down: int  # bytes the client downloaded


@dataclass(frozen=True)
class Job:
    pid: int
    version: int
    start: float
    arrays: ArrayRecord | list[np.ndarray]  # a planned version: its ArrayRecord when sent
    digest: bytes

    @property
    def key(self) -> Key:
        return (self.pid, self.version, self.start, self.digest)


# (jobs, first slot) -> one message per job, in the jobs' order
Build = Callable[[list[Job], int], list[Message]]


class Trainings:
    """Sends jobs, and keeps their results until the scheduler takes them.

    A job's timeout runs from when it was sent or when the scheduler first needed it,
    whichever is later: a job sent ahead waits behind the others sent ahead, and must not
    fail for that (it would make a result depend on training ahead). A job only sent
    ahead never times out; it is dropped once it can no longer be used."""

    def __init__(self, grid: Grid, build: Build, timeout: float) -> None:
        self.grid, self.build, self.timeout = grid, build, timeout
        self._kept: dict[Key, Trained] = {}
        self.streams = hasattr(grid, "push_messages") and hasattr(grid, "pull_messages")
        self._interval = pull_interval(grid)
        self._pending: dict[str, tuple[Key, int, float]] = {}  # id -> (key, down, sent at)
        self._sent: set[Key] = set()  # pending keys
        self._needed: dict[Key, float] = {}  # pending keys the scheduler waits on -> since
        self.arrivals = 0  # results received so far
        self._slot = 0  # the next send's first slot (streaming: spread over the slots)

    def known(self, key: Key) -> bool:
        """Whether the job's result is in hand."""
        return key in self._kept

    def waiting(self, key: Key) -> bool:
        """Whether the job is sent and not answered yet."""
        return key in self._sent

    def result(self, key: Key) -> Trained:
        """A known job's result, kept (the lookahead places it in its plan)."""
        return self._kept[key]

    def take(self, key: Key) -> Trained:
        """A known job's result, handed to the scheduler that starts the job."""
        return self._kept.pop(key)

    def need(self, keys: list[Key]) -> None:
        """The scheduler waits on these jobs: their timeouts run from now at the latest."""
        now = time.monotonic()
        for k in keys:
            if k in self._sent:
                self._needed.setdefault(k, now)

    def send(self, jobs: list[Job]) -> None:
        """Send `jobs` (none known or waiting); blocking grids return with them known."""
        if not jobs:
            return
        if not self.streams:
            messages = self.build(jobs, 0)
            attempt = collect(self.grid, messages, self.timeout)
            got = {u.partition_id: u for u in attempt.updates}  # a send names a client once
            for j, m in zip(jobs, messages, strict=True):
                self._keep(j.key, Trained(got.get(j.pid), nbytes(m.content)))
            return
        messages = self.build(jobs, self._slot)
        self._slot += len(messages)
        ids = set(self.grid.push_messages(messages))
        sent_at = time.monotonic()
        for j, m in zip(jobs, messages, strict=True):
            down = nbytes(m.content)
            mid = m.metadata.message_id
            if mid in ids:
                self._pending[mid] = (j.key, down, sent_at)
                self._sent.add(j.key)
            else:  # the Grid refused to store it: it will never be answered
                self._keep(j.key, Trained(None, down))

    def receive(self, wait: bool) -> int:
        """Take in the replies that have arrived (with `wait`, wait for at least one or
        a needed job's timeout); returns how many results became known."""
        if not self._pending:
            return 0
        while True:
            got = list(self.grid.pull_messages(list(self._pending)))
            for reply in got:
                entry = self._pending.pop(reply.metadata.reply_to_message_id, None)
                if entry is None:
                    continue
                key, down, _ = entry
                u = None if reply.has_error() else ClientUpdate.from_reply(reply)
                if u is not None and u.partition_id != key[0]:
                    u = None  # answered as another client: a failure, as a blocking send
                self._keep(key, Trained(u, down))
            late = self._late(time.monotonic())
            for mid in late:  # no reply within the timeout: a failure
                key, down, _ = self._pending.pop(mid)
                self._keep(key, Trained(None, down))
            if got or late or not wait or not self._pending:
                return len(got) + len(late)
            time.sleep(self._interval)

    def _late(self, now: float) -> list[str]:
        late = []
        for mid, (key, _, sent_at) in self._pending.items():
            since = self._needed.get(key)
            if since is not None and max(sent_at, since) + self.timeout <= now:
                late.append(mid)
        return late

    def forget_before(self, now: float) -> int:
        """Drop the jobs that started before `now` (never to be used): kept results, and
        sent ones no longer pulled for; returns how many trainings were wasted."""
        stale = [k for k in self._kept if k[2] < now]
        for k in stale:
            del self._kept[k]
        gone = [mid for mid, (k, _, _) in self._pending.items() if k[2] < now]
        for mid in gone:
            key = self._pending.pop(mid)[0]
            self._sent.discard(key)
            self._needed.pop(key, None)
        return len(stale) + len(gone)

    def _keep(self, key: Key, trained: Trained) -> None:
        self._sent.discard(key)
        self._needed.pop(key, None)
        self._kept[key] = trained
        self.arrivals += 1
