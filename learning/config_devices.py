"""The `[devices]` section: the virtual clock's device speeds and links, availability
and round policy (docs/time.md). Its own module so config_schema.py stays one job per
screen; config_schema.SECTIONS lists it, and its keys are CLOCK_KEYS there (left out of
messages and the digest at their defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

from learning.config_field import key_field as _k

DEVICE_PROFILES = ("uniform", "lognormal", "file")
AVAILABILITY_NAMES = ("always", "diurnal", "file")
ROUND_POLICIES = ("sync", "deadline")


@dataclass(frozen=True)
class DevicesConfig:
    """The virtual clock: device speeds and links, availability, round policy."""

    device_profile: str = _k(
        "uniform",
        "client devices: uniform (all alike), lognormal (speeds and links, sigma), "
        "file (device-file)",
        choices=DEVICE_PROFILES,
    )
    example_seconds: float = _k(
        0.002, "compute: median seconds per example per local epoch", gt=0.0
    )
    up_bandwidth: float = _k(1.25e6, "median upload bandwidth, bytes/s", gt=0.0)
    down_bandwidth: float = _k(5.0e6, "median download bandwidth, bytes/s", gt=0.0)
    latency: float = _k(0.05, "median link latency per update, seconds", min=0.0)
    speed_sigma: float = _k(0.5, "lognormal profile: sigma of log speed and log bandwidth", min=0.0)
    slow_fraction: float = _k(
        0.0, "share of clients whose compute is slow-factor slower", min=0.0, max=1.0
    )
    slow_factor: float = _k(10.0, "how many times slower a slow client computes", min=1.0)
    device_file: str = _k("", "CSV client,speed,up,down,latency (s/example-epoch, bytes/s, s)")
    availability: str = _k(
        "always",
        "when clients are online: always, diurnal (period, duty cycle, seeded phase), "
        "file (availability-file)",
        choices=AVAILABILITY_NAMES,
    )
    availability_file: str = _k("", "CSV client,start,end of online intervals (virtual seconds)")
    diurnal_period: float = _k(86400.0, "diurnal availability: period, virtual seconds", gt=0.0)
    duty_cycle: float = _k(
        0.5, "diurnal availability: share of each period online", gt=0.0, max=1.0
    )
    round_policy: str = _k(
        "sync",
        "sync: wait for every client; deadline: stop at round-deadline",
        choices=ROUND_POLICIES,
    )
    round_deadline: float = _k(60.0, "deadline policy: virtual seconds a round waits", gt=0.0)
    over_selection: float = _k(
        1.0, "deadline policy: sample this many times clients-per-round, keep the first", min=1.0
    )
    concurrency: int = _k(10, "asynchronous strategies: clients training at once", min=1)
