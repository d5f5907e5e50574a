"""The run's virtual clock: how long each update takes, which are late or dropped.

Nothing sleeps. A client update's virtual duration comes from its device
(learning/devices.py) and the real message sizes: compute(examples x local epochs) +
bytes down / down + bytes up / up + latency, plus `fault-straggler-delay` when the
(pure) straggler draw hits, which is what the client would have slept. Availability
(learning/availability.py) says who is online; a client that goes offline before its
update is done drops out.

Synchronous rounds (`round_policy`):
- `sync`: the round lasts until the slowest client answers (a barrier).
- `deadline`: the server stops waiting at `round-deadline` seconds; updates finishing
  later are discarded (late). With `over-selection` > 1 the round samples more clients
  and keeps the first `clients-per-round` to finish (ties: partition id); the others
  are discarded as late too, and the round ends when the last kept one arrives.

A retry (top-up) starts when the previous attempt's last client is done, so it costs
virtual time like any other update. Utilisation = busy client-seconds / client-seconds
the round held its clients (from their start to the round's end).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from learning.availability import Availability
from learning.config import ExperimentConfig
from learning.devices import DeviceModel
from learning.streams import fault_draw
from server.pipeline.collect import Cohort
from server.pipeline.updates import ClientUpdate


@dataclass(frozen=True)
class RoundTime:
    kept: list[ClientUpdate]  # the valid updates in time, in the cohort's order
    late: int
    offline: int
    seconds: float
    busy: float
    held: float

    def row(self, virtual_seconds: float) -> dict[str, float | int]:
        return {
            "virtual_seconds": round(virtual_seconds, 6),
            "virtual_round_seconds": round(self.seconds, 6),
            "utilisation": round(self.busy / self.held, 6) if self.held > 0 else None,
            "late_updates": self.late,
            "offline_dropouts": self.offline,
        }


class Clock:
    """Virtual seconds of a run (`now`) and the timing of its updates."""

    def __init__(self, cfg: ExperimentConfig, num_clients: int) -> None:
        d, fed = cfg.devices, cfg.federation
        self.devices = DeviceModel(d, fed.seed, num_clients)
        self.availability = Availability(d, fed.seed, num_clients)
        self.epochs, self.seed = cfg.train.local_epochs, fed.seed
        self.straggle_p, self.straggle_s = (
            cfg.attack.fault_straggler_prob,
            cfg.attack.fault_straggler_delay,
        )
        self.deadline = d.round_deadline if d.round_policy == "deadline" else math.inf
        self.keep = fed.clients_per_round if d.over_selection > 1.0 else None
        self.now = 0.0

    def online(self, pid: int) -> bool:
        return self.availability.online(pid, self.now)

    def seconds(self, pid: int, examples: int, bytes_down: int, bytes_up: int, rnd: int) -> float:
        """Virtual duration of one update that trained on `examples` (per epoch)."""
        s = self.devices(pid).duration(examples, self.epochs, bytes_down, bytes_up)
        if self.straggle_p > 0 and fault_draw(self.seed, rnd, pid, "straggler") < self.straggle_p:
            s += self.straggle_s
        return s

    def failed_seconds(self, pid: int, bytes_down: int) -> float:
        """How long until the server learns an update failed: its download and latency."""
        dev = self.devices(pid)
        return bytes_down / dev.down + dev.latency

    def drops_out(self, pid: int, start: float, finish: float) -> bool:
        """Whether the client goes offline between `start` and `finish` (run seconds)."""
        until = self.availability.online_until(pid, start)
        return until is None or until < finish

    def round(
        self,
        rnd: int,
        attempts: Sequence[tuple[list[int], int]],
        cohort: Cohort,
        drop: bool = True,
    ) -> RoundTime:
        """Time a synchronous round whose attempts were `(partition ids, bytes down)`;
        `drop=False` (SecAgg+) times it without discarding anything."""
        answered = {u.partition_id: u for u in cohort.answered}
        valid_ids = {id(u) for u in cohort.valid}
        start, spans, finish_of = 0.0, [], {}
        late_ids, offline_ids = set(), set()
        for pids, bytes_down in attempts:
            end = start
            for pid in pids:
                u = answered.get(pid)
                if u is None:
                    f = start + self.failed_seconds(pid, bytes_down)
                else:
                    f = start + self.seconds(pid, u.num_examples, bytes_down, u.nbytes, rnd)
                    if self.drops_out(pid, self.now + start, self.now + f):
                        offline_ids.add(pid)
                        until = self.availability.online_until(pid, self.now + start)
                        f = start if until is None else until - self.now
                    elif id(u) in valid_ids:
                        finish_of[pid] = f
                spans.append((start, f))
                end = max(end, f)
            start = end
        seconds = start
        if self.deadline < math.inf:
            on_time = sorted((f, p) for p, f in finish_of.items() if f <= self.deadline)
            late_ids = {p for p, f in finish_of.items() if f > self.deadline}
            if self.keep is not None and len(on_time) > self.keep:
                late_ids |= {p for _, p in on_time[self.keep :]}
                on_time = on_time[: self.keep]
            if late_ids or seconds > self.deadline:
                seconds = (
                    on_time[-1][0] if self.keep and len(on_time) == self.keep else self.deadline
                )
        busy = sum(min(f, seconds) - s for s, f in spans if s < seconds)
        held = sum(seconds - s for s, _ in spans if s < seconds)
        gone = (late_ids | offline_ids) if drop else set()
        kept = [u for u in cohort.valid if u.partition_id not in gone]
        self.now += seconds
        return RoundTime(kept, len(late_ids), len(offline_ids), seconds, busy, held)
