"""The client's half of SecAgg+: Flower's own `secaggplus_mod`, adapted to our replies.

What is masked and summed is the client's update (trained minus received weights).

Flower's mod speaks the legacy FitRes layout (`fitres.parameters`, `fitres.num_examples`)
and hands the app the protocol's own ConfigRecord next to ours. This adapter strips
that record on the way in, converts our reply on the way out, and afterwards removes
everything but the masked vector and our scalar metrics. Messages without SecAgg+
configs pass straight through, so one ClientApp serves both kinds of run.
"""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from learning.streams import Tag
from privacy.client_mods import seed_global_numpy

WEIGHT_KEY = "secagg-weight"  # the weight this client's update carries in the sum


def _is_secagg(msg: Message) -> bool:
    return (
        msg.metadata.message_type == MessageType.TRAIN
        and RECORD_KEY_CONFIGS in msg.content.config_records
    )


def secure_aggregation_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    if not _is_secagg(msg):
        return call_next(msg, ctxt)

    def train_as_fitres(inner: Message, context: Context) -> Message:
        protocol = inner.content.config_records.pop(RECORD_KEY_CONFIGS)
        try:
            reply = call_next(inner, context)
        finally:
            inner.content.config_records[RECORD_KEY_CONFIGS] = protocol
        if reply.has_error():
            return reply
        config = inner.content["config"]
        metrics = reply.content["metrics"]
        weight = int(config.get(WEIGHT_KEY, 0)) or int(metrics["num-examples"])
        content = reply.content
        # The update, not the weights, goes into the sum: it is small (so quantisation
        # never clips it) and its norm is what DP clipping bounds.
        start = inner.content["arrays"].to_numpy_ndarrays()
        trained = content.array_records.pop("arrays").to_numpy_ndarrays()
        content["fitres.parameters"] = ArrayRecord(
            [t - g for t, g in zip(trained, start, strict=True)]
        )
        content["fitres.num_examples"] = MetricRecord({"num_examples": weight})
        content["fitres.metrics"] = ConfigRecord({})
        content["fitres.status"] = ConfigRecord({"code": 0, "message": ""})
        seed_global_numpy(config, Tag.SECAGG_ROUNDING)  # Flower quantises with stochastic rounding
        return reply

    out = secaggplus_mod(msg, ctxt, train_as_fitres)
    if out.has_error():
        return out
    for key in [k for k in out.content.keys() if k.startswith("fitres.")]:
        del out.content[key]
    for key, record in list(out.content.array_records.items()):
        if isinstance(record, ArrayRecord) and not record:
            del out.content[key]
    return out
