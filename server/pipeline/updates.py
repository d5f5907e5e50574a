"""One client's reply, deserialised once into an immutable record.

Flower's messages are never mutated: the loop reads each reply into a `ClientUpdate`
(read-only NumPy arrays, copied metrics) and, where a Flower strategy wants Messages
(some, like FedMedian, pop the arrays out of what they get), builds fresh ones it owns
with `to_message`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, Metadata, MetricRecord, RecordDict

from strategies.pooling import (
    CHUNK,
    CLIENT_METRICS,
    FAILED,
    HEALTH_SUMS,
    NOT_FINITE,
    OK,
    HealthSum,
    PoolSum,
)

Arrays = tuple[np.ndarray, ...]
MODEL = "arrays"  # the reply's model record
METRICS = "metrics"


def _frozen(arrays: Sequence[np.ndarray]) -> Arrays:
    out = []
    for a in arrays:
        a = np.asarray(a)
        a.flags.writeable = False
        out.append(a)
    return tuple(out)


@dataclass(frozen=True)
class ClientUpdate:
    """What one client sent back: who (partition id, node), its model and extra arrays
    (e.g. SCAFFOLD's `scaffold-dc`), its metrics, and why it was refused (None: usable)."""

    partition_id: int
    node_id: int
    arrays: Arrays | None
    metrics: Mapping[str, Any]
    extras: Mapping[str, Arrays] = field(default_factory=dict)
    refused: str | None = None
    # To rebuild the reply: record names in order with their array keys, other records.
    layout: tuple[tuple[str, tuple[str, ...]], ...] = ()
    records: Mapping[str, ConfigRecord | MetricRecord] = field(default_factory=dict)
    metadata: Metadata | None = field(default=None, compare=False, repr=False)
    # A client of a pooled reply: its model went into the worker's sum, so `arrays` is
    # None and validity was decided in the worker (refused: not finite).
    pooled: bool = False

    @classmethod
    def from_reply(cls, msg: Message) -> ClientUpdate:
        """Read an answered (non-error) reply, once."""
        arrays, extras, other, layout = None, {}, {}, []
        for name, record in msg.content.items():
            if isinstance(record, ArrayRecord):
                keys = tuple(record.keys())
                values = _frozen(record.to_numpy_ndarrays())
                if name == MODEL:
                    arrays = values
                else:
                    extras[name] = values
            else:
                keys = ()
                kind = MetricRecord if isinstance(record, MetricRecord) else ConfigRecord
                other[name] = kind(dict(record))
            layout.append((name, keys))
        metrics = MappingProxyType(dict(other[METRICS])) if METRICS in other else {}
        pid = int(metrics.get("partition-id", -1)) if METRICS in other else -1
        return cls(
            partition_id=pid,
            node_id=int(msg.metadata.src_node_id),
            arrays=arrays,
            metrics=metrics,
            extras=MappingProxyType(extras),
            layout=tuple(layout),
            records=MappingProxyType(other),
            metadata=copy.copy(msg.metadata),
        )

    @property
    def order(self) -> tuple[int, int]:
        """Aggregation order: partition id, then (deployment: two SuperNodes may hold
        the same partition id) the node that sent it, so float sums are order-stable."""
        return self.partition_id, self.node_id

    @property
    def num_examples(self) -> int:
        return int(self.metrics["num-examples"])

    @property
    def nbytes(self) -> int:
        """Bytes of all arrays the reply carried (weights plus any strategy extras)."""
        every = [*(self.arrays or ()), *(a for v in self.extras.values() for a in v)]
        return int(sum(a.nbytes for a in every))

    def with_arrays(self, arrays: Sequence[np.ndarray]) -> ClientUpdate:
        """This update carrying other model arrays (a colluder's rewrite)."""
        return dataclasses.replace(self, arrays=_frozen(arrays))

    def refuse(self, why: str) -> ClientUpdate:
        return dataclasses.replace(self, refused=why)

    def to_message(self) -> Message:
        """A fresh reply the loop owns (no record shared with any other message)."""
        content = RecordDict()
        for name, keys in self.layout:
            if name == MODEL or name in self.extras:
                values = self.arrays if name == MODEL else self.extras[name]
                content[name] = ArrayRecord(
                    {k: Array(np.asarray(a)) for k, a in zip(keys, values, strict=True)}
                )
            else:
                record = self.records[name]
                content[name] = type(record)(dict(record))
        return Message(metadata=copy.copy(self.metadata), content=content)


@dataclass(frozen=True)
class PooledReply:
    """A worker's pooled reply (multi-client dispatch), read once: the chunk's sums,
    its clients as ClientUpdates without arrays, and the clients that failed."""

    chunk: int
    pool: PoolSum | None  # None: the sums are unusable (misshaped or not finite)
    members: tuple[ClientUpdate, ...]  # answered clients (valid or refused)
    failed: tuple[int, ...]  # partition ids that raised in the worker
    nbytes: int

    @classmethod
    def from_reply(cls, msg: Message, kind: str, shapes: list[tuple[int, ...]]) -> PooledReply:
        content = msg.content
        scalars = dict(content[METRICS])
        arrays = content[MODEL].to_numpy_ndarrays()
        extras = {
            k: r.to_numpy_ndarrays()
            for k, r in content.items()
            if isinstance(r, ArrayRecord) and k not in (MODEL, *HEALTH_SUMS)
        }
        sums = [content[k].to_numpy_ndarrays() for k in HEALTH_SUMS if k in content]
        every = [*arrays, *(a for v in extras.values() for a in v)]
        ok = [a.shape for a in arrays] == shapes and all(np.isfinite(a).all() for a in every)
        lists = dict(content[CLIENT_METRICS])
        health = None  # the round's mean cosine needs them from every chunk, well formed
        if len(sums) == len(HEALTH_SUMS) and all(
            [a.shape for a in v] == shapes and all(np.isfinite(a).all() for a in v) for v in sums
        ):
            counted = sum(int(s) == OK for s in lists["status"])
            health = HealthSum.of(*sums, clients=counted)
        pool = PoolSum.from_reply(kind, arrays, extras, scalars, health) if ok else None
        node = int(msg.metadata.src_node_id)
        worker = {k: scalars[k] for k in ("worker-rss-mb", "worker-node") if k in scalars}
        members, failed = [], []
        for i, pid in enumerate(lists["partition-id"]):
            status = int(lists["status"][i])
            if status == FAILED:
                failed.append(int(pid))
                continue
            metrics = {k: v[i] for k, v in lists.items() if k != "status"}
            refused = "not finite" if status == NOT_FINITE else None
            if pool is None and refused is None:
                refused = "pooled sums not usable"
            members.append(
                ClientUpdate(
                    partition_id=int(pid),
                    node_id=node,
                    arrays=None,
                    metrics=MappingProxyType({**metrics, **worker}),
                    refused=refused,
                    pooled=True,
                )
            )
        return cls(
            int(scalars.get(CHUNK, 0)),
            pool,
            tuple(members),
            tuple(failed),
            int(sum(a.nbytes for a in [*every, *(a for v in sums for a in v)])),
        )


def validity(update: ClientUpdate, shapes: list[tuple[int, ...]]) -> str | None:
    """Why an answered update cannot be aggregated (None: it can): no weights or
    metrics, weights not shaped like the model's, or not finite."""
    if update.refused is not None or update.pooled:
        return update.refused
    if update.arrays is None or METRICS not in update.records:
        return "no arrays or metrics"
    if [a.shape for a in update.arrays] != shapes:
        return "shapes differ from the model's"
    if not all(np.isfinite(a).all() for a in update.arrays):
        return "not finite"
    return None


def messages(updates: Sequence[ClientUpdate]) -> list[Message]:
    return [u.to_message() for u in updates]
