"""Asynchronous aggregation on the virtual clock: FedAsync and FedBuff.

`concurrency` clients train at once. Clients run as real ClientApps through the Grid:
every client started at the same virtual instant from the same model version goes in one
`send_and_receive` (the workers train them side by side), and each reply is held until
its *virtual* finish time (learning/devices.py: compute + transfers + latency). Events are
processed in virtual completion order, ties broken by partition id, never in wall-clock
arrival order, so the same seed gives the same metrics bit for bit.

At each finished update (staleness s = server steps taken since its model was sent):
- FedAsync (strategies/fedasync.py): x <- (1 - a_s) x + a_s y, one server step;
- FedBuff (strategies/fedbuff.py): the update's delta joins the buffer; after
  `fedbuff-k` updates x <- x + server_lr * mean((1+s)^-0.5 delta), one server step.
Then the freed slot gets a new client (seeded: ASYNC_PICK by dispatch batch; online, not
in flight). A client that goes offline before it finishes drops out (counted); a failed
or refused client frees its slot when the server learns of it.

A metrics row is one server step (`rounds` = server steps; `eval-every` counts steps).
The row's `virtual_round_seconds` is the time since the previous step, `utilisation` the
busy share of the `concurrency` slots over it, `staleness_mean`/`staleness_max` over the
updates the step applied. The checkpoint after each step holds the clock, the dispatch
counter, the updates in flight (partition id, start version, start and finish times,
the held reply and FedBuff's delta) and the buffer, so `--resume` continues bit for bit.

Cost: O(log concurrency) per event (a heap); nothing scans the population.
"""

from __future__ import annotations

import heapq
import time
from types import MappingProxyType
from typing import Any

import numpy as np
from flwr.app import ArrayRecord
from flwr.serverapp import Grid

from learning.streams import Tag, generator
from privacy.accounting import privacy_row
from server.pipeline import records
from server.pipeline.aggregate import Aggregate
from server.pipeline.async_events import InFlight, outcome, server_step
from server.pipeline.async_lookahead import Lookahead
from server.pipeline.collect import Cohort
from server.pipeline.evaluate import RoundEvaluator
from server.pipeline.observers import Observers
from server.pipeline.sampling_policy import pick_online
from server.pipeline.scheduler import LoopResult, LoopState
from server.pipeline.setup import Stages
from server.pipeline.updates import ClientUpdate

IDLE_WAKE = 60.0  # virtual seconds an empty slot waits before looking for an online client


def speculates(cfg) -> bool:
    """Whether training ahead is safe: no client keeps state between its updates."""
    cl = cfg.continual
    return cl.scenario == "none" or cl.cl_method == "finetune"


class AsyncScheduler:
    def __init__(
        self,
        grid: Grid,
        stages: Stages,
        evaluate: RoundEvaluator,
        observers: Observers,
        restored: dict[str, Any] | None = None,
        lookahead: int | None = None,
    ) -> None:
        self.grid, self.s, self.evaluate, self.observers = grid, stages, evaluate, observers
        cfg = stages.cfg
        self.name, self.sc = cfg.strategy.strategy, cfg.strategy
        self.concurrency = cfg.devices.concurrency
        self.version = 0
        self.batches = 0  # fills so far (the ASYNC_PICK stream's field)
        self.heap: list[InFlight] = []
        self.buffer: list[InFlight] = []
        if lookahead is None:
            lookahead = 2 * self.concurrency if speculates(cfg) else 1
        self.ahead = Lookahead(self, lookahead)
        self._reset_step()
        observers.extra_state = self.snapshot
        if restored is not None:
            self.restore(restored)

    def _reset_step(self) -> None:
        self.failures = self.rejected = self.offline = 0
        self.bytes_sent = 0
        self.busy = 0.0
        self.step_started = self.s.clock.now
        self.last_event = self.s.clock.now
        self.tried: set[int] = set()

    # -- dispatch -------------------------------------------------------------------------
    def in_flight(self) -> int:
        return sum(1 for e in self.heap if e.kind != "wake")

    def choose(
        self, heap: list[InFlight], batches: int, now: float
    ) -> tuple[list[int], int, InFlight | None]:
        """The fill at `now` over `heap`: (clients for the free slots, the fill counter
        after it, a wake event to push or None). Pure: the lookahead calls it too."""
        free = self.concurrency - sum(1 for e in heap if e.kind != "wake")
        if free <= 0:
            return [], batches, None
        rng = generator(self.s.cfg.federation.seed, Tag.ASYNC_PICK, batches)
        online = self.s.clock.availability.online
        busy = {e.pid for e in heap}
        pids = pick_online(rng, self.s.fed.num_clients, free, busy, lambda p: online(p, now))
        wake = None
        if len(pids) < free and not any(e.kind == "wake" for e in heap):
            wake = InFlight(now + IDLE_WAKE, -1, -1, now, "wake")
        return pids, batches + 1, wake

    def fill(self, arrays: ArrayRecord) -> None:
        """Give every free slot a client, all from the current version."""
        clock = self.s.clock
        pids, self.batches, wake = self.choose(self.heap, self.batches, clock.now)
        if wake is not None:
            heapq.heappush(self.heap, wake)
        if not pids:
            return
        trained = self.ahead.results(pids, arrays)
        self.tried.update(pids)
        x = self.ahead.numpy(arrays) if self.name == "fedbuff" else None
        now = clock.now
        for pid in pids:
            u, down = trained[pid].update, trained[pid].down
            self.bytes_sent += down
            e, refused = outcome(clock, self.s.shapes, pid, self.version, now, u, down, x)
            self.rejected += refused
            heapq.heappush(self.heap, e)

    # -- the loop -------------------------------------------------------------------------
    def run(self, state: LoopState) -> LoopResult:
        rounds = self.s.fed.rounds
        guard = 0
        while self.version < rounds:
            self.fill(state.arrays)
            if not self.heap:
                break  # nobody can ever be online (availability file with no windows left)
            e = heapq.heappop(self.heap)
            clock = self.s.clock
            self.busy += self.in_flight_at_pop(e) * (e.finish - self.last_event)
            clock.now = self.last_event = e.finish
            if e.kind == "wake":
                continue
            if e.kind != "update":
                self.failures += e.kind == "failed"
                self.offline += e.kind == "offline"
                guard += 1
                if guard > 1000 * self.concurrency:
                    break  # every client fails: stop rather than loop forever
                continue
            guard = 0
            self.apply(state, e)
        return LoopResult(
            weights=state.arrays.to_numpy_ndarrays(),
            rows=state.rows,
            wall_seconds=time.perf_counter() - state.started,
        )

    def in_flight_at_pop(self, popped: InFlight) -> int:
        return self.in_flight() + (popped.kind != "wake")

    def apply(self, state: LoopState, e: InFlight) -> None:
        held: list[list[np.ndarray]] = []

        def before() -> list[np.ndarray]:
            held.append(self.ahead.numpy(state.arrays))
            return held[0]

        step = server_step(self.sc, self.version, self.buffer, e, before)
        self.buffer = step.buffer
        if step.model is not None:
            self.step(state, held[0], step.model, step.applied, step.staleness)

    def step(self, state, before, x, applied: list[InFlight], staleness: list[int]) -> None:
        t0 = time.perf_counter()
        self.version += 1
        rnd = self.version
        updates = [a.update for a in applied]
        health, norms = records.health(before, updates)
        model = [np.asarray(w) for w in x]
        state.arrays = ArrayRecord(model)
        self.ahead.hold(state.arrays, model)
        t1 = time.perf_counter()
        health["global_update_norm"] = records.global_update_norm(before, x)
        evaluation = self.evaluate(rnd, x, (self.step_started, self.s.clock.now))
        t2 = time.perf_counter()
        timings = records.Timings(t0, t0, t1, t1, t2).row(state.started)
        cohort = Cohort(
            tried=self.tried | {u.partition_id for u in updates},
            answered=list(updates),
            valid=list(updates),
            failures=self.failures,
            rejected=self.rejected,
            bytes_sent=self.bytes_sent,
        )
        privacy = privacy_row(self.s.private_cfg, self.s.strategy)
        row = records.round_row(
            rnd, evaluation, updates, health, privacy, cohort, Aggregate(state.arrays), timings
        )
        now = self.s.clock.now
        held = self.concurrency * (now - self.step_started)
        row.update(
            virtual_seconds=round(now, 6),
            virtual_round_seconds=round(now - self.step_started, 6),
            utilisation=round(self.busy / held, 6) if held > 0 else None,
            late_updates=0,
            offline_dropouts=self.offline,
            staleness_mean=float(np.mean(staleness)),
            staleness_max=int(max(staleness)),
        )
        state.next_round = rnd + 1
        self._reset_step()
        self.observers(rnd, row, list(x), norms, state.rows)

    # -- checkpoint -----------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON meta, arrays) of the clock and async state, after a server step."""
        arrays: dict[str, np.ndarray] = {}
        entries = []
        for where, items in (("heap", sorted(self.heap)), ("buffer", self.buffer)):
            for i, e in enumerate(items):
                tag = f"{where}/{i}"
                entry = {
                    "where": where,
                    "finish": e.finish,
                    "pid": e.pid,
                    "start_version": e.start_version,
                    "start": e.start,
                    "kind": e.kind,
                }
                if e.update is not None:
                    u = e.update
                    entry.update(node=u.node_id, metrics=dict(u.metrics), n=len(u.arrays))
                    for j, a in enumerate(u.arrays):
                        arrays[f"{tag}/y/{j}"] = np.asarray(a)
                    for j, a in enumerate(e.delta or ()):
                        arrays[f"{tag}/d/{j}"] = np.asarray(a)
                    entry["has_delta"] = e.delta is not None
                entries.append(entry)
        meta = {
            "now": self.s.clock.now,
            "version": self.version,
            "batches": self.batches,
            "entries": entries,
        }
        return meta, arrays

    def restore(self, saved: dict[str, Any]) -> None:
        meta, arrays = saved["meta"], saved["arrays"]
        self.s.clock.now = float(meta["now"])
        self.version, self.batches = int(meta["version"]), int(meta["batches"])
        self.heap, self.buffer = [], []
        for entry in meta["entries"]:
            e = InFlight(
                entry["finish"], entry["pid"], entry["start_version"], entry["start"], entry["kind"]
            )
            where = entry["where"]
            tag = f"{where}/{len(self.heap if where == 'heap' else self.buffer)}"
            if "metrics" in entry:
                y = tuple(arrays[f"{tag}/y/{j}"] for j in range(entry["n"]))
                for a in y:
                    a.flags.writeable = False
                e.update = ClientUpdate(
                    partition_id=entry["pid"],
                    node_id=entry["node"],
                    arrays=y,
                    metrics=MappingProxyType(dict(entry["metrics"])),
                )
                if entry["has_delta"]:
                    e.delta = tuple(arrays[f"{tag}/d/{j}"] for j in range(entry["n"]))
            (self.heap if where == "heap" else self.buffer).append(e)
        heapq.heapify(self.heap)
        self._reset_step()


def is_async(strategy: str) -> bool:
    from learning.config_schema import ASYNC_STRATEGIES

    return strategy in ASYNC_STRATEGIES
