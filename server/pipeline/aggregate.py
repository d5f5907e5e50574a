"""Aggregate: the round's valid updates, ordered and (in simulation) colluded, become the
next global model, or the round is skipped and says why.

Ordering by (partition id, node id) keeps float sums stable; ALIE/IPM/Min-Max are
applied where the colluders' replies meet; a round short of the defence's bound is
skipped loudly; central DP releases (noise only when nobody answered) every round;
SecAgg+ aggregates the securely computed mean. The global model keeps its dtypes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from logging import WARNING

import numpy as np
from flwr.app import ArrayRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp.strategy import Strategy

from clients.attacks import apply_collusion
from learning.config import ExperimentConfig
from learning.defence_bounds import defence_bound_error
from privacy.central_dp import CentralDP
from privacy.secagg.round import SecureSender
from server.pipeline.collect import Cohort
from server.pipeline.updates import ClientUpdate, messages
from strategies.base import ArrayStrategy
from strategies.pooling import CENTRAL_DP, PoolSum

TOO_FEW = "no aggregate: too few usable replies"


@dataclass(frozen=True)
class Aggregate:
    arrays: ArrayRecord | None  # the new global model; None: the round was skipped
    skip_reason: str | None = None


def ordered(updates: Sequence[ClientUpdate]) -> list[ClientUpdate]:
    """By partition id, then node id (stable: equal keys keep arrival order)."""
    return sorted(updates, key=lambda u: u.order)


def collude(
    cfg: ExperimentConfig, updates: list[ClientUpdate], x: list[np.ndarray]
) -> list[ClientUpdate]:
    """ALIE/IPM/Min-Max over fresh messages; colluders' updates carry the rewrite."""
    if not updates:
        return updates
    sent = messages(updates)
    out = apply_collusion(cfg, sent, x)
    return [
        u if new is old else ClientUpdate.from_reply(new)
        for u, old, new in zip(updates, sent, out, strict=True)
    ]


def round_bound(cfg: ExperimentConfig, rnd: int, replies: Sequence[object]) -> str | None:
    """Why this round's replies cannot meet the defence's bound (None if they can),
    warned loudly: crashes, Poisson sampling and deadlines shrink n below what the
    config was checked for, and an aggregate then would be silently unprotected."""
    s = cfg.strategy
    reason = defence_bound_error(s.strategy, len(replies), s.num_malicious, s.trim_beta)
    if reason:
        log(WARNING, "round %d skipped (no aggregation): %s", rnd, reason)
    return reason


def cast_like(record: ArrayRecord, dtypes: list[np.dtype]) -> ArrayRecord:
    """Keep the global model in the model's own dtypes: Flower's FedOpt and q-FedAvg
    aggregate in float64, which would double every message and change what clients get."""
    arrays = record.to_numpy_ndarrays()
    if [a.dtype for a in arrays] == dtypes:
        return record
    return ArrayRecord([a.astype(d) for a, d in zip(arrays, dtypes, strict=True)])


def aggregate_pooled(
    strategy: Strategy, rnd: int, pool: PoolSum, dtypes: list[np.dtype]
) -> ArrayRecord | None:
    """The strategy's step on a round's pooled sums: ours take the sums
    (`ArrayStrategy.aggregate_pooled`); Flower's mean-based ones get one reply, the
    cohort's weighted mean with num-examples = sum n_i, so their weighted average and
    server optimiser run on exactly the cohort's mean."""
    if isinstance(strategy, ArrayStrategy):
        return strategy.aggregate_pooled(rnd, pool)
    if pool.weight <= 0:
        return None
    mean = [np.asarray(a).astype(d) for a, d in zip(pool.mean(), dtypes, strict=True)]
    content = RecordDict(
        {"arrays": ArrayRecord(mean), "metrics": MetricRecord({"num-examples": pool.examples})}
    )
    reply = Message(content=content, dst_node_id=0, message_type=MessageType.TRAIN)
    new, _ = strategy.aggregate_train(rnd, [reply])
    return new


class Aggregator:
    """The strategy's server step on a round's cohort."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        strategy: Strategy,
        secure: SecureSender | None,
        dtypes: list[np.dtype],
    ) -> None:
        self.cfg, self.strategy, self.secure, self.dtypes = cfg, strategy, secure, dtypes

    def prepare(self, cohort: Cohort, x: list[np.ndarray]) -> list[ClientUpdate]:
        """The cohort's valid updates in aggregation order, colluders rewritten (never
        pooled: a colluding attack keeps one message per client)."""
        if cohort.pooled:
            return ordered(cohort.valid)
        return collude(self.cfg, ordered(cohort.valid), x)

    def __call__(
        self,
        rnd: int,
        valid: list[ClientUpdate],
        cohort: Cohort,
        before: list[np.ndarray],
    ) -> Aggregate:
        useful = [u for u in valid if u.num_examples > 0]
        new, bound = None, None
        if cohort.pooled:
            if isinstance(self.strategy, CentralDP):  # released every round, as below
                pool = cohort.pool or PoolSum.zeros(CENTRAL_DP, before)
                new, _ = self.strategy.aggregate_pooled(rnd, pool)
            elif cohort.pool is not None and cohort.pool.clients and cohort.enough:
                new = aggregate_pooled(self.strategy, rnd, cohort.pool, self.dtypes)
        elif cohort.secure_mean is not None:
            assert self.secure is not None
            new = self.secure.aggregate(self.strategy, rnd, cohort.secure_mean, before, len(valid))
        elif isinstance(self.strategy, CentralDP):
            # Released even with no update to add (nobody answered, or SecAgg+ halted):
            # noise only, so every round is one accounted release.
            new, _ = self.strategy.aggregate_train(rnd, [] if self.secure else messages(useful))
        elif (
            self.secure is None
            and useful
            and cohort.enough
            and not (bound := round_bound(self.cfg, rnd, useful))
        ):
            new, _ = self.strategy.aggregate_train(rnd, messages(useful))
        if new is None:
            return Aggregate(None, bound or TOO_FEW)
        return Aggregate(cast_like(new, self.dtypes))
