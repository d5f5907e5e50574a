"""What may leave a client: a Flower mod that checks the bytes really sent.

A reply may hold the ArrayRecord `arrays` with exactly the array names, shapes and
dtypes of the global model it received, the extra ArrayRecords its strategy's protocol
declares (SCAFFOLD's control-variate delta), under cl-method "fot" the record
`fot-gram` (per dense kernel of the received model, keyed like it, one float32 matrix
of side inputs + 1: a size fixed by the model, never by the data), and one MetricRecord of at most
`MAX_METRICS` known scalar metrics. Checking an Array's `shape`/`dtype` fields is not
enough: they are metadata next to the payload, so an Array can claim (10,) float32 and
carry 25 kB of anything. Each array is therefore deserialised (`allow_pickle=False`),
checked as a `numpy.ndarray` of the model's shape, dtype and byte length, and the reply
is rebuilt from the checked values, so what leaves is exactly their canonical bytes.

Error texts are a channel too: a refusal names a fixed category, never the client's
keys or values, and `fixed_errors_mod` (outermost) replaces the text of any exception
the ClientApp raises, config errors on a SuperNode included, with a fixed message. The
full text is logged on the client, where it stays.

On by default (`weights-only = true`).
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable
from flwr.supercore.differential_privacy import KEY_NORM_BIT

from learning.continual_records import CLIENT_RECORDS
from learning.projection import gram_side, kernel_keys
from strategies.pooling import (
    CHUNK,
    CLIENT_METRICS,
    HEALTH_SUMS,
    POOLED_CLIENTS,
    POOLED_NORMALISER,
    POOLED_UNCLIPPED,
    POOLED_WEIGHT,
)
from strategies.scaffold import SCAFFOLD_DC_KEY

# Extra ArrayRecords a strategy's protocol lets a client send (same shapes as weights).
DECLARED_EXTRAS = {"scaffold": (SCAFFOLD_DC_KEY,)}
# Every scalar a perennial client reports (clients/app.py), plus Flower's clipping bit.
ALLOWED_METRICS = frozenset(
    {
        "num-examples",
        "num-steps",
        "train-loss",
        "train-accuracy",
        "received-loss",
        "partition-id",
        "train-seconds",
        "worker-rss-mb",
        "worker-node",
        "task",
        "eval-loss",
        "eval-accuracy",
        KEY_NORM_BIT,
    }
)
MAX_METRICS = 16
# A pooled reply (multi-client dispatch, clients/pooling.py) carries sums instead of one
# client's weights: the model-shaped ArrayRecord `arrays` holds the pool's sum, the
# strategy's declared extra sums may follow, `metrics` may also hold the pool's scalars,
# and `client-metrics` holds one list entry per client the message named (and nothing
# else: the per-client scalars below, each a list of that length).
POOLED_EXTRAS = {"scaffold": (SCAFFOLD_DC_KEY,)}
# ... and, both or neither, the clients' model-health sums (strategies/pooling.py:
# HealthSum, sum u_i/||u_i|| and sum u_i), model-shaped like the sums. What a one-client
# reply shows the server already (each update) covers them, so they are allowed where
# updates are seen one by one: never under central DP (only the noisy sum of clipped
# updates is released; the unit vectors of those updates are more) or SecAgg+.
POOLED_METRICS = frozenset(
    {POOLED_WEIGHT, POOLED_CLIENTS, POOLED_NORMALISER, POOLED_UNCLIPPED, CHUNK}
)
# The per-client scalars a pooled reply lists (one entry per client named), in order.
CLIENT_LIST_METRICS = (
    "partition-id",
    "status",
    "num-examples",
    "num-steps",
    "train-loss",
    "train-accuracy",
    "train-seconds",
    "update-norm",
)
FAILED = "client update failed (details are logged on the client)"
CLIENT_APP_RAISED_EXCEPTION = 2  # Flower's ErrorCode for an exception in a ClientApp

log = logging.getLogger("perennial.client")


class ReplyRefused(RuntimeError):
    """The reply held something other than weights and known scalar metrics.

    The message is one of a few fixed texts: it reaches the server."""


def _checked_arrays(record: ArrayRecord, want: dict[str, tuple[tuple, np.dtype]]) -> ArrayRecord:
    if list(record.keys()) != list(want):
        raise ReplyRefused("reply arrays do not match the global model's names")
    out = {}
    for name, array in record.items():
        shape, dtype = want[name]
        if not isinstance(array, Array) or array.stype != "numpy.ndarray":
            raise ReplyRefused("a reply array is not a serialised numpy.ndarray")
        try:
            value = array.numpy()  # np.load(..., allow_pickle=False)
        except Exception:
            raise ReplyRefused("a reply array cannot be deserialised") from None
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if (
            type(value) is not np.ndarray
            or value.shape != shape
            or value.dtype != dtype
            or value.nbytes != expected
        ):
            raise ReplyRefused("reply arrays do not match the global model's shapes and dtypes")
        rebuilt = Array(np.ascontiguousarray(value))
        if len(array.data) != len(rebuilt.data):  # bytes after the array's own
            raise ReplyRefused("a reply array carries more bytes than its values")
        out[name] = rebuilt
    return ArrayRecord(out)


def _checked_metrics(record: MetricRecord, allowed: frozenset = ALLOWED_METRICS) -> MetricRecord:
    if len(record) > MAX_METRICS:
        raise ReplyRefused(f"a reply holds more than {MAX_METRICS} metrics")
    out = {}
    for name, value in record.items():
        if name not in allowed:
            raise ReplyRefused("a reply metric is not one a client may report")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ReplyRefused("a reply metric is not a scalar")
        if isinstance(value, numbers.Integral):
            out[name] = int(value)
        else:
            v = float(value)
            out[name] = v if math.isfinite(v) else float("nan")  # no payload in NaN bits
    return MetricRecord(out)


def gram_shapes(received: ArrayRecord) -> dict[str, tuple[tuple, np.dtype]]:
    """What FOT's `fot-gram` may hold: per dense kernel key of the received model, one
    float32 (d+1, d+1) matrix (learning/projection.py)."""
    shapes = [tuple(a.shape) for a in received.values()]
    names = list(received.keys())
    side = {str(i): gram_side(s) for i, s in enumerate(shapes)}
    return {names[int(k)]: ((side[k], side[k]), np.dtype(np.float32)) for k in kernel_keys(shapes)}


def checked_content(
    received: ArrayRecord, reply: Message, strategy: str, cl_method: str = ""
) -> RecordDict:
    """The reply's content rebuilt from checked values; ReplyRefused if anything else."""
    want = {k: (tuple(a.shape), np.dtype(a.dtype)) for k, a in received.items()}
    allowed = {"arrays", *DECLARED_EXTRAS.get(strategy, ())}
    continual = set(CLIENT_RECORDS.get(cl_method, ()))
    content = RecordDict()
    metrics = 0
    for key, record in reply.content.items():
        if isinstance(record, ArrayRecord) and key in continual:
            content[key] = _checked_arrays(record, gram_shapes(received))
        elif isinstance(record, ArrayRecord) and key in allowed:
            content[key] = _checked_arrays(record, want)
        elif isinstance(record, MetricRecord) and key == "metrics":
            metrics += 1
            content[key] = _checked_metrics(record)
        else:
            raise ReplyRefused("a reply record is not allowed to leave the client")
    if metrics > 1:
        raise ReplyRefused("a reply holds more than one MetricRecord")
    return content


def _checked_lists(record: MetricRecord, length: int) -> MetricRecord:
    if set(record.keys()) != set(CLIENT_LIST_METRICS):
        raise ReplyRefused("a pooled reply's client metrics are not the declared ones")
    out = {}
    for name, values in record.items():
        if not isinstance(values, list) or len(values) != length:
            raise ReplyRefused("a pooled reply's client metrics do not list every client")
        clean = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ReplyRefused("a reply metric is not a scalar")
            if isinstance(v, numbers.Integral):
                clean.append(int(v))
            else:
                f = float(v)
                clean.append(f if math.isfinite(f) else float("nan"))
        if clean and any(isinstance(c, float) for c in clean):
            clean = [float(c) for c in clean]  # one type per list (Flower's rule)
        out[name] = clean
    return MetricRecord(out)


def pooled_health_allowed(config) -> bool:
    """Whether a pooled reply may carry its clients' model-health sums (the worker
    computes them only then): not under central DP, not under SecAgg+."""
    return str(config.get("dp", "none")) != "central" and not bool(
        config.get("secure-aggregation", False)
    )


def checked_pooled_content(received: ArrayRecord, reply: Message, config) -> RecordDict:
    """A pooled reply rebuilt from checked values; ReplyRefused if anything else."""
    want = {k: (tuple(a.shape), np.dtype(a.dtype)) for k, a in received.items()}
    strategy = str(config.get("strategy", ""))
    allowed = {"arrays", *POOLED_EXTRAS.get(strategy, ())}
    if pooled_health_allowed(config):
        allowed.update(HEALTH_SUMS)
    clients = len(list(config["partition-ids"]))
    content = RecordDict()
    for key, record in reply.content.items():
        if isinstance(record, ArrayRecord) and key in allowed:
            content[key] = _checked_arrays(record, want)
        elif isinstance(record, MetricRecord) and key == "metrics":
            content[key] = _checked_metrics(record, ALLOWED_METRICS | POOLED_METRICS)
        elif isinstance(record, MetricRecord) and key == CLIENT_METRICS:
            content[key] = _checked_lists(record, clients)
        else:
            raise ReplyRefused("a reply record is not allowed to leave the client")
    if "arrays" not in content or "metrics" not in content or CLIENT_METRICS not in content:
        raise ReplyRefused("a pooled reply lacks its sums or metrics")
    if len({k for k in HEALTH_SUMS if k in content}) not in (0, len(HEALTH_SUMS)):
        raise ReplyRefused("a pooled reply's health sums are incomplete")
    return content


def check_reply(received: ArrayRecord, reply: Message, strategy: str) -> None:
    """Raise ReplyRefused unless `reply` holds only what may leave a client."""
    checked_content(received, reply, strategy)


def weights_only_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower mod: run the handler, then send a reply rebuilt from its checked values."""
    reply = call_next(msg, context)
    if reply.has_error() or "arrays" not in msg.content:
        return reply
    config = msg.content["config"] if "config" in msg.content else {}
    if not bool(config.get("weights-only", True)):
        return reply
    if "partition-ids" in config:
        content = checked_pooled_content(msg.content["arrays"], reply, config)
    else:
        strategy, method = str(config.get("strategy", "")), str(config.get("cl-method", ""))
        content = checked_content(msg.content["arrays"], reply, strategy, method)
    return Message(content=content, reply_to=msg)


def fixed_errors_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower mod (outermost): no exception text leaves the client.

    Flower would send `str(exception)` to the server, and exception texts can hold
    anything the client has (a config value, a path, the bytes of a bad file). The
    server gets a fixed text instead (a refusal keeps its fixed category)."""
    try:
        reply = call_next(msg, context)
    except ReplyRefused as exc:
        log.error("reply refused: %s", exc)
        return Message(Error(CLIENT_APP_RAISED_EXCEPTION, f"reply refused: {exc}"), reply_to=msg)
    except Exception:
        log.exception("client update failed")
        return Message(Error(CLIENT_APP_RAISED_EXCEPTION, FAILED), reply_to=msg)
    if reply.has_error():
        log.error("client update failed: %s", reply.error.reason)
        return Message(Error(reply.error.code, FAILED), reply_to=msg)
    return reply
