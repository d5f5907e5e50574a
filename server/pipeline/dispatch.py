"""Dispatch: the strategy's train messages, one addressed copy per sampled client.

The strategy builds messages for the execution slots (`configure_train`); an address
function turns them into one message per client: `stamp` in simulation (the client's
partition id in a copied config, dealt round-robin over the slots) or
`NodeDealer.address` in a deployment (the client's SuperNode). The config is
`privacy.server_key.client_config(...)`, so server-only keys never leave.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from server.messages import addressed_copy, with_records

# (the strategy's messages, sampled clients, round, first slot) -> one message per client
Address = Callable[[list[Message], list[int], int, int], list[Message]]


def stamp(
    messages: list[Message], partition_ids: list[int], round_: int, start: int = 0
) -> list[Message]:
    """One message per sampled client, dealt round-robin over the execution slots.

    The strategy built one message per slot; all of Flower's strategies (and ours) give
    every node the same content, so each client's message reuses its slot's records
    with a copied config naming the client. The strategy's records are never mutated.
    `start` is the first slot dealt to (a send built from several dispatches continues
    where the previous one ended, so its messages spread over every slot).
    """
    configs = [{"partition-id": pid, "server-round": round_} for pid in partition_ids]
    return _deal(messages, configs, start)


def chunk_stamp(
    messages: list[Message], partition_ids: list[int], round_: int, start: int = 0, *, size: int
) -> list[Message]:
    """Pooled dispatch: the clients in partition-id order, cut into chunks of `size`
    (the last may be shorter), one message per chunk naming its clients
    (`partition-ids`) and its index (`chunk`), dealt round-robin over the slots.

    Which clients share a chunk depends only on the sample and `size`, never on the
    number of slots or workers, so the pooled sums (added in chunk order) are too."""
    pids = sorted(int(p) for p in partition_ids)
    chunks = range(0, len(pids), size)
    return _deal(
        messages,
        [
            {"partition-ids": pids[first : first + size], "server-round": round_, "chunk": i}
            for i, first in enumerate(chunks)
        ],
        start,
    )


def _deal(messages: list[Message], configs: list[dict], start: int = 0) -> list[Message]:
    """One copy of a slot's message per config, dealt round-robin over the slots (by
    node id, from slot `start`), each with that config added; the strategy's records
    are never mutated."""
    if not messages:
        return []
    ordered = sorted(messages, key=lambda m: m.metadata.dst_node_id)
    slot = [ordered[(start + i) % len(ordered)] for i in range(len(configs))]
    pairs = zip(slot, configs, strict=True)
    return [addressed_copy(m, m.metadata.dst_node_id, **c) for m, c in pairs]


def nbytes(content: RecordDict) -> int:
    """Bytes of all arrays a message carries (weights plus any strategy extras): each
    array's size from its shape and dtype, without deserialising it."""
    return int(sum(_array_bytes(a) for rec in content.array_records.values() for a in rec.values()))


def _array_bytes(a: Array) -> int:
    try:
        return math.prod(a.shape) * np.dtype(a.dtype).itemsize
    except TypeError:  # a dtype its string does not name again (structured): unpack it
        return int(a.numpy().nbytes)


class Dispatcher:
    """Builds a round's (or a retry's) messages for a list of clients."""

    def __init__(
        self,
        strategy: Strategy,
        grid: Grid,
        base: Mapping[str, Any],
        address: Address,
        clock: Any = None,
        records: Callable[[], dict] | None = None,
    ) -> None:
        self.strategy, self.grid, self.address = strategy, grid, address
        # FOT / TARGET: records the server adds to every train message (its basis or
        # synthetic set, server/continual_methods.py); None leaves messages as they were.
        self.records = records
        self.base = dict(base)  # client_config(cfg.to_flat()): no server-only keys
        # Continual scenarios on the clock (`task-seconds` > 0): every message carries
        # the virtual time it is sent at (`virtual-time`, not secret), from which the
        # client derives its task; None leaves messages as they were.
        self.clock = clock

    def __call__(
        self, server_round: int, arrays: ArrayRecord, clients: list[int], start: int = 0
    ) -> list[Message]:
        """One message per client in `clients`, dealt from slot `start`. The strategy is
        asked afresh every time (a retry too), as Flower's own loop would."""
        config = ConfigRecord(dict(self.base))
        if self.clock is not None:
            config["virtual-time"] = float(self.clock.now)
        built = list(self.strategy.configure_train(server_round, arrays, config, self.grid))
        if self.records is not None and (extra := self.records()):
            built = [with_records(m, extra) for m in built]
        return self.address(built, clients, server_round, start)
