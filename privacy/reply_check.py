"""A client-side Flower mod that refuses to send anything but the model's weights.

What may leave a client: the ArrayRecord `arrays` with exactly the array names, shapes
and dtypes of the global model it received, the extra ArrayRecords its strategy's
protocol declares (SCAFFOLD's control-variate delta), and a MetricRecord of scalars.
Anything else (extra arrays, raw examples, per-example lists in metrics) stops the
reply: the mod raises, Flower turns that into an error reply, and the server counts a
failure. On by default (`weights-only = true`).
"""

from __future__ import annotations

import numbers

from flwr.app import ArrayRecord, Context, Message, MetricRecord
from flwr.clientapp.typing import ClientAppCallable

from strategies.scaffold import SCAFFOLD_DC_KEY

# Extra ArrayRecords a strategy's protocol lets a client send (same shapes as weights).
DECLARED_EXTRAS = {"scaffold": (SCAFFOLD_DC_KEY,)}


class ReplyRefused(RuntimeError):
    """The reply held something other than weights and scalar metrics."""


def check_reply(received: ArrayRecord, reply: Message, strategy: str) -> None:
    """Raise ReplyRefused unless `reply` holds only what may leave a client."""
    want = {k: (a.shape, a.dtype) for k, a in received.items()}
    allowed = {"arrays", "metrics", *DECLARED_EXTRAS.get(strategy, ())}
    for key, record in reply.content.items():
        if key not in allowed:
            raise ReplyRefused(f"reply record {key!r} is not allowed to leave the client")
        if isinstance(record, ArrayRecord):
            got = {k: (a.shape, a.dtype) for k, a in record.items()}
            if got != want:
                raise ReplyRefused(
                    f"reply arrays {key!r} do not match the global model's names, shapes and dtypes"
                )
        elif isinstance(record, MetricRecord):
            for name, value in record.items():
                if not isinstance(value, numbers.Real) or isinstance(value, bool):
                    raise ReplyRefused(f"metric {name!r} is not a scalar")
        else:
            raise ReplyRefused(f"reply record {key!r} is a {type(record).__name__}")


def weights_only_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower mod: run the handler, then check its reply before it leaves."""
    reply = call_next(msg, context)
    if reply.has_error() or "arrays" not in msg.content:
        return reply
    config = msg.content["config"] if "config" in msg.content else {}
    if not bool(config.get("weights-only", True)):
        return reply
    check_reply(msg.content["arrays"], reply, str(config.get("strategy", "")))
    return reply
