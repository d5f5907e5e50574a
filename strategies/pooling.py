"""Partial aggregation ("pooling"): what a worker that trains several clients from one
copy of the global model x sends back instead of one reply per client.

Every strategy whose server step needs only sums over the cohort declares a pooling
kind (`ArrayStrategy.POOLING`, `strategies.registry.POOLING` for Flower's own). A worker
adds each client's contribution (v_i, w_i) to a `PoolSum` in float64, in the order the
message names the clients; the server adds the chunks' sums in chunk order and runs
the strategy's step on the totals. Kinds:

- ``mean`` (FedAvg, FedProx, FedAvgM, FedAdam/Yogi/Adagrad): ``sum n_i y_i`` and
  ``sum n_i``; the server hands the strategy one reply, the weighted mean with
  ``num-examples = sum n_i``, so Flower's weighted average equals the cohort's.
- ``fednova``: ``sum n_i (x - y_i) / a_i``, ``sum n_i`` and ``sum n_i a_i``
  (strategies/fednova.py: tau_eff = sum n_i a_i / sum n_i).
- ``feddyn``: ``sum theta_i`` and the count k.
- ``scaffold``: ``sum y_i``, ``sum dc_i`` and k; client state is saved per client.
- ``central-dp``: ``sum clip_C(y_i - x)``, k and the number left unclipped
  (privacy/central_dp.py adds the noise on the server).

Clients with no examples add nothing (as in the per-client path, where they are not
aggregated).

Beside the strategy's sums a worker may carry the model-health sums of its clients'
updates u_i = y_i - x (`HealthSum`: sum u_i / ||u_i|| and sum u_i, over every finite
client, with or without examples, as server/health.py counts them), from which the
server's mean cosine to the mean update is exact: mean_i cos(u_i, m) =
<sum_i u_i/||u_i||, m> / (n ||m||) with m = sum_i u_i / n. Never under central DP or
SecAgg+ (privacy/reply_check.py: `pooled_health_allowed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MEAN, FEDNOVA, FEDDYN, SCAFFOLD, CENTRAL_DP = "mean", "fednova", "feddyn", "scaffold", "central-dp"
KINDS = (MEAN, FEDNOVA, FEDDYN, SCAFFOLD, CENTRAL_DP)

# Scalars of a pooled reply's MetricRecord (besides num-examples and worker facts).
POOLED_WEIGHT = "pooled-weight"  # sum of w_i
POOLED_CLIENTS = "pooled-clients"  # clients added
POOLED_NORMALISER = "pooled-normaliser"  # FedNova: sum n_i a_i
POOLED_UNCLIPPED = "pooled-unclipped"  # central DP: clients left unclipped
CHUNK = "chunk"  # the chunk's index in its attempt (the reduction order)
# The per-client MetricRecord of a pooled reply: one list entry per named client.
CLIENT_METRICS = "client-metrics"
OK, FAILED, NOT_FINITE = 0, 1, 2  # `status` of a client in a pooled reply
# The model-health sums' ArrayRecords of a pooled reply (model-shaped, model dtypes).
UNIT_SUM, UPDATE_SUM = "health-unit-sum", "health-update-sum"
HEALTH_SUMS = (UNIT_SUM, UPDATE_SUM)

Arrays = list[np.ndarray]


def _f64(arrays: Sequence[np.ndarray]) -> Arrays:
    return [np.asarray(a, dtype=np.float64) for a in arrays]


@dataclass
class HealthSum:
    """sum_i u_i / ||u_i|| (zero updates add nothing) and sum_i u_i over `clients`
    finite updates, in float64: a one-pass sufficient statistic of the mean cosine."""

    unit: Arrays
    update: Arrays
    clients: int = 0

    @classmethod
    def zeros(cls, like: Sequence[np.ndarray]) -> HealthSum:
        return cls(*([np.zeros(np.shape(a), np.float64) for a in like] for _ in range(2)))

    @classmethod
    def of(
        cls, unit: Sequence[np.ndarray], update: Sequence[np.ndarray], clients: int
    ) -> HealthSum:
        """A chunk's sums as a reply carried them (the server counts their clients)."""
        return cls(_f64(unit), _f64(update), clients)

    def add(self, update: Sequence[np.ndarray], norm: float) -> None:
        """One client's update u (float64 arrays) and its norm ||u||."""
        for t, s, u in zip(self.unit, self.update, update, strict=True):
            if norm > 0:
                t += u / norm
            s += u
        self.clients += 1

    def merge(self, other: HealthSum) -> None:
        PoolSum._add(self.unit, other.unit)
        PoolSum._add(self.update, other.update)
        self.clients += other.clients


@dataclass
class PoolSum:
    """Running float64 sums of one pooling kind (a worker's chunk or a round's total)."""

    kind: str
    arrays: Arrays
    extras: dict[str, Arrays] = field(default_factory=dict)
    weight: float = 0.0
    clients: int = 0
    examples: int = 0
    normaliser: float = 0.0
    unclipped: int = 0
    # The clients' model-health sums (not the strategy's); None: not carried by every
    # chunk added, so the round has no exact mean cosine.
    health: HealthSum | None = None

    @classmethod
    def zeros(
        cls,
        kind: str,
        like: Sequence[np.ndarray],
        extras: Sequence[str] = (),
        health: bool = False,
    ) -> PoolSum:
        if kind not in KINDS:
            raise ValueError(f"unknown pooling kind {kind!r}; expected one of {KINDS}")
        z = [np.zeros(np.shape(a), np.float64) for a in like]
        sums = HealthSum.zeros(like) if health else None
        return cls(kind, z, {k: [a.copy() for a in z] for k in extras}, health=sums)

    @staticmethod
    def _add(target: Arrays, values: Sequence[np.ndarray], scale: float = 1.0) -> None:
        for t, v in zip(target, values, strict=True):
            t += v * scale if scale != 1.0 else v

    def add_client(
        self,
        x: Sequence[np.ndarray],
        y: Sequence[np.ndarray],
        num_examples: int,
        *,
        normaliser: float = 1.0,
        extras: Mapping[str, Sequence[np.ndarray]] | None = None,
        unclipped: bool = True,
    ) -> None:
        """One client's contribution: its model y (central DP: its clipped delta) from x.
        `normaliser` is FedNova's a_i; `extras` the strategy's extra arrays."""
        if num_examples <= 0:
            return
        n = float(num_examples)
        if self.kind == MEAN:
            self._add(self.arrays, _f64(y), n)
            self.weight += n
        elif self.kind == FEDNOVA:
            step = [(a - b) / normaliser for a, b in zip(_f64(x), _f64(y), strict=True)]
            self._add(self.arrays, step, n)
            self.weight += n
            self.normaliser += n * normaliser
        else:  # feddyn, scaffold, central-dp: unweighted sums
            self._add(self.arrays, _f64(y))
            self.weight += 1.0
            self.unclipped += int(unclipped)
        for key, values in (extras or {}).items():
            self._add(self.extras[key], _f64(values))
        self.clients += 1
        self.examples += int(num_examples)

    def merge(self, other: PoolSum) -> None:
        """Add another chunk's sums (the server, in chunk order)."""
        if other.kind != self.kind:
            raise ValueError(f"cannot add a {other.kind!r} pool to a {self.kind!r} pool")
        self._add(self.arrays, other.arrays)
        for key, values in other.extras.items():
            if key not in self.extras:
                self.extras[key] = [np.zeros_like(a) for a in self.arrays]
            self._add(self.extras[key], values)
        self.weight += other.weight
        self.clients += other.clients
        self.examples += other.examples
        self.normaliser += other.normaliser
        self.unclipped += other.unclipped
        if self.health is not None and other.health is not None:
            self.health.merge(other.health)
        else:
            self.health = None

    def mean(self) -> Arrays:
        """sum / weight (the weighted mean of the kind's v_i)."""
        return [a / self.weight for a in self.arrays]

    def scalars(self) -> dict[str, float | int]:
        """What the pooled reply's MetricRecord carries about the sums."""
        return {
            "num-examples": self.examples,
            POOLED_WEIGHT: self.weight,
            POOLED_CLIENTS: self.clients,
            POOLED_NORMALISER: self.normaliser,
            POOLED_UNCLIPPED: self.unclipped,
        }

    @classmethod
    def from_reply(
        cls,
        kind: str,
        arrays: Sequence[np.ndarray],
        extras: Mapping[str, Sequence[np.ndarray]],
        scalars: Mapping[str, float | int],
        health: HealthSum | None = None,
    ) -> PoolSum:
        return cls(
            kind,
            _f64(arrays),
            {k: _f64(v) for k, v in extras.items()},
            weight=float(scalars[POOLED_WEIGHT]),
            clients=int(scalars[POOLED_CLIENTS]),
            examples=int(scalars["num-examples"]),
            normaliser=float(scalars.get(POOLED_NORMALISER, 0.0)),
            unclipped=int(scalars.get(POOLED_UNCLIPPED, 0)),
            health=health,
        )
