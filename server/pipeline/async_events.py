"""The asynchronous scheduler's events and its server step, pure and shared.

The scheduler (server/pipeline/async_scheduler.py) and its lookahead
(server/pipeline/async_lookahead.py) both advance the same state with these, so a
simulated future and the real one take bit-identical server steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from learning.config_schema import StrategyConfig
from server.pipeline.updates import ClientUpdate, validity
from strategies.fedasync import fedasync_mix, staleness_weight
from strategies.fedbuff import fedbuff_step

Key = tuple[int, int, float, bytes]  # a training job: (pid, version, start, model digest)

# "update", "failed" (error, no reply, refused), "offline", "wake" (an idle slot looks
# again), "planned" (lookahead only: a client whose result is not known yet)
KINDS = ("update", "failed", "offline", "wake", "planned")


@dataclass
class InFlight:
    finish: float
    pid: int
    start_version: int
    start: float
    kind: str
    update: ClientUpdate | None = None
    delta: tuple[np.ndarray, ...] | None = None  # FedBuff: y - x(start version)
    job: Key | None = None  # lookahead only: the job the event belongs to

    @property
    def key(self) -> tuple[float, int]:
        return (self.finish, self.pid)

    def __lt__(self, other: InFlight) -> bool:
        return self.key < other.key


@dataclass(frozen=True)
class Step:
    """What one finished update does: a new model (None: FedBuff's buffer not full yet)."""

    model: list[np.ndarray] | None
    buffer: list[InFlight]
    applied: list[InFlight]
    staleness: list[int]


def server_step(
    sc: StrategyConfig,
    version: int,
    buffer: Sequence[InFlight],
    e: InFlight,
    before: Callable[[], list[np.ndarray]],
) -> Step:
    """FedAsync mixes `e` in; FedBuff buffers it and steps every `fedbuff-k` updates.
    `before()` gives the current model (called only when a step is taken)."""
    staleness = version - e.start_version
    if sc.strategy == "fedasync":
        a = sc.fedasync_alpha * staleness_weight(
            sc.staleness, staleness, sc.staleness_exponent, sc.staleness_hinge
        )
        return Step(fedasync_mix(before(), e.update.arrays, a), list(buffer), [e], [staleness])
    full = [*buffer, e]
    if len(full) < sc.fedbuff_k:
        return Step(None, full, [], [])
    stal = [version - b.start_version for b in full]
    x = fedbuff_step(before(), [b.delta for b in full], stal, sc.server_lr)
    return Step(x, [], full, stal)


def fedbuff_delta(y: Sequence[np.ndarray], x: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """y - x in float64, stored in x's dtypes (what FedBuff buffers)."""
    return tuple(
        (np.asarray(yi, np.float64) - xi).astype(xi.dtype) for yi, xi in zip(y, x, strict=True)
    )


def outcome(
    clock: Any,
    shapes: Sequence[tuple[int, ...]],
    pid: int,
    version: int,
    now: float,
    update: ClientUpdate | None,
    down: int,
    x: Sequence[np.ndarray] | None,
) -> tuple[InFlight, bool]:
    """The event a client started at `now` from `version` ends in, given its reply
    (None: an error or no reply) and the model it started from (`x`, FedBuff only):
    (the event, whether the reply was refused). The scheduler and its lookahead both
    call it, so a known result is placed identically in the real and the planned future."""
    refused = update is not None and validity(update, shapes) is not None
    if update is None or refused:
        return InFlight(now + clock.failed_seconds(pid, down), pid, version, now, "failed"), refused
    finish = now + clock.seconds(pid, update.num_examples, down, update.nbytes, version + 1)
    if clock.drops_out(pid, now, finish):
        until = clock.availability.online_until(pid, now)
        return InFlight(now if until is None else until, pid, version, now, "offline"), False
    delta = fedbuff_delta(update.arrays, x) if x is not None else None
    return InFlight(finish, pid, version, now, "update", update, delta), False
