"""Train ahead in batches for the asynchronous scheduler, without changing a result.

Run one event at a time, FedAsync and FedBuff start one client per freed slot, so the
workers would get one client per send and stand idle. Instead, whenever a client must be
trained, the lookahead simulates the scheduler forward from its current state: the same
seeded picks, the same server steps (server/pipeline/async_events.py) on the updates
already in hand, and for each client it starts an *estimated* finish time (its device
and the examples it reported last time). It stops at the first event whose result it
does not know (FedAsync: the next planned finish; FedBuff: the next server step that
needs a planned client's update, since the model stays put until the buffer is full), or
at `limit` clients, and trains every client it would start in one send.

Each result is kept under everything it depends on: (partition id, model version, start
time, digest of the model's bytes). The scheduler uses a kept result only when it starts
exactly that job; a wrong guess (a client finished sooner than estimated, a failure)
costs the training it wasted, never a metric. Speculative and one-at-a-time runs are
identical bit for bit (tests/server/test_async.py), and the number of sends drops.

Off where a client keeps state between updates (continual methods other than
`finetune`: a training thrown away would already have written it).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord

from server.pipeline.async_events import InFlight, server_step
from server.pipeline.collect import collect
from server.pipeline.dispatch import nbytes
from server.pipeline.updates import ClientUpdate

Key = tuple[int, int, float, bytes]  # (pid, version, start, model digest)


def model_digest(arrays: Sequence[np.ndarray]) -> bytes:
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


@dataclass
class Frame:
    """The scheduler's state the lookahead advances (copies; the real one is untouched)."""

    heap: list[InFlight]
    buffer: list[InFlight]
    version: int
    batches: int
    now: float
    model: list[np.ndarray]


@dataclass(frozen=True)
class Job:
    pid: int
    version: int
    start: float
    arrays: ArrayRecord
    digest: bytes

    @property
    def key(self) -> Key:
        return (self.pid, self.version, self.start, self.digest)


class Lookahead:
    def __init__(self, scheduler, limit: int) -> None:
        self.sch, self.limit = scheduler, limit
        self.kept: dict[Key, Trained] = {}
        self.examples: dict[int, int] = {}  # last reported examples per client
        self.up = 0  # bytes of the last reply
        self.sends = 0  # sends to the grid (a diagnostic: fewer is the point)
        self.wasted = 0  # speculative trainings never used
        self._digests: dict[int, tuple[ArrayRecord, bytes]] = {}
        self._sizes = None  # shard sizes for first guesses (None: not read yet)

    def digest(self, arrays: ArrayRecord) -> bytes:
        got = self._digests.get(id(arrays))
        if got is None or got[0] is not arrays:
            self._digests = {id(arrays): (arrays, model_digest(arrays.to_numpy_ndarrays()))}
            got = self._digests[id(arrays)]
        return got[1]

    def results(self, pids: list[int], arrays: ArrayRecord) -> dict[int, Trained]:
        """The training results of `pids` starting now from `arrays` (current version)."""
        s = self.sch
        now, d = s.s.clock.now, self.digest(arrays)
        jobs = [Job(p, s.version, now, arrays, d) for p in pids]
        missing = [j for j in jobs if j.key not in self.kept]
        if missing:
            ahead = self.plan(pids, arrays) if self.limit > len(pids) else []
            self.train(missing + [j for j in ahead if j.key not in self.kept])
        out = {j.pid: self.kept.pop(j.key) for j in jobs}
        stale = [k for k in self.kept if k[2] < now]
        self.wasted += len(stale)
        for k in stale:
            del self.kept[k]
        for t in out.values():
            if t.update is not None:
                self.examples[t.update.partition_id] = t.update.num_examples
                self.up = t.update.nbytes
        return out

    def train(self, jobs: list[Job]) -> None:
        """All `jobs` in one send: messages built per (version, start), as a fill would."""
        s, clock = self.sch, self.sch.s.clock
        saved, messages, down = clock.now, [], {}
        groups: dict[tuple[int, float], list[Job]] = {}
        for j in jobs:
            groups.setdefault((j.version, j.start), []).append(j)
        try:
            for (version, start), group in groups.items():
                clock.now = start  # the message's virtual-time (continual on the clock)
                pids = [j.pid for j in group]
                built = s.s.dispatch(version + 1, group[0].arrays, pids, len(messages))
                size = nbytes(built[0].content) if built else 0
                for j in group:
                    down[j.key] = size
                messages.extend(built)
        finally:
            clock.now = saved
        self.sends += 1
        attempt = collect(s.grid, messages, s.s.fed.timeout)
        got = {u.partition_id: u for u in attempt.updates}  # plan() names a client once
        for j in jobs:
            self.kept[j.key] = Trained(got.get(j.pid), down[j.key])

    def plan(self, first: list[int], arrays: ArrayRecord) -> list[Job]:
        """The jobs the scheduler would start after `first`, if every client started
        from here finished when estimated; stops at the first unknown result."""
        s = self.sch
        f = Frame(
            list(s.heap),
            list(s.buffer),
            s.version,
            s.batches,
            s.s.clock.now,
            arrays.to_numpy_ndarrays(),
        )
        record, d = arrays, self.digest(arrays)
        for p in first:
            heapq.heappush(f.heap, self._planned(f, p))
        jobs: list[Job] = []
        named = set(first)
        k = s.sc.fedbuff_k if s.name == "fedbuff" else 1
        while f.heap and len(jobs) + len(first) < self.limit:
            e = heapq.heappop(f.heap)
            joins = e.kind in ("update", "planned")
            if joins and (
                (e.kind == "planned" and k == 1)
                or (len(f.buffer) + 1 >= k and any(b.kind == "planned" for b in [*f.buffer, e]))
            ):
                break  # the next server step needs a result not known yet
            f.now = e.finish
            if e.kind == "planned":  # FedBuff: it joins the buffer; the model is unchanged
                f.buffer = [*f.buffer, e]
            elif e.kind == "update":
                step = server_step(s.sc, f.version, f.buffer, e, lambda: f.model)
                f.buffer = step.buffer
                if step.model is not None:
                    f.version += 1
                    f.model = [np.asarray(w) for w in step.model]
                    record, d = ArrayRecord(f.model), model_digest(f.model)
            picks, f.batches, wake = s.choose(f.heap, f.batches, f.now)
            if named.intersection(picks):
                break  # one send names a client once (its reply is matched by client)
            named.update(picks)
            if wake is not None:
                heapq.heappush(f.heap, wake)
            for p in picks:
                jobs.append(Job(p, f.version, f.now, record, d))
                heapq.heappush(f.heap, self._planned(f, p))
        return jobs

    def _planned(self, f: Frame, pid: int) -> InFlight:
        clock = self.sch.s.clock
        n = self.examples.get(pid)
        if n is None:
            n = self._shard_size(pid)
        down = sum(w.nbytes for w in f.model)
        finish = f.now + clock.seconds(pid, n, down, self.up or down, f.version + 1)
        if clock.drops_out(pid, f.now, finish):  # as the scheduler would: it goes offline
            until = clock.availability.online_until(pid, f.now)
            return InFlight(f.now if until is None else until, pid, f.version, f.now, "offline")
        return InFlight(finish, pid, f.version, f.now, "planned")

    def _shard_size(self, pid: int) -> int:
        """A first guess at a client's examples: its shard in simulation (the server can
        compute the partition; only a guess, never used for a result), else the median
        reported so far."""
        if self._sizes is None:
            try:
                from learning.federated_data import partitions_for

                self._sizes = partitions_for(self.sch.s.cfg)
            except Exception:  # deployment, or data the server cannot read: no guess
                self._sizes = ()
        if pid < len(self._sizes):
            return len(self._sizes[pid])
        seen = list(self.examples.values())
        return int(np.median(seen)) if seen else 0
