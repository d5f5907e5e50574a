"""Schedulers drive the stages. `SyncScheduler` is today's barrier: each round samples,
dispatches, waits for every reply (topping up clients that failed, up to max-retries),
aggregates, evaluates and hands the row to the observers. A deadline or asynchronous
scheduler implements `Scheduler.run` over the same stages."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from flwr.app import ArrayRecord
from flwr.serverapp import Grid

from privacy.accounting import privacy_row
from server.pipeline import records
from server.pipeline.clock import RoundTime
from server.pipeline.collect import Cohort, collect, collect_pooled, collect_secure
from server.pipeline.dispatch import nbytes
from server.pipeline.evaluate import RoundEvaluator
from server.pipeline.observers import Observers
from server.pipeline.setup import Stages


@dataclass
class LoopResult:
    weights: list[np.ndarray]
    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0


@dataclass
class LoopState:
    """Where a run stands between rounds (what a checkpoint restores)."""

    arrays: ArrayRecord  # the global model
    next_round: int
    rows: list[dict[str, Any]]
    started: float  # perf_counter of the run's start (resumed: minus the time already spent)


class Scheduler(Protocol):
    def run(self, state: LoopState) -> LoopResult: ...


class SyncScheduler:
    """Lock-step rounds: a barrier per round, retries top up."""

    def __init__(
        self, grid: Grid, stages: Stages, evaluate: RoundEvaluator, observers: Observers
    ) -> None:
        self.grid, self.s, self.evaluate, self.observers = grid, stages, evaluate, observers
        # This round's attempts on the clock: (partition ids, bytes sent to each).
        self.attempts: list[tuple[list[int], int]] = []
        self.unavailable = 0  # drawn (Poisson) but offline: dropped after the draw

    def _online(self, pids: list[int]) -> list[int]:
        """Central DP draws over everyone; the offline ones are dropped after the draw."""
        clock = self.s.clock
        if clock.availability.always:
            return pids
        online = [p for p in pids if clock.online(p)]
        self.unavailable += len(pids) - len(online)
        return online

    def _send(self, rnd: int, arrays: ArrayRecord, pids: list[int]) -> list:
        messages = self.s.dispatch(rnd, arrays, pids)
        self.attempts.append((list(pids), nbytes(messages[0].content) if messages else 0))
        return messages

    def run(self, state: LoopState) -> LoopResult:
        for rnd in range(state.next_round, self.s.fed.rounds + 1):
            self.step(state, rnd)
        return LoopResult(
            weights=state.arrays.to_numpy_ndarrays(),
            rows=state.rows,
            wall_seconds=time.perf_counter() - state.started,
        )

    def gather(self, rnd: int, arrays: ArrayRecord) -> Cohort:
        """sample -> dispatch -> collect, with top-ups while short of min-clients."""
        s = self.s
        self.attempts, self.unavailable = [], 0
        if s.dealer is not None and s.cfg.deploy.deploy_late_joiners:
            self._admit()
        fed = s.fed
        pids = self._online(s.sampling.draw(rnd))
        if s.secure is not None:
            cohort = collect_secure(s.secure, self.grid, self._send(rnd, arrays, pids), rnd)
            cohort.tried.update(pids)
            return cohort
        cohort = Cohort()
        while True:
            # First attempt: the round's sample. A retry tops up: it asks as many fresh
            # clients (seeded by round and attempt, never one already tried) as are missing.
            cohort.tried.update(pids)
            sent = self._send(rnd, arrays, pids)
            if s.pooling is not None:
                cohort.pooled = True
                attempt = collect_pooled(self.grid, sent, fed.timeout, s.pooling, s.shapes)
            elif s.node_faults is not None:  # a deployment: nodes die and come back
                attempt = s.node_faults.collect(self.grid, sent)
            else:
                attempt = collect(self.grid, sent, fed.timeout)
            cohort.add(attempt, s.shapes)
            useful = len(cohort.useful())
            cohort.enough = useful >= fed.min_clients or not s.sampling.tops_up
            if cohort.enough or fed.too_few == "skip" or cohort.retries >= s.max_retries:
                return cohort
            cohort.retries += 1
            pids = s.sampling.top_up(rnd, cohort.retries, cohort.tried, fed.min_clients - useful)
            if not pids:
                return cohort

    def _admit(self) -> None:
        """Deployment with late joiners: nodes that connected since the last round join
        the population (config_deploy.check_late_joiners refuses what this would break),
        and the seeded draw is over the larger population from this round on."""
        s = self.s
        joined = s.dealer.admit(self.grid, s.run_dir)
        if joined:
            n = len(s.dealer.node_ids)
            s.fed = dataclasses.replace(s.fed, num_clients=n)
            s.sampling = dataclasses.replace(s.sampling, num_clients=n)
            s.node_faults.joined(joined)

    def time_round(self, rnd: int, cohort: Cohort) -> RoundTime:
        """Advance the clock by the round; late and offline updates leave `cohort.valid`
        (they are discarded before aggregation, and counted)."""
        timed = self.s.clock.round(rnd, self.attempts, cohort, drop=self.s.secure is None)
        if len(timed.kept) != len(cohort.valid):
            cohort.valid = timed.kept
        return timed

    def step(self, state: LoopState, rnd: int) -> dict[str, Any]:
        """One round; updates `state` and returns the released row."""
        t0 = time.perf_counter()
        start = self.s.clock.now
        before = state.arrays.to_numpy_ndarrays()
        cohort = self.gather(rnd, state.arrays)
        timed = self.time_round(rnd, cohort)
        valid = self.s.aggregate.prepare(cohort, before)
        if self.s.continual is not None:  # FOT: reports out of the updates, basis grown
            valid = self.s.continual.take(valid)
        t1 = time.perf_counter()
        health, norms = records.health(before, valid, cohort.pool)
        t_health = time.perf_counter()
        outcome = self.s.aggregate(rnd, valid, cohort, before)
        if outcome.arrays is not None:
            state.arrays = outcome.arrays
        t2 = time.perf_counter()
        weights = state.arrays.to_numpy_ndarrays()
        if self.s.continual is not None:  # TARGET: a task's synthetic set at its end
            self.s.continual.after_round(rnd, weights)
        health["global_update_norm"] = records.global_update_norm(before, weights)
        evaluation = self.evaluate(rnd, weights, (start, self.s.clock.now))
        if self.s.local_eval is not None:  # local-eval: on the clients, its own schedule
            evaluation.update(self.s.local_eval(rnd, state.arrays))
        t3 = time.perf_counter()
        timings = records.Timings(t0, t1, t_health, t2, t3).row(state.started)
        privacy = privacy_row(self.s.private_cfg, self.s.strategy)
        row = records.round_row(rnd, evaluation, valid, health, privacy, cohort, outcome, timings)
        row.update(timed.row(self.s.clock.now), unavailable=self.unavailable)
        if self.s.node_faults is not None:
            row.update(self.s.node_faults.take())
        if self.s.continual is not None:
            row.update(self.s.continual.row())
        state.next_round = rnd + 1
        return self.observers(rnd, row, weights, norms, state.rows)
