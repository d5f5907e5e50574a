"""A round under SecAgg+ as the loop sees it: send, get the mean back, aggregate.

Weights: with central DP every client counts once (the sensitivity analysis needs
it), so the client's weight and the protocol's `max_weight` are both 1 and the
mean is exact up to quantisation. Without DP, updates are weighted by example count
as FedAvg does, with `max_weight` the largest shard so that no weight overflows.
"""

from __future__ import annotations

from logging import WARNING

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.common.logger import log
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from learning.config import ExperimentConfig
from learning.errors import ConfigError
from learning.secagg_plan import max_round_size, secagg_plan
from learning.streams import Tag, generator
from privacy.central_dp import CentralDP, single_reply
from privacy.secagg.client_mod import WEIGHT_KEY
from privacy.secagg.server_stages import SecAggOutcome, run_secagg_round


class SecureSender:
    def __init__(self, cfg: ExperimentConfig, num_nodes: int) -> None:
        self.cfg = cfg
        self.num_nodes = num_nodes
        self.uniform = cfg.privacy.dp == "central"
        self.max_weight = 1.0 if self.uniform else float(max(_shard_sizes(cfg)))

    def run(self, grid: Grid, messages: list[Message], rnd: int) -> SecAggOutcome:
        p, fed = self.cfg.privacy, self.cfg.federation
        if reason := oversized_round(rnd, len(messages), self.num_nodes):
            # A rare Poisson draw beyond the plan: this round releases noise only (as a
            # halted round does) instead of aborting the run.
            if not self.uniform:  # under central DP the round's size is not released
                log(WARNING, "%s", reason)
            return SecAggOutcome(mean=None, reason=reason)
        if self.uniform:
            for m in messages:
                m.content["config"] = ConfigRecord({**m.content["config"], WEIGHT_KEY: 1})
        try:
            plan = secagg_plan(
                len(messages),
                p.num_shares,
                p.reconstruction_threshold,
                p.dropout_tolerance,
                p.secagg_quantization_bits,
            )
        except ConfigError as exc:  # a Poisson draw too small for the plan: no aggregate
            return SecAggOutcome(mean=None, reason=str(exc))
        rng = generator(fed.seed, Tag.SECAGG_GRAPH, rnd)
        outcome = run_secagg_round(
            grid,
            messages,
            plan,
            p.secagg_clipping_range,
            p.secagg_quantization_bits,
            self.max_weight,
            rng,
            rnd,
            fed.timeout,
        )
        outcome.bytes_received = sum(
            len(b)
            for r in outcome.replies
            for b in r.content[RECORD_KEY_CONFIGS].get(Key.MASKED_PARAMETERS, [])
        )
        return outcome

    def aggregate(
        self,
        strategy: Strategy,
        rnd: int,
        mean: list[np.ndarray],
        before: list[np.ndarray],
        survivors: int,
    ) -> ArrayRecord | None:
        """The strategy's server step on the securely computed mean update."""
        dtypes = [b.dtype for b in before]
        if isinstance(strategy, CentralDP):
            new, _ = strategy.aggregate_sum(rnd, [survivors * m for m in mean])
        else:
            weights = [b.astype(np.float64) + m for b, m in zip(before, mean, strict=True)]
            new, _ = strategy.aggregate_train(rnd, [single_reply(weights, dtypes)])
        return new


def oversized_round(rnd: int, sampled: int, num_nodes: int) -> str | None:
    """Why a round of `sampled` clients cannot run SecAgg+ on `num_nodes` SuperNodes."""
    if sampled <= num_nodes:
        return None
    return (
        f"round {rnd} sampled {sampled} clients but only {num_nodes} SuperNodes run; "
        "SecAgg+ needs one node per client, so the round aggregates nothing"
    )


def _shard_sizes(cfg: ExperimentConfig) -> list[int]:
    from learning.federated_data import partition_histograms

    return [int(np.sum(h)) for h in partition_histograms(cfg)]


def secagg_nodes(cfg: ExperimentConfig) -> int:
    """SuperNodes a SecAgg+ run needs: one per client a round can sample."""
    fed = cfg.federation
    return max_round_size(fed.clients_per_round, fed.num_clients, cfg.privacy.dp == "central")
