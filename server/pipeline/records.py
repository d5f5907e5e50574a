"""The metrics row of a round, built from the stages' results (no I/O).

Field order is part of the record (metrics.jsonl is read by people and diffs): round,
evaluation, client training stats, update health, privacy, counts, timings. Under
central DP `privacy.release.release_row` is applied by the observers, last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

from server.health import flat, pooled_cosine_mean, update_health
from server.pipeline.aggregate import Aggregate
from server.pipeline.collect import Cohort
from server.pipeline.updates import ClientUpdate
from strategies.pooling import PoolSum


@dataclass(frozen=True)
class Timings:
    """perf_counter readings of one round: start, collected, health, aggregated, evaluated."""

    start: float
    collected: float
    health: float
    aggregated: float
    evaluated: float

    def row(self, run_started: float) -> dict[str, float]:
        return {
            "train_seconds": round(self.collected - self.start, 4),
            "health_seconds": round(self.health - self.collected, 4),
            "aggregate_seconds": round(self.aggregated - self.health, 4),
            "eval_seconds": round(self.evaluated - self.aggregated, 4),
            "round_seconds": round(self.evaluated - self.start, 4),
            "elapsed_seconds": round(self.evaluated - run_started, 3),
        }


def health(
    before: list[np.ndarray], valid: Sequence[ClientUpdate], pool: PoolSum | None = None
) -> tuple[dict[str, Any], np.ndarray]:
    """Update norms and cosines of the valid updates (none under SecAgg+: no arrays).

    A pooled round (`pool`: the round's sums) has no update on the server; see
    `pooled_health` for which of its statistics are exact and which are not available."""
    if any(u.pooled for u in valid):
        return pooled_health(valid, pool)
    arrays = [list(u.arrays) for u in valid if u.arrays is not None]
    return update_health(before, None, arrays)


def pooled_health(
    valid: Sequence[ClientUpdate], pool: PoolSum | None
) -> tuple[dict[str, Any], np.ndarray]:
    """A pooled round's health, over the same valid updates as `update_health` counts.

    - norms (mean/std/max, histograms): exact, each ||y_i - x|| measured in the worker
      (`update-norm`);
    - `client_cosine_to_mean_mean`: exact, from the one-pass sums the workers add
      (`HealthSum`: sum u_i/||u_i|| and sum u_i); None where they are not sent (central
      DP: beyond the release) or a chunk lacked them;
    - `client_cosine_to_mean_min`: None, not available: it needs every update against
      the final mean, which is known only after the last worker replied, when no update
      is left (a second pass would retrain the clients). A bound would pass for a
      measurement, so none is reported."""
    norms = np.array([float(u.metrics["update-norm"]) for u in valid])
    if not len(norms):
        return {"nonfinite_values": 0}, np.zeros(0)
    sums = pool.health if pool is not None else None
    cosine = None
    if sums is not None and sums.clients == len(norms):
        cosine = pooled_cosine_mean(sums.unit, sums.update, len(norms))
    return {
        "nonfinite_values": 0,  # non-finite clients were refused in the worker
        "client_update_norm_mean": float(norms.mean()),
        "client_update_norm_std": float(norms.std()),
        "client_update_norm_max": float(norms.max()),
        "client_cosine_to_mean_mean": cosine,
        "client_cosine_to_mean_min": None,
    }, norms


def global_update_norm(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    return float(np.linalg.norm(flat(after) - flat(before)))


def train_stats(updates: Sequence[ClientUpdate]) -> dict[str, Any]:
    """Weighted client training loss/accuracy and the spread of client train times."""
    if not updates:
        return {"train_loss": None, "train_accuracy": None}
    m = [u.metrics for u in updates]
    n = np.array([float(x["num-examples"]) for x in m])
    w = n / n.sum() if n.sum() > 0 else np.full(len(n), 1 / len(n))
    secs = np.array([float(x["train-seconds"]) for x in m])
    slowest = np.argsort(-secs, kind="stable")[:3]
    rss = [float(x["worker-rss-mb"]) for x in m if "worker-rss-mb" in x]
    nodes: dict[str, int] = {}
    for x in m:
        if "worker-node" in x:
            key = f"{int(x['worker-node']):012x}"
            nodes[key] = nodes.get(key, 0) + 1
    return {
        "train_loss": float(np.dot(w, [float(x["train-loss"]) for x in m])),
        "train_accuracy": float(np.dot(w, [float(x["train-accuracy"]) for x in m])),
        "client_seconds_median": round(float(np.median(secs)), 4),
        "client_seconds_p90": round(float(np.percentile(secs, 90)), 4),
        "client_seconds_max": round(float(secs.max()), 4),
        "slowest_clients": [int(m[i]["partition-id"]) for i in slowest],
        "examples": int(n.sum()),
        "workers_rss_mb": round(max(rss), 1) if rss else None,
        "server_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
        "updates_per_node": nodes,
    }


def round_row(
    rnd: int,
    evaluation: Mapping[str, Any],
    valid: Sequence[ClientUpdate],
    health_row: Mapping[str, Any],
    privacy: Mapping[str, Any],
    cohort: Cohort,
    outcome: Aggregate,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The round's full metrics row (before the central-DP release filter)."""
    row: dict[str, Any] = {"round": rnd, **evaluation}
    row.update(train_stats(valid))
    row.update(health_row)
    row.update(privacy)
    row.update(
        clients=len(cohort.tried),
        replies=len(valid),
        failures=cohort.failures,
        rejected_updates=cohort.rejected,
        retries=cohort.retries,
        skipped=outcome.arrays is None,
        skip_reason=outcome.skip_reason,
        bytes_sent=cohort.bytes_sent,
        bytes_received=cohort.received(),
        **timings,
    )
    return row
