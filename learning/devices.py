"""Client devices on the virtual clock: compute speed and links, pure and seeded.

A device is (speed: seconds per example per local epoch, up / down: bytes/s, latency: s).
An update's virtual duration is

    speed * examples * epochs + bytes_down / down + bytes_up / up + latency (+ straggler)

with the real message sizes. Profiles (`device-profile`):

- `uniform`: every client has the median device (example-seconds, up-bandwidth,
  down-bandwidth, latency);
- `lognormal`: speed and both bandwidths are the medians times exp(sigma * z), z standard
  normal from the client's own stream (DEVICE, client), so a client's device never
  depends on who else exists; latency stays the median;
- `file`: a CSV `client,speed,up,down,latency` (device-file), one row per client.

On top of uniform or lognormal, a `slow-fraction` of clients (their own uniform draw)
compute `slow-factor` times slower. A device is drawn when first asked for (O(1) per
client, no population scan) and cached.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from learning.config_schema import DevicesConfig
from learning.errors import ConfigError
from learning.streams import Tag, generator

DEVICE_COLUMNS = ("client", "speed", "up", "down", "latency")


@dataclass(frozen=True)
class Device:
    speed: float  # seconds per example per local epoch
    up: float  # bytes/s
    down: float  # bytes/s
    latency: float  # seconds per update

    def duration(self, examples: int, epochs: int, bytes_down: int, bytes_up: int) -> float:
        """Virtual seconds of one update (compute + both transfers + latency)."""
        return (
            self.speed * examples * epochs
            + bytes_down / self.down
            + bytes_up / self.up
            + self.latency
        )


class DeviceModel:
    """Every client's device under one profile (seeded by the run's seed)."""

    def __init__(self, cfg: DevicesConfig, seed: int, num_clients: int) -> None:
        self.cfg, self.seed, self.num_clients = cfg, seed, num_clients
        self.table = (
            read_device_file(cfg.device_file, num_clients) if cfg.device_profile == "file" else None
        )
        self._cache: dict[int, Device] = {}

    def __call__(self, pid: int) -> Device:
        d = self._cache.get(pid)
        if d is None:
            d = self._cache[pid] = self._draw(pid)
        return d

    def _draw(self, pid: int) -> Device:
        c = self.cfg
        if self.table is not None:
            return self.table[pid]
        speed, up, down = c.example_seconds, c.up_bandwidth, c.down_bandwidth
        rng = generator(self.seed, Tag.DEVICE, pid)
        z = rng.standard_normal(3)  # always drawn in this order: speed, up, down
        slow = rng.random() < c.slow_fraction
        if c.device_profile == "lognormal":
            s = c.speed_sigma
            speed *= math.exp(s * z[0])
            up *= math.exp(s * z[1])
            down *= math.exp(s * z[2])
        if slow:
            speed *= c.slow_factor
        return Device(speed, up, down, c.latency)


def read_device_file(path: str, num_clients: int) -> dict[int, Device]:
    """The devices of a `client,speed,up,down,latency` CSV; a one-line ConfigError for a
    missing file or column, a bad number, a negative or zero speed/bandwidth, an unknown
    or repeated client id, or a client of the federation without a row."""
    return dict(_read_device_file(str(path), _mtime(path), num_clients))


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        raise ConfigError(f"device-file {path!r} does not exist") from None


@lru_cache(maxsize=8)
def _read_device_file(path: str, mtime: float, num_clients: int) -> tuple[tuple[int, Device], ...]:
    rows = read_csv(path, "device-file", DEVICE_COLUMNS)
    out: dict[int, Device] = {}
    for line, row in rows:
        pid = client_id(row["client"], num_clients, "device-file", path, line)
        if pid in out:
            raise ConfigError(f"device-file {path!r} line {line}: client {pid} appears twice")
        speed, up, down, lat = (
            number(row[k], k, "device-file", path, line) for k in DEVICE_COLUMNS[1:]
        )
        if speed < 0 or lat < 0:
            raise ConfigError(f"device-file {path!r} line {line}: speed and latency must be >= 0")
        if up <= 0 or down <= 0:
            raise ConfigError(f"device-file {path!r} line {line}: up and down must be > 0 bytes/s")
        out[pid] = Device(speed, up, down, lat)
    missing = [p for p in range(num_clients) if p not in out]
    if missing:
        raise ConfigError(
            f"device-file {path!r} has no row for {len(missing)} client(s), e.g. {missing[0]}"
        )
    return tuple(sorted(out.items()))


def read_csv(path: str, key: str, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV with a header holding at least `columns`."""
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            lacking = [c for c in columns if c not in header]
            if lacking:
                raise ConfigError(
                    f"{key} {path!r} lacks column(s) {', '.join(lacking)}; "
                    f"expected a header {','.join(columns)}"
                )
            return [
                (i, {k.strip(): (v or "").strip() for k, v in row.items() if k is not None})
                for i, row in enumerate(reader, start=2)
            ]
    except OSError as exc:
        raise ConfigError(f"{key} {path!r} cannot be read ({exc.strerror})") from None


def number(text: str, column: str, key: str, path: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"{key} {path!r} line {line}: {column} {text!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise ConfigError(f"{key} {path!r} line {line}: {column} must be finite")
    return value


def client_id(text: str, num_clients: int, key: str, path: str, line: int) -> int:
    try:
        pid = int(text)
    except ValueError:
        raise ConfigError(f"{key} {path!r} line {line}: client {text!r} is not an id") from None
    if not 0 <= pid < num_clients:
        raise ConfigError(
            f"{key} {path!r} line {line}: unknown client {pid} (ids are 0..{num_clients - 1})"
        )
    return pid
