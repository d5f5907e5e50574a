"""The federated training loop, ours rather than `Strategy.start`, so that sampling is
seeded, replies are aggregated in a fixed order, and every round is timed and recorded.

A round: draw partition ids from (seed, round) -> let the strategy build its train
messages for the execution slots -> stamp one partition id on each -> send and wait
-> sort replies by partition id -> strategy aggregates -> evaluate centrally -> record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from logging import WARNING
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid

from clients.attacks import apply_collusion
from learning.config import ExperimentConfig
from learning.defence_bounds import defence_bound_error
from learning.training import initial_weights
from privacy.accounting import check_secagg_clipping, privacy_row, wrap_private
from privacy.central_dp import CentralDP
from privacy.release import release_histograms, release_row
from privacy.secagg.round import SecureSender
from privacy.server_key import client_config, server_key
from server.checkpoint import Checkpoint, restore_strategy, save_checkpoint
from server.deployment import NodeDealer
from server.health import flat, update_health
from server.messages import addressed_copy
from server.sampling import poisson_clients, sample_clients, top_up_clients
from strategies.registry import build_strategy

# Called after every round with the metrics row and histogram data (name -> values).
RoundObserver = Callable[[dict[str, Any], dict[str, np.ndarray]], None]


class TaskEvaluation(Protocol):
    """Extra evaluation of continual scenarios (server/continual.py's TaskEvaluator)."""

    def must_evaluate(self, server_round: int) -> bool: ...

    def __call__(self, server_round: int, weights: list[np.ndarray]) -> dict[str, Any]: ...


@dataclass
class LoopResult:
    weights: list[np.ndarray]
    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0


def _stamp(messages: list[Message], partition_ids: list[int], round_: int) -> list[Message]:
    """One message per sampled client, dealt round-robin over the execution slots.

    The strategy built one message per slot; all of Flower's strategies (and ours) give
    every node the same content, so each client's message reuses its slot's records
    with a copied config naming the client. The strategy's records are never mutated.
    """
    if not messages:
        return []
    ordered = sorted(messages, key=lambda m: m.metadata.dst_node_id)
    out = []
    for i, pid in enumerate(partition_ids):
        template = ordered[i % len(ordered)]
        out.append(
            addressed_copy(
                template,
                template.metadata.dst_node_id,
                **{"partition-id": pid, "server-round": round_},
            )
        )
    return out


def _nbytes(content: RecordDict) -> int:
    """Bytes of all arrays a message carries (weights plus any strategy extras)."""
    return int(
        sum(a.numpy().nbytes for rec in content.array_records.values() for a in rec.values())
    )


def _reply_pid(msg: Message) -> tuple[int, int]:
    """Sort key of a reply: its partition id, then (deployment: two SuperNodes may hold
    the same partition id) the node that sent it."""
    if msg.has_error() or "metrics" not in msg.content:
        return -1, msg.metadata.src_node_id
    return int(msg.content["metrics"].get("partition-id", -1)), msg.metadata.src_node_id


def run_rounds(
    grid: Grid,
    cfg: ExperimentConfig,
    evaluate: Callable[[list[np.ndarray]], tuple[float, float]],
    num_slots: int,
    on_round: RoundObserver | None = None,
    run_dir: Path | None = None,
    resume: Checkpoint | None = None,
    task_eval: TaskEvaluation | None = None,
) -> LoopResult:
    """Run all rounds; `evaluate(weights) -> (loss, accuracy)` is the central test.

    With `run_dir` a checkpoint is written atomically after every round; with `resume`
    the loop continues after the checkpointed round with its weights and strategy state.
    With `task_eval` (continual scenarios) every evaluated round also gets per-task
    accuracies, and task boundaries are always evaluated.
    """
    fed = cfg.federation
    ds_shape, num_classes = _data_shape(cfg)
    weights = initial_weights(cfg.train.model, ds_shape, num_classes, fed.seed)
    # Deployment: the federation is the connected SuperNodes, client k the k-th by node id,
    # and each trains on its own data (server/deployment.py).
    dealer = NodeDealer(grid) if fed.federation_mode == "deployment" else None
    # Privacy is accounted over the population actually sampled from.
    private_cfg = (
        dealer.private_config(cfg) if dealer is not None and cfg.privacy.dp == "central" else cfg
    )
    # The server's secret (central DP only): the Poisson draw and the noise come from it.
    key = server_key(cfg, run_dir)
    check_secagg_clipping(cfg, sum(w.size for w in weights))
    strategy = wrap_private(private_cfg, build_strategy(cfg, num_slots), key)
    # Central DP samples each client independently (the accountant's assumption) and
    # never tops a round up; SecAgg+ runs its own four-stage exchange per round.
    poisson = cfg.privacy.dp == "central"
    secure = SecureSender(cfg, num_slots) if cfg.privacy.secure_aggregation else None
    max_retries = 0 if poisson or secure else fed.max_retries
    result = LoopResult(weights=weights)
    first = 1
    if resume is not None:
        weights, first = resume.weights, resume.round + 1
        restore_strategy(strategy, resume.state)
        result.rows = list(resume.rows)
    arrays = ArrayRecord(weights)
    shapes = [w.shape for w in weights]
    dtypes = [w.dtype for w in weights]
    base = client_config(cfg.to_flat())  # never the server-only keys
    started = time.perf_counter() - (result.rows[-1]["elapsed_seconds"] if result.rows else 0.0)
    fed = dealer.federation(fed) if dealer is not None else fed
    address = dealer.address if dealer is not None else _stamp
    for rnd in range(first, fed.rounds + 1):
        t0 = time.perf_counter()
        failures = rejected = attempts = sent = 0
        good: list[Message] = []
        valid: list[Message] = []
        tried: set[int] = set()
        if poisson:
            rate = fed.clients_per_round / fed.num_clients
            pids = poisson_clients(key, rnd, fed.num_clients, rate)
        else:
            pids = sample_clients(fed.seed, rnd, fed.num_clients, fed.clients_per_round)
        secure_mean = None
        if secure is not None:
            tried.update(pids)
            messages = list(strategy.configure_train(rnd, arrays, ConfigRecord(dict(base)), grid))
            messages = address(messages, pids, rnd)
            sent = sum(_nbytes(m.content) for m in messages)
            outcome = secure.run(grid, messages, rnd)
            received, failures = outcome.bytes_received, outcome.dropped
            good, valid, secure_mean = list(outcome.replies), list(outcome.replies), outcome.mean
        else:
            while True:
                # First attempt: the round's sample. A retry tops up: it asks as many fresh
                # clients (seeded by round and attempt, never one already tried) as are missing.
                tried.update(pids)
                messages = list(
                    strategy.configure_train(rnd, arrays, ConfigRecord(dict(base)), grid)
                )
                messages = address(messages, pids, rnd)
                sent += sum(_nbytes(m.content) for m in messages)
                replies = list(grid.send_and_receive(messages, timeout=fed.timeout))
                answered = [m for m in replies if not m.has_error()]
                failures += len(messages) - len(answered)
                ok = [m for m in answered if _valid_update(m, shapes)]
                rejected += len(answered) - len(ok)
                good += answered
                valid += ok
                useful = [m for m in valid if int(m.content["metrics"]["num-examples"]) > 0]
                enough = len(useful) >= fed.min_clients or poisson
                if enough or fed.too_few == "skip" or attempts >= max_retries:
                    break
                attempts += 1
                pids = top_up_clients(
                    fed.seed, rnd, attempts, fed.num_clients, tried, fed.min_clients - len(useful)
                )
                if not pids:
                    break
        good.sort(key=_reply_pid)
        valid.sort(key=_reply_pid)
        valid = apply_collusion(cfg, valid, arrays.to_numpy_ndarrays())
        useful = [m for m in valid if int(m.content["metrics"]["num-examples"]) > 0]
        pids = sorted(tried)
        t1 = time.perf_counter()
        if secure is None:
            received = sum(_nbytes(m.content) for m in good)
        before = arrays.to_numpy_ndarrays()
        # Client-update health first: some of Flower's strategies (FedMedian) pop the
        # arrays out of the replies they aggregate. Under SecAgg+ there is nothing to see.
        health, norms = update_health(
            before,
            None,  # the new global model is not known yet; its norm is added below
            [m.content["arrays"].to_numpy_ndarrays for m in valid if "arrays" in m.content],
        )
        t_health = time.perf_counter()
        new_arrays, bound = None, None
        if secure_mean is not None:
            new_arrays = secure.aggregate(strategy, rnd, secure_mean, before, len(valid))
        elif isinstance(strategy, CentralDP):
            # Released even with no update to add (nobody answered, or SecAgg+ halted):
            # noise only, so every round is one accounted release.
            new_arrays, _ = strategy.aggregate_train(rnd, [] if secure else useful)
        elif secure is None and useful and enough and not (bound := round_bound(cfg, rnd, useful)):
            new_arrays, _ = strategy.aggregate_train(rnd, useful)
        if new_arrays is not None:
            arrays = _cast_like(new_arrays, dtypes)
        t2 = time.perf_counter()
        row: dict[str, Any] = {"round": rnd}
        weights = arrays.to_numpy_ndarrays()
        health["global_update_norm"] = float(np.linalg.norm(flat(weights) - flat(before)))
        boundary = task_eval is not None and task_eval.must_evaluate(rnd)
        if rnd % fed.eval_every == 0 or rnd == fed.rounds or boundary:
            loss, acc = evaluate(weights)
            row.update(accuracy=acc, loss=loss)
            if task_eval is not None:
                row.update(task_eval(rnd, weights))
        else:
            row.update(accuracy=None, loss=None)
        t3 = time.perf_counter()
        row.update(_train_stats(valid))
        row.update(health)
        row.update(privacy_row(private_cfg, strategy))
        row.update(
            clients=len(pids),
            replies=len(valid),
            failures=failures,
            rejected_updates=rejected,
            retries=attempts,
            skipped=new_arrays is None,
            skip_reason=bound
            or ("no aggregate: too few usable replies" if new_arrays is None else None),
            bytes_sent=sent,
            bytes_received=received,
            train_seconds=round(t1 - t0, 4),
            health_seconds=round(t_health - t1, 4),
            aggregate_seconds=round(t2 - t_health, 4),
            eval_seconds=round(t3 - t2, 4),
            round_seconds=round(t3 - t0, 4),
            elapsed_seconds=round(t3 - started, 3),
        )
        row = release_row(row, cfg)  # under central DP: only what epsilon covers
        result.rows.append(row)
        if run_dir is not None:
            save_checkpoint(run_dir, rnd, weights, strategy, result.rows)
        if on_round is not None:
            on_round(row, release_histograms({"client_update_norms": norms}, cfg))
    result.weights = arrays.to_numpy_ndarrays()
    result.wall_seconds = time.perf_counter() - started
    return result


def round_bound(cfg: ExperimentConfig, rnd: int, replies: list[Message]) -> str | None:
    """Why this round's replies cannot meet the defence's bound (None if they can),
    warned loudly: crashes, Poisson sampling and deadlines shrink n below what the
    config was checked for, and an aggregate then would be silently unprotected."""
    s = cfg.strategy
    reason = defence_bound_error(s.strategy, len(replies), s.num_malicious, s.trim_beta)
    if reason:
        log(WARNING, "round %d skipped (no aggregation): %s", rnd, reason)
    return reason


def _cast_like(record: ArrayRecord, dtypes: list[np.dtype]) -> ArrayRecord:
    """Keep the global model in the model's own dtypes: Flower's FedOpt and q-FedAvg
    aggregate in float64, which would double every message and change what clients get."""
    arrays = record.to_numpy_ndarrays()
    if [a.dtype for a in arrays] == dtypes:
        return record
    return ArrayRecord([a.astype(d) for a, d in zip(arrays, dtypes, strict=True)])


def _valid_update(msg: Message, shapes: list[tuple[int, ...]]) -> bool:
    """Drop replies whose weights are not finite or do not match the model's shapes."""
    if "arrays" not in msg.content or "metrics" not in msg.content:
        return False
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    if [a.shape for a in arrays] != shapes:
        return False
    return all(np.isfinite(a).all() for a in arrays)


def _train_stats(replies: list[Message]) -> dict[str, Any]:
    """Weighted client training loss/accuracy and the spread of client train times."""
    if not replies:
        return {"train_loss": None, "train_accuracy": None}
    m = [r.content["metrics"] for r in replies]
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


def _data_shape(cfg: ExperimentConfig) -> tuple[tuple[int, int, int], int]:
    from learning.federated_data import dataset_for

    ds = dataset_for(cfg)
    return ds.input_shape, ds.num_classes
