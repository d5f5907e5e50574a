"""When clients are online, over virtual time (seconds), pure and seeded.

- `always`: every client, all the time.
- `diurnal`: client i is online while (t + phase_i) mod period < duty_cycle * period,
  with period = `diurnal-period` (default 86400 s, a day), duty cycle = `duty-cycle`
  (default 0.5: online half of each period) and phase_i uniform in [0, period) from the
  client's own stream (AVAILABILITY, client). So at any time about duty-cycle of the
  population is online, and each client has one online window per period.
- `file`: a CSV `client,start,end` of online intervals (virtual seconds, start < end);
  a client without a row is never online.

`online(pid, t)` and `online_until(pid, t)` (the end of the window holding t) cost
O(1) (diurnal) or O(log intervals of the client) (file): nothing scans the population.
"""

from __future__ import annotations

import bisect
import math
from functools import lru_cache
from pathlib import Path

from learning.config_schema import DevicesConfig
from learning.devices import client_id, number, read_csv
from learning.errors import ConfigError
from learning.streams import Tag, generator

INTERVAL_COLUMNS = ("client", "start", "end")


class Availability:
    def __init__(self, cfg: DevicesConfig, seed: int, num_clients: int) -> None:
        self.kind, self.seed = cfg.availability, seed
        self.period, self.on = cfg.diurnal_period, cfg.duty_cycle * cfg.diurnal_period
        self.always = self.kind == "always" or (self.kind == "diurnal" and cfg.duty_cycle >= 1)
        self.intervals = (
            read_availability_file(cfg.availability_file, num_clients)
            if self.kind == "file"
            else {}
        )
        self._phase: dict[int, float] = {}

    def phase(self, pid: int) -> float:
        p = self._phase.get(pid)
        if p is None:
            p = self._phase[pid] = float(
                generator(self.seed, Tag.AVAILABILITY, pid).random() * self.period
            )
        return p

    def online(self, pid: int, t: float) -> bool:
        return self.online_until(pid, t) is not None

    def online_until(self, pid: int, t: float) -> float | None:
        """The end of the online window holding `t` (inf: never goes offline); None if
        the client is offline at `t`."""
        if self.always:
            return math.inf
        if self.kind == "diurnal":
            pos = (t + self.phase(pid)) % self.period
            return t + (self.on - pos) if pos < self.on else None
        starts, ends = self.intervals.get(pid, ((), ()))
        i = bisect.bisect_right(starts, t) - 1
        if i >= 0 and t < ends[i]:
            return ends[i]
        return None

    def fraction_online(self) -> float:
        """The long-run share of client-time online (diurnal: the duty cycle)."""
        if self.always:
            return 1.0
        if self.kind == "diurnal":
            return self.on / self.period
        return math.nan


def read_availability_file(
    path: str, num_clients: int
) -> dict[int, tuple[tuple[float, ...], tuple[float, ...]]]:
    """client -> (sorted starts, ends) of a `client,start,end` CSV; a one-line ConfigError
    for a missing column, an unknown client, a negative start or start >= end, or
    overlapping intervals of one client."""
    try:
        mtime = Path(path).stat().st_mtime
    except OSError:
        raise ConfigError(f"availability-file {path!r} does not exist") from None
    return dict(_read(str(path), mtime, num_clients))


@lru_cache(maxsize=8)
def _read(path: str, mtime: float, num_clients: int) -> tuple:
    key = "availability-file"
    per: dict[int, list[tuple[float, float]]] = {}
    for line, row in read_csv(path, key, INTERVAL_COLUMNS):
        pid = client_id(row["client"], num_clients, key, path, line)
        start = number(row["start"], "start", key, path, line)
        end = number(row["end"], "end", key, path, line)
        if start < 0 or end <= start:
            raise ConfigError(f"{key} {path!r} line {line}: need 0 <= start < end seconds")
        per.setdefault(pid, []).append((start, end))
    out = []
    for pid, spans in sorted(per.items()):
        spans.sort()
        for (_, e0), (s1, _) in zip(spans, spans[1:], strict=False):
            if s1 < e0:
                raise ConfigError(f"{key} {path!r}: client {pid} has overlapping intervals")
        out.append((pid, (tuple(s for s, _ in spans), tuple(e for _, e in spans))))
    return tuple(out)
