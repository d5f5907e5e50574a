"""What the paper strategies share: array helpers and a thin `FedAvg` shell.

Each strategy module keeps its paper's math as pure functions on lists of NumPy
arrays (one per model tensor, in the order of the model's ArrayRecord keys). The
Flower side is the same for all of them: remember the global model x that
`configure_train` sends, validate the replies, read their ArrayRecords back in that
key order, keep one named list of arrays as server state across rounds and
checkpoints, and return the new model as an ArrayRecord. `ArrayStrategy` does that
once, so a subclass only adds what its paper needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import validate_message_reply_consistency

from learning.errors import AggregationError
from strategies.pooling import PoolSum

Arrays = list[np.ndarray]
Replies = list[RecordDict]  # validated contents of the train replies
Step = tuple[Arrays, Arrays]  # new (x, state) of a server step


def cast_like(ref: np.ndarray, value: np.ndarray) -> np.ndarray:
    """`value` in the floating dtype the model array `ref` is stored in.

    The math runs in float64; results go back in the model's own precision (at least
    float32, so integer arrays do not truncate updates).
    """
    return np.asarray(value, dtype=np.result_type(np.asarray(ref).dtype, np.float32))


def zeros_like_model(x: Arrays) -> Arrays:
    """Zero arrays shaped like `x` in its floating dtypes: the initial server state."""
    return [np.zeros(np.shape(a), np.result_type(np.asarray(a).dtype, np.float32)) for a in x]


def check_like(ref: Arrays, other: Arrays, what: str) -> None:
    """Raise a one-line `AggregationError` unless `other` has the shapes of `ref`.

    NumPy would otherwise broadcast mismatched arrays silently or fail deep inside
    the math with a message that does not say which input was wrong.
    """
    if len(other) != len(ref):
        raise AggregationError(f"{what} has {len(other)} arrays, expected {len(ref)}")
    for i, (a, b) in enumerate(zip(ref, other, strict=True)):
        if np.shape(a) != np.shape(b):
            raise AggregationError(
                f"{what} array {i} has shape {np.shape(b)}, expected {np.shape(a)}"
            )


def mean_delta(base: Arrays | None, clients: list[Arrays], layer: int) -> np.ndarray:
    """mean_i(clients[i][layer] - base[layer]) in float64 (base None = zeros)."""
    total = np.zeros(np.shape(clients[0][layer]), dtype=np.float64)
    for arrays in clients:
        total += np.asarray(arrays[layer], dtype=np.float64)
    total /= len(clients)
    if base is not None:
        total -= np.asarray(base[layer], dtype=np.float64)
    return total


def record_arrays(record: ArrayRecord, keys: list[str]) -> Arrays:
    """The record's arrays in the order of `keys` (the model's order, not the record's)."""
    return [record[k].numpy() for k in keys]


def arrays_record(keys: list[str], arrays: Arrays) -> ArrayRecord:
    """An ArrayRecord naming `arrays` by `keys`, so clients read them as the model's."""
    return ArrayRecord({k: Array(np.asarray(a)) for k, a in zip(keys, arrays, strict=True)})


def reply_arrays(content: RecordDict, key: str, keys: list[str], who: str) -> Arrays:
    """The ArrayRecord `key` of a reply, in the order of `keys`.

    Raises `AggregationError` (naming the strategy `who`) if the record is missing or
    its keys are not the model's: the math pairs arrays by position.
    """
    record = content.get(key)
    if not isinstance(record, ArrayRecord):
        raise AggregationError(f"a {who} reply has no {key!r} ArrayRecord")
    if set(record.keys()) != set(keys):
        raise AggregationError(f"a {who} reply's {key!r} keys differ from the model's")
    return record_arrays(record, keys)


def reply_metrics(content: RecordDict) -> MetricRecord:
    """A reply's MetricRecord (validation guarantees there is exactly one)."""
    return next(iter(content.metric_records.values()))


class ArrayStrategy(FedAvg):
    """`FedAvg` shell for strategies written as pure functions on lists of arrays.

    It keeps the global model x sent by `configure_train` (``_x``, keys in ``_keys``)
    because most papers' server steps need it and Flower's `aggregate_train` does not
    receive it, and it keeps an optional server state (a list of arrays, zeros on
    first use) under ``"_" + STATE``; checkpointing saves these attributes by name.
    Subclasses implement `server_step`; `aggregate_train` calls it with x, the state
    and the validated reply contents.

    Parameters
    ----------
    **kwargs
        Passed to Flower's `FedAvg` (sampling, record keys, metric aggregation).

    Attributes
    ----------
    NAME : str
        The strategy's name in error messages.
    STATE : str or None
        Key of the server state in `state_dict` and attribute suffix (``"c"`` is
        ``self._c``); None for strategies without state.
    SINGLE_ARRAY_RECORD : bool
        Whether replies carry only the model's ArrayRecord (Flower's check); False
        for protocols that send extra ArrayRecords back.
    """

    NAME: ClassVar[str] = "strategy"
    STATE: ClassVar[str | None] = None
    SINGLE_ARRAY_RECORD: ClassVar[bool] = True
    # The partial aggregate a worker may send for this strategy (strategies/pooling.py),
    # or None: the server step needs every client's update.
    POOLING: ClassVar[str | None] = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._keys: list[str] = []
        self._x: Arrays | None = None
        if self.STATE is not None:
            self._set_state(None)

    def _get_state(self) -> Arrays | None:
        return None if self.STATE is None else getattr(self, f"_{self.STATE}")

    def _set_state(self, value: Arrays | None) -> None:
        if self.STATE is not None:
            setattr(self, f"_{self.STATE}", value)

    def state_dict(self) -> dict[str, Arrays]:
        """The server state, ``{STATE: [...]}`` (empty list before the first round)."""
        if self.STATE is None:
            return {}
        return {self.STATE: [a.copy() for a in self._get_state() or []]}

    def load_state_dict(self, state: dict[str, Arrays]) -> None:
        """Restore what `state_dict` returned; shapes are checked at the next round."""
        if self.STATE is None:
            return
        if self.STATE not in state:
            raise AggregationError(f"{self.NAME} state has no {self.STATE!r} entry")
        self._set_state([np.array(a) for a in state[self.STATE]] or None)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's train messages; remembers x and sets the state to zeros on first use."""
        self._keys = list(arrays.keys())
        self._x = record_arrays(arrays, self._keys)
        if self.STATE is not None:
            state = self._get_state()
            if state is None:
                state = zeros_like_model(self._x)
                self._set_state(state)
            check_like(self._x, state, f"{self.NAME} state {self.STATE}")
        return super().configure_train(server_round, arrays, config, grid)

    def _valid_contents(self, replies: Iterable[Message]) -> Replies:
        """Contents of the replies without errors, checked as Flower's FedAvg does.

        Empty if no reply is usable (the round then returns ``(None, None)``).
        """
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        contents = [msg.content for msg in valid]
        if contents:
            validate_message_reply_consistency(
                contents, self.weighted_by_key, check_arrayrecord=self.SINGLE_ARRAY_RECORD
            )
        return contents

    def _started(self) -> tuple[Arrays, Arrays]:
        """The remembered x and state ([] if stateless), or an error before round one."""
        state = [] if self.STATE is None else self._get_state()
        if self._x is None or state is None:
            raise AggregationError(f"{self.NAME} aggregate_train ran before configure_train")
        return self._x, state

    def _reply_arrays(self, content: RecordDict, key: str | None = None) -> Arrays:
        """A reply's ArrayRecord `key` (default: the model's) in the model's key order."""
        return reply_arrays(content, key or self.arrayrecord_key, self._keys, self.NAME)

    def _record(self, arrays: Arrays) -> ArrayRecord:
        """`arrays` as an ArrayRecord under the model's keys."""
        return arrays_record(self._keys, arrays)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The new model from `server_step`, and FedAvg's aggregate of the metrics.

        ``(None, None)`` if no reply is usable; x and the state move on only if the
        step succeeds.
        """
        contents = self._valid_contents(replies)
        if not contents:
            return None, None
        x, state = self._started()
        x_new, state_new = self.server_step(x, state, contents)
        self._x = x_new
        self._set_state(state_new)
        return self._record(x_new), self.train_metrics_aggr_fn(contents, self.weighted_by_key)

    def aggregate_pooled(self, server_round: int, pool: PoolSum) -> ArrayRecord | None:
        """The new model from a round's pooled sums (`POOLING` kind); x and the state
        move on as in `aggregate_train`. None if no client was pooled."""
        if self.POOLING is None:
            raise AggregationError(f"{self.NAME} needs individual updates; it cannot pool")
        if pool.clients == 0:
            return None
        x, state = self._started()
        x_new, state_new = self.pooled_step(x, state, pool)
        self._x = x_new
        self._set_state(state_new)
        return self._record(x_new)

    def pooled_step(self, x: Arrays, state: Arrays, pool: PoolSum) -> Step:
        """`server_step` on the cohort's sums instead of its replies."""
        raise NotImplementedError

    def server_step(self, x: Arrays, state: Arrays, contents: Replies) -> Step:
        """The paper's server update: new ``(x, state)`` from x, state and the replies.

        `contents` are validated; read their arrays with `_reply_arrays`. Stateless
        strategies get and return ``[]`` as the state.
        """
        raise NotImplementedError
