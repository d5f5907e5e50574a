"""Train ahead for the asynchronous scheduler, without changing a result.

Run one event at a time, FedAsync and FedBuff start one client per freed slot, so the
workers would get one client per send and stand idle. Instead, whenever a client must be
trained, the lookahead simulates the scheduler forward from its current state: the same
seeded picks, the same server steps (server/pipeline/async_events.py) on the updates
already in hand, and for each client it starts either its result, if that is already
known (the same event the scheduler will place), or an *estimated* finish time (its
device and the examples it reported last time). It stops at the first event whose result
it does not know (FedAsync: the next finish not yet trained; FedBuff: the next server
step that needs such a client's update, since the model stays put until the buffer is
full), or at `limit` clients not yet trained, and sends every client it would start.

Results are kept under everything they depend on (server/pipeline/async_trainings.py);
the scheduler uses a kept result only when it starts exactly that job, so a wrong guess
(a client finished sooner than estimated, a failure) costs the training it wasted, never
a metric. Where the Grid streams, the lookahead plans again as soon as the result it
stopped at arrives and sends the next clients while the workers still train the last
ones. Speculative and one-at-a-time runs are identical bit for bit
(tests/server/test_async.py), and the workers are rarely idle.

Off where a client keeps state between updates (continual methods other than
`finetune`: a training thrown away would already have written it).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message

from server.pipeline.async_events import InFlight, Key, outcome, server_step
from server.pipeline.async_trainings import Job, Trained, Trainings, model_digest


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
class Plan:
    jobs: list[Job]  # the clients the scheduler would start after the first ones
    # why it stopped, which says when planning again can go further: "blocker" (a result
    # not known yet: when it arrives), "limit" (too many clients not trained yet: when
    # any result arrives), "horizon" (far enough ahead: when the scheduler moves on),
    # "end" (the last server step, or a client named twice in a blocking send)
    why: str
    blocker: Key | None = None


class Lookahead:
    def __init__(self, scheduler: Any, limit: int) -> None:
        self.sch, self.limit = scheduler, limit
        self.trainings = Trainings(scheduler.grid, self._build, scheduler.s.fed.timeout)
        self.examples: dict[int, int] = {}  # last reported examples per client
        self.up = 0  # bytes of the last reply
        self._current: tuple[ArrayRecord, bytes, list[np.ndarray]] | None = None
        # planned server steps, by (model digest, version, the updates applied): every
        # plan replays the same known prefix, and a step's result is a pure function of these
        self._steps: dict[tuple, tuple[list[np.ndarray], bytes]] = {}
        self._deltas: dict[Key, tuple[np.ndarray, ...]] = {}  # FedBuff: known jobs' deltas
        self._sizes = None  # shard sizes for first guesses (None: not read yet)
        self._horizon = 2 * limit  # clients one plan may start, results in hand included
        self._last = Plan([], "horizon")  # the last plan (its stop)
        self._planned_at = -1  # arrivals when the last plan was made

    def hold(self, arrays: ArrayRecord, x: list[np.ndarray]) -> None:
        """The scheduler's new model, as the record it sends and the arrays it came from
        (so nobody unpacks the record again: an asynchronous run steps per update)."""
        self._current = (arrays, model_digest(x), x)

    def numpy(self, arrays: ArrayRecord) -> list[np.ndarray]:
        """The current model's arrays (read-only: every user computes new ones)."""
        return self._model(arrays)[2]

    def _model(self, arrays: ArrayRecord) -> tuple[ArrayRecord, bytes, list[np.ndarray]]:
        """(arrays, digest, NumPy copy) of the scheduler's current model, computed once."""
        if self._current is None or self._current[0] is not arrays:
            x = arrays.to_numpy_ndarrays()
            self._current = (arrays, model_digest(x), x)
        return self._current

    def results(self, pids: list[int], arrays: ArrayRecord) -> dict[int, Trained]:
        """The training results of `pids` starting now from `arrays` (current version)."""
        s, t = self.sch, self.trainings
        now, d = s.s.clock.now, self._model(arrays)[1]
        jobs = [Job(p, s.version, now, arrays, d) for p in pids]
        t.receive(wait=False)
        advanced = True  # the scheduler moved on since the last call
        while True:
            unsent = [j for j in jobs if not t.known(j.key) and not t.waiting(j.key)]
            if unsent or self._stale_plan(advanced):
                self._send_ahead(pids, arrays, unsent)
            advanced = False
            missing = [j.key for j in jobs if not t.known(j.key)]
            if not missing:
                break
            t.need(missing)
            t.receive(wait=True)
        out = {j.pid: t.take(j.key) for j in jobs}
        t.forget_before(now)
        self._deltas = {k: v for k, v in self._deltas.items() if k[2] >= now}
        for r in out.values():
            if r.update is not None:
                self.examples[r.update.partition_id] = r.update.num_examples
                self.up = r.update.nbytes
        return out

    def _stale_plan(self, advanced: bool) -> bool:
        """Whether planning again can go further than the last plan did."""
        t, last = self.trainings, self._last
        if not t.streams or last.why == "end":
            return False
        if last.why == "horizon":
            return advanced
        if t.arrivals == self._planned_at:
            return False
        return last.why == "limit" or t.known(last.blocker)

    def _send_ahead(self, pids: list[int], arrays: ArrayRecord, unsent: list[Job]) -> None:
        """Send `unsent` (the scheduler needs them now) and the plan's new jobs."""
        t = self.trainings
        plan = self.plan(pids, arrays) if self.limit > len(pids) else Plan([], "end")
        self._last, self._planned_at = plan, t.arrivals
        new = [j for j in plan.jobs if not t.known(j.key) and not t.waiting(j.key)]
        t.send([*unsent, *new])

    def _build(self, jobs: list[Job], slot: int) -> list[Message]:
        """One message per job, built per (version, start) as a fill would."""
        s, clock = self.sch, self.sch.s.clock
        saved, by_job = clock.now, {}
        groups: dict[tuple[int, float], list[Job]] = {}
        for j in jobs:
            groups.setdefault((j.version, j.start), []).append(j)
        try:
            for (version, start), group in groups.items():
                clock.now = start  # the message's virtual-time (continual on the clock)
                pids = [j.pid for j in group]
                arrays = group[0].arrays
                if not isinstance(arrays, ArrayRecord):  # a planned version, made on demand
                    arrays = ArrayRecord(arrays)
                built = s.s.dispatch(version + 1, arrays, pids, slot + len(by_job))
                for j, m in zip(group, built, strict=True):
                    by_job[j.key] = m
        finally:
            clock.now = saved
        return [by_job[j.key] for j in jobs]

    def plan(self, first: list[int], arrays: ArrayRecord) -> Plan:
        """The jobs the scheduler would start after `first`, if every client whose
        result is not known yet finished when estimated; stops at the first such result
        that matters."""
        s, t = self.sch, self.trainings
        _, d, x = self._model(arrays)
        f = Frame(list(s.heap), list(s.buffer), s.version, s.batches, s.s.clock.now, x)
        record: ArrayRecord | list[np.ndarray] = arrays
        self._steps = {key: v for key, v in self._steps.items() if key[1] >= s.version}
        for p in first:
            heapq.heappush(f.heap, self._event(f, Job(p, f.version, f.now, record, d)))
        jobs: list[Job] = []
        unknown = 0
        named = set(first)  # a blocking send names a client once (replies match by client)
        k = s.sc.fedbuff_k if s.name == "fedbuff" else 1
        rounds = s.s.fed.rounds
        while True:
            if not f.heap or f.version >= rounds:  # the run ends at `rounds` server steps
                return Plan(jobs, "end")
            if unknown + len(first) >= self.limit:
                return Plan(jobs, "limit")
            if len(jobs) + len(first) >= self._horizon:
                return Plan(jobs, "horizon")
            e = heapq.heappop(f.heap)
            joins = e.kind in ("update", "planned")
            if joins and (
                (e.kind == "planned" and k == 1)
                or (len(f.buffer) + 1 >= k and any(b.kind == "planned" for b in [*f.buffer, e]))
            ):
                return Plan(jobs, "blocker", self._first_planned([*f.buffer, e]))
            f.now = e.finish
            if e.kind == "planned":  # FedBuff: it joins the buffer; the model is unchanged
                f.buffer = [*f.buffer, e]
            elif e.kind == "update":
                key = (d, f.version, *(_ident(b) for b in [*f.buffer, e]))
                hit = self._steps.get(key) if len(f.buffer) + 1 >= k else None
                if hit is None:
                    step = server_step(s.sc, f.version, f.buffer, e, lambda: f.model)
                    f.buffer = step.buffer
                    if step.model is not None:
                        model = [np.asarray(w) for w in step.model]
                        hit = self._steps[key] = (model, model_digest(model))
                else:
                    f.buffer = []
                if hit is not None:
                    f.version += 1
                    f.model, d = hit
                    record = f.model
                    if f.version >= rounds:
                        return Plan(jobs, "end")
            picks, f.batches, wake = s.choose(f.heap, f.batches, f.now)
            if not t.streams and named.intersection(picks):
                return Plan(jobs, "end")
            named.update(picks)
            if wake is not None:
                heapq.heappush(f.heap, wake)
            for p in picks:
                job = Job(p, f.version, f.now, record, d)
                jobs.append(job)
                unknown += not t.known(job.key)
                heapq.heappush(f.heap, self._event(f, job))

    @staticmethod
    def _first_planned(events: list[InFlight]) -> Key | None:
        for e in events:
            if e.kind == "planned":
                return e.job
        return None

    def _event(self, f: Frame, job: Job) -> InFlight:
        """The job's event in the planned future: its real one if its result is known,
        else a "planned" one at the estimated finish (carrying the job's key)."""
        sch, t = self.sch, self.trainings
        clock = sch.s.clock
        if t.known(job.key):
            r = t.result(job.key)
            # FedBuff's y - x(start) depends on the job alone: computed once, then reused
            cached = self._deltas.get(job.key)
            x = f.model if sch.name == "fedbuff" and cached is None else None
            e, _ = outcome(clock, sch.s.shapes, job.pid, f.version, f.now, r.update, r.down, x)
            if sch.name == "fedbuff" and e.kind == "update":
                e.delta = cached if cached is not None else e.delta
                self._deltas[job.key] = e.delta
            e.job = job.key
            return e
        n = self.examples.get(job.pid)
        if n is None:
            n = self._shard_size(job.pid)
        down = sum(w.nbytes for w in f.model)
        finish = f.now + clock.seconds(job.pid, n, down, self.up or down, f.version + 1)
        if clock.drops_out(job.pid, f.now, finish):  # as the scheduler would: it goes offline
            until = clock.availability.online_until(job.pid, f.now)
            end = f.now if until is None else until
            return InFlight(end, job.pid, f.version, f.now, "offline")
        return InFlight(finish, job.pid, f.version, f.now, "planned", job=job.key)

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


def _ident(e: InFlight) -> tuple:
    """What an update event's result depends on: a real event is the one started at
    (pid, version, time); a planned one also names its starting model (`job`)."""
    return (e.pid, e.start_version, e.start, e.job)
