"""Per-round metrics as TensorBoard event files.

Written with the `tensorboard` package's own event-file writer and protos (pure Python,
no TensorFlow ops): an asynchronous run writes a row per client update, and building a
TensorFlow summary op per scalar cost about 8 ms a row; a protobuf costs microseconds.
The records are what `tf.summary.scalar`/`histogram` write (a tensor value with the
scalars/histograms plugin metadata), so TensorBoard shows ordinary scalars and histograms.
"""

from __future__ import annotations

import functools
import numbers
import time
from pathlib import Path
from typing import Any

import numpy as np

from learning.tf_import import import_tensorflow

SCALAR_PREFIX = "metrics/"
HISTOGRAM_BUCKETS = 30
# The writer's own thread flushes what is pending every second (and close() the rest);
# the loop never waits on a flush, since an asynchronous run writes a row per update.
FLUSH_SECONDS = 1.0
# Events the loop may hand the writer's thread before `add_event` blocks (the package's
# default is 10: a row per update would then wait on the thread's writes).
QUEUE_EVENTS = 1000


def _is_number(value: Any) -> bool:
    """int/float (numpy ones too); bool and None are flags/gaps, not measurements."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _metadata(plugin_name: str, data_class: str):
    from tensorboard.compat.proto import summary_pb2

    md = summary_pb2.SummaryMetadata()
    md.plugin_data.plugin_name = plugin_name
    md.data_class = summary_pb2.DataClass.Value(data_class)
    return md


@functools.cache
def _scalar_protos():
    """(TensorProto, DT_FLOAT, TensorShapeProto), imported once: scalar_tensor runs per field."""
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    return tensor_pb2.TensorProto, types_pb2.DT_FLOAT, tensor_shape_pb2.TensorShapeProto


def scalar_tensor(value: float):
    """A float32 scalar as the TensorProto `make_tensor_proto(np.float32(value))` builds
    (the same bytes), without its type inference: about 8 us a field, 40 fields a row."""
    tensor, dt_float, shape = _scalar_protos()
    return tensor(dtype=dt_float, tensor_shape=shape(), float_val=[float(np.float32(value))])


def histogram_buckets(values: np.ndarray, buckets: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """[k, 3] float64 rows (left edge, right edge, count): TensorBoard's histogram tensor.

    Non-finite values are dropped (they have no bucket); an empty input gives [0, 3].
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return np.zeros((0, 3), dtype=np.float64)
    counts, edges = np.histogram(flat, bins=buckets)
    return np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)


class TensorBoardWriter:
    """One event file per run: the writer is created once; rows reach the file within
    about FLUSH_SECONDS, and all of them on close."""

    def __init__(self, log_dir: Path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(
            str(self.log_dir), max_queue_size=QUEUE_EVENTS, flush_secs=FLUSH_SECONDS
        )
        self._scalar_md = _metadata("scalars", "DATA_CLASS_SCALAR")
        self._histogram_md = _metadata("histograms", "DATA_CLASS_TENSOR")
        self._closed = False

    def write_round(
        self, row: dict[str, Any], histograms: dict[str, np.ndarray] | None = None
    ) -> None:
        """Every numeric field of `row` as `metrics/<key>` at step `row["round"]`.

        `round` itself is the step, not a scalar. `histograms` maps full tag names
        (e.g. `updates/client_norms`) to arrays of any shape.
        """
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.util.tensor_util import make_tensor_proto

        if self._closed:
            raise RuntimeError("TensorBoardWriter is closed")
        step = row.get("round")
        if not _is_number(step):
            raise ValueError(f"metrics row has no numeric 'round' (got {step!r})")
        # operator diagnostics of a central-DP run: fields epsilon does not cover get
        # their own tag prefix, so nobody mistakes them for released figures
        outside = set(row.get("outside_epsilon") or ())
        values = [
            summary_pb2.Summary.Value(
                tag=("outside_epsilon/" if key in outside else SCALAR_PREFIX) + key,
                tensor=scalar_tensor(value),
                metadata=self._scalar_md,
            )
            for key, value in row.items()
            if key != "round" and _is_number(value)
        ]
        values += [
            summary_pb2.Summary.Value(
                tag=tag, tensor=make_tensor_proto(histogram_buckets(v)), metadata=self._histogram_md
            )
            for tag, v in (histograms or {}).items()
        ]
        event = event_pb2.Event(
            wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=values)
        )
        self._writer.add_event(event)

    def close(self) -> None:
        """Flush and release the event file; further writes raise."""
        if not self._closed:
            self._writer.close()
            self._closed = True

    def __enter__(self) -> TensorBoardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_scalars(log_dir: Path, tag: str) -> dict[int, float]:
    """{step: value} of scalar `tag` across the event files in `log_dir` (later wins).

    Uses TensorFlow's own record reader and Event proto, so tests and docs need no
    `tensorboard` package. TF2 summaries store scalars as tensors (float32, so 0.1
    reads back as 0.100000001); TF1-style `simple_value`s are read too.
    """
    tf = import_tensorflow()
    from tensorflow.core.util import event_pb2

    out: dict[int, float] = {}
    for path in sorted(Path(log_dir).glob("**/events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag != tag:
                    continue
                if value.HasField("tensor"):
                    out[int(event.step)] = float(tf.make_ndarray(value.tensor).reshape(()))
                elif value.HasField("simple_value"):
                    out[int(event.step)] = float(value.simple_value)
    return out
