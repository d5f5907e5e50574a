"""A worker's half of multi-client dispatch: train the clients a message names one after
another from the one copy of the global model it carried, and reply with their pooled
sums (strategies/pooling.py) plus one list entry per client of its scalar metrics.

Message (server -> worker): the strategy's records, with `partition-ids` (a list of
ints in the ConfigRecord: a few bytes, read without deserialising anything) and `chunk`
(its index in the round's attempt) instead of `partition-id`.

Reply: ``arrays`` (the pooled sum, the model's names, shapes and dtypes), the
strategy's declared extra sums (SCAFFOLD: ``scaffold-dc``), the clients' model-health
sums (``health-unit-sum``, ``health-update-sum``: sum u_i/||u_i|| and sum u_i, from which
the server's mean cosine to the mean update is exact; not under central DP or
SecAgg+), ``metrics`` (the pool's
scalars, `chunk`, worker facts) and ``client-metrics`` (lists, one entry per named
client: partition-id, status 0 ok / 1 failed / 2 not finite, num-examples, num-steps,
train-loss, train-accuracy, train-seconds, update-norm). privacy/reply_check.py
declares and checks this shape.

Each client runs through the privacy mod as a one-client message would (clipping and
local DP apply per client), and its arrays must have the model's names, shapes and
dtypes (`_client_arrays`); the weights-only mod checks, byte for byte, the pooled reply,
which is all that leaves the worker. A client that raises, answers misshaped or
non-finite weights costs only its own entry.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, KEY_NORM_BIT

from privacy.central_dp import pool_client
from privacy.reply_check import CLIENT_LIST_METRICS, pooled_health_allowed
from strategies.fednova import fednova_normaliser
from strategies.pooling import (
    CENTRAL_DP,
    CHUNK,
    CLIENT_METRICS,
    FAILED,
    FEDNOVA,
    NOT_FINITE,
    OK,
    SCAFFOLD,
    UNIT_SUM,
    UPDATE_SUM,
    PoolSum,
)
from strategies.registry import pooling_kind
from strategies.scaffold import SCAFFOLD_DC_KEY

PARTITION_IDS = "partition-ids"
POOLED_EXTRAS = {SCAFFOLD: (SCAFFOLD_DC_KEY,)}  # by pooling kind

log = logging.getLogger("perennial.client")

# One client: (its one-client message, the received weights, deserialised once) -> its
# reply (mods applied), or an exception.
TrainOne = Callable[[Message, list[np.ndarray]], Message]


def is_pooled(msg: Message) -> bool:
    return "config" in msg.content and PARTITION_IDS in msg.content["config"]


class ClientMessages:
    """The one-client messages of a pooled message: the same records (never copied), a
    config naming the client as a one-client message would.

    The config is built once per pooled message (it is ours: the received one is never
    touched) and renamed for each client in turn; clients train one after another, and
    nothing keeps a client's message after its reply, so a fresh ~100-key ConfigRecord
    per client (a quarter of a millisecond) bought nothing."""

    def __init__(self, msg: Message) -> None:
        self.msg, self.configs = msg, []
        self.records: dict[str, object] = {}
        for key, record in msg.content.items():
            if isinstance(record, ConfigRecord):
                drop = (PARTITION_IDS, CHUNK)
                record = ConfigRecord({k: v for k, v in record.items() if k not in drop})
                self.configs.append(record)
            self.records[key] = record

    def __call__(self, pid: int) -> Message:
        for record in self.configs:
            record["partition-id"] = pid
        # The received message's own metadata (copied): a new instruction message would
        # need a task identity, which only Flower's runtime sets, and is not ours to invent.
        return Message(content=RecordDict(self.records), metadata=copy.copy(self.msg.metadata))


def client_message(msg: Message, pid: int) -> Message:
    """The one-client message for `pid` (a message of its own)."""
    return ClientMessages(msg)(pid)


def _client_arrays(record: ArrayRecord, keys: list[str], like: list[np.ndarray]) -> list:
    """A client's arrays as the sums need them, refused (the client fails) unless they
    have the model's names, shapes and dtypes: the weights-only rule. Its byte-level
    checks (forged shapes, trailing bytes) guard bytes that leave the worker; a client's
    reply in a pooled message never does (its sums leave, checked by the app's mod)."""
    if list(record.keys()) != keys:
        raise ValueError("client arrays do not match the global model's names")
    arrays = [record[k].numpy() for k in keys]
    for a, w in zip(arrays, like, strict=True):
        if type(a) is not np.ndarray or a.shape != w.shape or a.dtype != w.dtype:
            raise ValueError("client arrays do not match the global model's shapes and dtypes")
    return arrays


def _update(x: list[np.ndarray], y: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """u = y - x in float64 and ||u||: the norm the server's health reports. (No BLAS
    dot: OpenBLAS's thread start-up beside TensorFlow's made it 15x slower here.)"""
    u = [np.asarray(b, np.float64) - a for a, b in zip(x, y, strict=True)]
    return u, math.sqrt(sum(float(np.sum(np.square(d))) for d in u))


def pooled_reply(
    msg: Message, train_one: TrainOne, extra_metrics: dict | None = None
) -> RecordDict:
    """Train every client `msg` names with `train_one` and pool them."""
    config = msg.content["config"]
    kind = pooling_kind(str(config.get("strategy", "")), str(config.get("dp", "none")))
    if kind is None:
        raise ValueError("this strategy needs individual updates; it cannot pool")
    received = msg.content["arrays"]
    keys = list(received.keys())
    weights = received.to_numpy_ndarrays()  # deserialised once per message
    dtypes = [a.dtype for a in weights]
    x = [np.asarray(a, np.float64) for a in weights]
    # The health sums: from every finite client (as the server's per-client health),
    # never under central DP (kind CENTRAL_DP) or SecAgg+.
    health = kind != CENTRAL_DP and pooled_health_allowed(config)
    pool = PoolSum.zeros(kind, x, POOLED_EXTRAS.get(kind, ()), health=health)
    momentum = float(config.get("momentum", 0.0))
    clip = float(config.get(KEY_CLIPPING_NORM, 0.0))
    rows: dict[str, list] = {name: [] for name in CLIENT_LIST_METRICS}
    one_client = ClientMessages(msg)
    for pid in (int(p) for p in config[PARTITION_IDS]):
        status, m, norm = OK, {}, 0.0
        try:
            reply = train_one(one_client(pid), weights)
            if reply.has_error():
                raise RuntimeError("client reply is an error")
            m = dict(reply.content["metrics"])
            y = _client_arrays(reply.content["arrays"], keys, weights)
            if not all(np.isfinite(a).all() for a in y):
                status = NOT_FINITE
            else:
                n = int(m["num-examples"])
                u, norm = _update(x, y)
                if kind == CENTRAL_DP:
                    bit = m.get(KEY_NORM_BIT)
                    pool_client(pool, x, y, n, clip, None if bit is None else bool(bit))
                else:
                    extras = {
                        k: _client_arrays(reply.content[k], keys, weights)
                        for k in POOLED_EXTRAS.get(kind, ())
                        if k in reply.content and int(m.get("num-steps", 0)) > 0
                    }
                    if set(extras) != set(POOLED_EXTRAS.get(kind, ())) and n > 0:
                        raise RuntimeError("client reply lacks its strategy's extra arrays")
                    a_i = (
                        fednova_normaliser(int(m["num-steps"]), momentum)
                        if kind == FEDNOVA and n > 0
                        else 1.0
                    )
                    pool.add_client(x, y, n, normaliser=a_i, extras=extras)
                if pool.health is not None:  # once its sums are in: it is not failed
                    pool.health.add(u, norm)
        except Exception:
            log.exception("client %d of a pooled message failed", pid)
            status, m = FAILED, {}
        rows["partition-id"].append(pid)
        rows["status"].append(status)
        rows["num-examples"].append(int(m.get("num-examples", 0)) if status == OK else 0)
        rows["num-steps"].append(int(m.get("num-steps", 0)))
        for name in ("train-loss", "train-accuracy", "train-seconds"):
            v = float(m.get(name, 0.0))
            rows[name].append(v if math.isfinite(v) else 0.0)
        rows["update-norm"].append(norm)
    content = RecordDict(
        {
            "arrays": _record(keys, pool.arrays, dtypes),
            "metrics": MetricRecord(
                {**pool.scalars(), CHUNK: int(config.get(CHUNK, 0)), **(extra_metrics or {})}
            ),
            CLIENT_METRICS: MetricRecord(rows),
        }
    )
    for key, arrays in pool.extras.items():
        content[key] = _record(keys, arrays, dtypes)
    if pool.health is not None:
        content[UNIT_SUM] = _record(keys, pool.health.unit, dtypes)
        content[UPDATE_SUM] = _record(keys, pool.health.update, dtypes)
    return content


def _record(keys: list[str], arrays: list[np.ndarray], dtypes: list[np.dtype]) -> ArrayRecord:
    return ArrayRecord(
        {
            k: Array(np.ascontiguousarray(a.astype(d)))
            for k, a, d in zip(keys, arrays, dtypes, strict=True)
        }
    )
