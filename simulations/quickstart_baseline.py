"""The Flower-quickstart way, kept only as the perf benchmark's baseline (c).

What a user gets from Flower's TensorFlow quickstart recipe on the same runtime: one
SuperNode per client, Flower's own `FedAvg.start` loop, and a ClientApp that per call
clears the Keras session, builds and compiles a fresh model, sets the weights,
`model.fit`s and reads the weights back. Data comes from the same per-process cache as
perennial's client (the quickstart also caches its dataset globally), so the comparison
isolates the engine: model reuse, compiled step, slots, thread sizing.
"""

from __future__ import annotations

import time
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from clients.app import experiment_from_message, partition_id_for
from learning.config import ExperimentConfig
from learning.federated_data import client_shard, dataset_for
from learning.models import build_model
from learning.training import to_float_images
from learning.warm_start import initial_weights

quickstart_app = ClientApp()


@quickstart_app.train()
def train(msg: Message, context: Context) -> Message:
    from learning.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    started = time.perf_counter()
    cfg, extras = experiment_from_message(msg)
    pid = partition_id_for(extras, context)  # Flower's node_config partition-id
    ds = dataset_for(cfg)
    x, y = client_shard(cfg, pid)
    keras.backend.clear_session()
    model = build_model(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
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
            "train-loss": float(history.history["loss"][-1]),
            "train-accuracy": float(history.history["accuracy"][-1]),
            "train-seconds": time.perf_counter() - started,
        }
    )
    content = RecordDict({"arrays": ArrayRecord(model.get_weights()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


def quickstart_server(cfg: ExperimentConfig, out: dict[str, Any]) -> ServerApp:
    """Flower's FedAvg over all `num-clients` SuperNodes for `rounds`; times `start`."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        fed = cfg.federation
        ds = dataset_for(cfg)
        weights = initial_weights(
            cfg.train.model, ds.input_shape, ds.num_classes, fed.seed, settings=cfg.plugin
        )
        strategy = FedAvg(
            fraction_train=fed.clients_per_round / fed.num_clients,
            fraction_evaluate=0.0,
            min_train_nodes=fed.clients_per_round,
            min_available_nodes=fed.num_clients,
        )
        started = time.perf_counter()
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(weights),
            num_rounds=fed.rounds,
            train_config=ConfigRecord(cfg.to_flat()),
        )
        out["seconds"] = time.perf_counter() - started

    return app
