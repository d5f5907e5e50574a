"""A Flower-quickstart-style TensorFlow ClientApp, kept only as the perf baseline.

Per call it does what Flower's TensorFlow quickstart does: clear the Keras session,
build and compile a fresh model, set the weights, `model.fit`, read the weights.
Data comes from the same per-process cache as perennial's client (the quickstart
also caches its dataset globally), so the comparison isolates the training path.
"""

from __future__ import annotations

import time

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients.app import experiment_from_message, partition_id_for
from learning.federated_data import client_shard, dataset_for
from learning.models import build_model
from learning.training import to_float_images

quickstart_app = ClientApp()


@quickstart_app.train()
def train(msg: Message, context: Context) -> Message:
    from learning.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    started = time.perf_counter()
    cfg, extras = experiment_from_message(msg)
    pid = partition_id_for(extras, context)
    ds = dataset_for(cfg)
    x, y = client_shard(cfg, pid)
    keras.backend.clear_session()
    model = build_model(cfg.train.model, ds.input_shape, ds.num_classes)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=cfg.train.lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.set_weights(msg.content["arrays"].to_numpy_ndarrays())
    history = model.fit(
        to_float_images(x),
        y,
        epochs=cfg.train.local_epochs,
        batch_size=cfg.train.batch_size,
        verbose=0,
    )
    metrics = MetricRecord(
        {
            "num-examples": len(y),
            "num-steps": -(-len(y) // cfg.train.batch_size) * cfg.train.local_epochs,
            "train-loss": float(history.history["loss"][-1]),
            "train-accuracy": float(history.history["accuracy"][-1]),
            "partition-id": pid,
            "train-seconds": time.perf_counter() - started,
        }
    )
    content = RecordDict({"arrays": ArrayRecord(model.get_weights()), "metrics": metrics})
    return Message(content=content, reply_to=msg)
