"""TensorBoard event files read back per round, by TensorFlow's record reader and by
TensorBoard's own loader (as scalars and histograms)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def _rows():
    return [
        {"round": 1, "accuracy": 0.25, "loss": 2.0, "failures": 0, "note": "x"},
        {"round": 2, "accuracy": 0.5, "loss": None, "failures": 1, "evaluated": True},
        {"round": 3, "accuracy": 0.75, "loss": 0.5, "failures": 0},
    ]


def _readable(log_dir, tag, want, within=20.0):
    """Whether `want` reads back from `log_dir` before `within` seconds pass."""
    from server.tensorboard import read_scalars

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if read_scalars(log_dir, tag) == pytest.approx(want):
            return True
        time.sleep(0.2)
    return False


def test_scalars_read_back_for_every_round(tmp_path):
    from server.tensorboard import TensorBoardWriter, read_scalars

    with TensorBoardWriter(tmp_path / "tb") as writer:
        for row in _rows():
            writer.write_round(row)
        # the writer's thread flushes within a second: readable before close (a live
        # TensorBoard sees the run), although the loop never waited on a flush
        assert _readable(tmp_path / "tb", "metrics/accuracy", {1: 0.25, 2: 0.5, 3: 0.75})
    assert read_scalars(tmp_path / "tb", "metrics/loss") == pytest.approx({1: 2.0, 3: 0.5})
    assert read_scalars(tmp_path / "tb", "metrics/failures") == {1: 0.0, 2: 1.0, 3: 0.0}
    # bools, strings and the step itself are not scalars
    for tag in ("metrics/evaluated", "metrics/note", "metrics/round"):
        assert read_scalars(tmp_path / "tb", tag) == {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(tmp_path / "tb"))
    board.Reload()  # what TensorBoard's scalars dashboard loads
    assert "metrics/accuracy" in board.Tags()["tensors"]
    assert board.SummaryMetadata("metrics/accuracy").plugin_data.plugin_name == "scalars"


def test_writing_a_row_never_waits_for_a_flush_and_close_writes_them_all(tmp_path, monkeypatch):
    """An asynchronous run writes a row per client update: the loop only queues it, the
    writer's thread flushes (each flush cost more than writing the row)."""
    from server.tensorboard import TensorBoardWriter, read_scalars

    with TensorBoardWriter(tmp_path / "tb") as writer:
        flushes = []
        monkeypatch.setattr(writer._writer, "flush", lambda: flushes.append(1))
        for row in _rows():
            writer.write_round(row)
        assert not flushes
        monkeypatch.undo()
    assert read_scalars(tmp_path / "tb", "metrics/accuracy") == pytest.approx(
        {1: 0.25, 2: 0.5, 3: 0.75}
    )


def test_histograms_are_written_as_bucket_tensors(tmp_path):
    from learning.tf_import import import_tensorflow
    from server.tensorboard import TensorBoardWriter

    tf = import_tensorflow()  # quietly, before any other tensorflow import
    from tensorflow.core.util import event_pb2

    writer = TensorBoardWriter(tmp_path)
    rng = np.random.default_rng(0)
    writer.write_round(
        {"round": 1, "accuracy": 0.1},
        histograms={
            "updates/client_norms": rng.random(10),
            "updates/empty": np.array([]),
            "updates/constant": np.full((2, 3), 4.0),
            "updates/with_nan": np.array([1.0, np.nan, np.inf, 2.0]),
        },
    )
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(RuntimeError):
        writer.write_round({"round": 2})
    shapes = {}
    for path in tmp_path.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            for value in event_pb2.Event.FromString(record.numpy()).summary.value:
                if value.tag.startswith("updates/"):
                    assert value.metadata.plugin_data.plugin_name == "histograms"
                    buckets = tf.make_ndarray(value.tensor)
                    shapes[value.tag] = (buckets.shape, buckets[:, 2].sum())
    assert shapes["updates/client_norms"] == ((30, 3), 10)
    assert shapes["updates/empty"] == ((0, 3), 0)
    assert shapes["updates/constant"] == ((30, 3), 6)
    assert shapes["updates/with_nan"] == ((30, 3), 2)


def test_row_without_round_is_refused(tmp_path):
    from server.tensorboard import TensorBoardWriter

    writer = TensorBoardWriter(tmp_path)
    with pytest.raises(ValueError, match="round"):
        writer.write_round({"accuracy": 0.5})
    writer.close()


@pytest.mark.parametrize(
    "value",
    [
        0.0,
        0.1,
        -3.5,
        7,
        1e30,
        float("inf"),
        float("nan"),
        np.float64(2.25),
        np.int64(2**40),
        np.float16(0.5),
    ],
)
def test_scalar_tensor_is_the_proto_make_tensor_proto_builds(value):
    from tensorboard.util.tensor_util import make_tensor_proto

    from server.tensorboard import scalar_tensor

    want = make_tensor_proto(np.float32(value)).SerializeToString()
    assert scalar_tensor(value).SerializeToString() == want
