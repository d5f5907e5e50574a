"""The Flower ClientApp: find my shard, train from the global weights, reply.

What leaves a client is an ArrayRecord of weights and a MetricRecord of scalars,
nothing else. The logical client (partition id) is named by the server in the
message config; in a real deployment without one, the SuperNode's own
`partition-id` node config is used.
"""

from __future__ import annotations

import time

import numpy as np
import psutil
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients.attacks import fault_draw, flip_labels, is_malicious, poison_update
from clients.continual import continual_step
from clients.personal import evaluation_model, keeps_state, train_round
from clients.pooling import is_pooled, pooled_reply
from clients.stateful import STATEFUL
from learning.config import ExperimentConfig, key_spec
from learning.continual_records import KD_METHODS, SERVER_RECORDS
from learning.errors import ConfigError
from learning.federated_data import (
    client_shard,
    client_split,
    dataset_for,
    task_shard,
    training_shard,
)
from learning.plugin_settings import is_setting
from learning.scenarios import client_task
from learning.streams import Tag, generator
from learning.tf_import import configure_threads
from learning.training import (
    LocalTrainConfig,
    get_trainer,
    to_float_images,
)
from privacy.client_mods import privacy_mod
from privacy.reply_check import fixed_errors_mod, weights_only_mod
from privacy.secagg.client_mod import secure_aggregation_mod

# Outermost first: no exception text leaves the client, SecAgg+ masks what leaves it,
# the weights-only check sees the clipped (and, for local DP, noised) reply,
# privacy_mod clips the app's update.
app = ClientApp(mods=[fixed_errors_mod, secure_aggregation_mod, weights_only_mod, privacy_mod])


_SPEC = key_spec()
_CONFIGS: dict[tuple, ExperimentConfig] = {}
_CONFIGS_KEPT = 4  # runs (or config changes) remembered per worker process


def experiment_from_message(msg: Message) -> tuple[ExperimentConfig, dict]:
    """Validated experiment config plus the per-message extras (round, partition).

    The config is built once per process per run: it is cached under the run id and the
    message's experiment keys (plug-in settings `plugin.<name>` among them). Keys that
    change per message (`partition-id`, `server-round`, the clipping norm the server
    stamps each round) are not experiment keys, so they go to `extras` and never miss
    the cache; a change to any experiment key is a new cache entry (types included: a
    setting of 1 is not one of true), so a stale config is never returned.
    """
    record = msg.content["config"]
    flat = {k: v for k, v in record.items() if k in _SPEC or is_setting(k)}
    extras = {k: v for k, v in record.items() if k not in flat}
    typed = tuple(sorted((k, type(v).__name__, v) for k, v in flat.items()))
    key = (msg.metadata.run_id, typed)
    cfg = _CONFIGS.get(key)
    if cfg is None:
        cfg = ExperimentConfig.from_flat(flat)
        if len(_CONFIGS) >= _CONFIGS_KEPT:
            _CONFIGS.pop(next(iter(_CONFIGS)))
        _CONFIGS[key] = cfg
    return cfg, extras


def virtual_time(extras: dict) -> float | None:
    """The virtual start time the server stamped (`task-seconds` > 0), else None."""
    return float(extras["virtual-time"]) if "virtual-time" in extras else None


def partition_id_for(extras: dict, context: Context) -> int:
    if "partition-id" in extras:
        return int(extras["partition-id"])
    return int(context.node_config.get("partition-id", 0))


def node_local_config(cfg: ExperimentConfig, extras: dict, context: Context) -> ExperimentConfig:
    """The data this SuperNode holds, in a deployment (no partition id in the message).

    The node config decides: `partition-id`/`num-partitions` split the dataset the
    way a simulation with `num-clients = num-partitions` would, and `data-path` (with
    an optional `dataset`) points at the node's own files, which are then all its data
    unless `num-partitions` is also given. In simulation mode `cfg` is returned as is.
    """
    if "partition-id" in extras:
        return cfg
    node = context.node_config
    changes: dict = {}
    for key in ("dataset", "data-path"):
        if key in node:
            changes[key] = str(node[key])
    parts = int(
        node.get("num-partitions", 1 if "data-path" in node else cfg.federation.num_clients)
    )
    pid = partition_id_for(extras, context)
    if not 0 <= pid < parts:
        raise ConfigError(
            f"node config partition-id={pid} is outside [0, num-partitions={parts}); "
            "start the SuperNode with --node-config 'partition-id=I num-partitions=N'"
        )
    changes["num-clients"] = parts
    changes["clients-per-round"] = min(cfg.federation.clients_per_round, parts)
    return cfg.replace(**changes)


def local_train_config(cfg: ExperimentConfig, server_round: int = 1) -> LocalTrainConfig:
    t = cfg.train
    mu = {"fedprox": cfg.strategy.proximal_mu, "feddyn": cfg.strategy.feddyn_alpha}.get(
        cfg.strategy.strategy, 0.0
    )
    return LocalTrainConfig(
        epochs=t.local_epochs,
        batch_size=t.batch_size,
        lr=t.lr * t.lr_decay ** max(0, server_round - 1),
        optimizer=t.optimizer,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        proximal_mu=mu,
        max_steps=t.max_local_steps,
        ewc_lambda=cfg.continual.ewc_lambda if cfg.continual.cl_method == "ewc" else 0.0,
        lwf_alpha=cfg.continual.lwf_alpha if cfg.continual.cl_method in KD_METHODS else 0.0,
        lwf_temperature=cfg.continual.lwf_temperature,
    )


def train_update(
    msg: Message,
    context: Context,
    weights: list[np.ndarray] | None = None,
    parsed: tuple[ExperimentConfig, dict] | None = None,
) -> tuple[RecordDict, dict]:
    """Run one local update; returns the reply content and the per-message extras.

    A pooled message's clients pass the weights it carried (deserialised once) and its
    parsed config with this client's `partition-id` in the extras."""
    cfg, extras = parsed or experiment_from_message(msg)
    configure_threads(int(round(cfg.runtime.cpus_per_client)) or 1)
    pid = partition_id_for(extras, context)
    cfg = node_local_config(cfg, extras, context)
    server_round = int(extras.get("server-round", 0))
    started = time.perf_counter()
    seed, faults = cfg.federation.seed, cfg.attack
    if fault_draw(seed, server_round, pid, "crash") < faults.fault_crash_prob:
        raise RuntimeError(f"simulated crash of client {pid} in round {server_round}")
    straggles = fault_draw(seed, server_round, pid, "straggler") < faults.fault_straggler_prob
    if straggles and cfg.federation.federation_mode == "deployment":
        # Only a real deployment waits; in simulation the server's virtual clock charges
        # the delay (server/pipeline/clock.py), nothing sleeps.
        time.sleep(faults.fault_straggler_delay)
    ds = dataset_for(cfg)
    trainer = get_trainer(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
    if weights is None:
        weights = msg.content["arrays"].to_numpy_ndarrays()
    step = None
    if cfg.continual.scenario != "none":  # this round's task data (+ method inputs)
        received = {
            k: msg.content[k].to_numpy_ndarrays() for k in SERVER_RECORDS if k in msg.content
        }
        step = continual_step(
            cfg, pid, server_round, weights, trainer, virtual_time(extras), received
        )
        x, y = step.x, step.y
    else:
        x, y = training_shard(cfg, pid)  # local-eval: the local train split
    malicious = is_malicious(cfg, pid)
    if malicious and faults.attack == "label-flip":
        y = flip_labels(y, ds.num_classes)
    received_loss = None
    if cfg.strategy.strategy == "qfedavg":  # q-FFL's F_k(w^t): one evaluate pass first
        received_loss, _ = trainer.evaluate(weights, to_float_images(x), y)
    rng = generator(cfg.federation.seed, Tag.LOCAL_TRAIN, server_round, pid)
    algorithm = STATEFUL.get(cfg.strategy.strategy)
    state = algorithm(cfg, pid, server_round, msg, weights) if algorithm else None
    ltc = local_train_config(cfg, server_round)
    sent = None
    if keeps_state(cfg):  # personalised: personal state in, shared part out
        fx = to_float_images(x)
        sent, result = train_round(cfg, pid, server_round, weights, trainer, fx, y, ltc, rng)
    else:
        result = trainer.train(
            weights,
            to_float_images(x),
            y,
            ltc,
            rng,
            correction=state.correction if state else None,
            continual=step.inputs if step else None,
        )
    if step is not None:
        step.save()
    metrics = MetricRecord(
        {
            "num-examples": int(result.num_examples),
            "num-steps": int(result.num_steps),
            "train-loss": float(result.loss),
            "train-accuracy": float(result.accuracy),
            "partition-id": pid,
            "train-seconds": time.perf_counter() - started,
            "worker-rss-mb": psutil.Process().memory_info().rss / 2**20,
            "worker-node": worker_node(None if "partition-id" in extras else context),
            "task": step.task if step else 0,
        }
    )
    if received_loss is not None:
        metrics["received-loss"] = float(received_loss)
    sent = result.weights if sent is None else sent
    if malicious:
        noise = generator(seed, Tag.ATTACK_NOISE, server_round, pid)
        sent = poison_update(
            faults.attack, weights, sent, faults.attack_scale, faults.attack_sigma, noise
        )
    if fault_draw(seed, server_round, pid, "nan") < faults.fault_nan_prob:
        sent = [np.full_like(w, np.nan) for w in sent]
    content = RecordDict({"arrays": ArrayRecord(sent), "metrics": metrics})
    for key, named in (step.report(result.weights) if step else {}).items():
        content[key] = ArrayRecord({k: Array(v) for k, v in named.items()})
    if state is not None and result.num_steps > 0:
        for key, arrays in state.finish(result.weights, result.num_steps).items():
            content[key] = ArrayRecord(arrays)
    return content, extras


def worker_node(context: Context | None = None) -> int:
    """Which machine trained this update, as a number (metrics hold only scalars):
    the first 12 hex digits of the Ray node id, or of a hash of the host name; in a
    deployment (`context` given) the low 48 bits of the SuperNode's id, since several
    SuperNodes may share a host."""
    if context is not None:
        return int(context.node_id) & (2**48 - 1)
    try:
        import ray

        if ray.is_initialized():
            return int(ray.get_runtime_context().get_node_id()[:12], 16)
    except Exception:  # not inside a Ray worker
        pass
    import hashlib
    import socket

    return int(hashlib.sha1(socket.gethostname().encode()).hexdigest()[:12], 16)


@app.train()
def train(msg: Message, context: Context) -> Message:
    if is_pooled(msg):
        return Message(content=train_pooled(msg, context), reply_to=msg)
    content, _ = train_update(msg, context)
    return Message(content=content, reply_to=msg)


def train_pooled(msg: Message, context: Context) -> RecordDict:
    """Every client a pooled message names, each through the privacy mod (clipping /
    local DP), pooled into one reply (clients/pooling.py). The weights-only mod checks
    what leaves: the pooled reply (a client's own reply stays in the worker; the pool
    refuses a client whose arrays are not the model's)."""
    cfg, extras = experiment_from_message(msg)  # once per message
    configure_threads(int(round(cfg.runtime.cpus_per_client)) or 1)

    def train_one(sub: Message, weights: list[np.ndarray]) -> Message:
        pid = int(sub.content["config"]["partition-id"])
        parsed = (cfg, {**extras, "partition-id": pid})

        def handler(m: Message, c: Context) -> Message:
            content, _ = train_update(m, c, weights, parsed)
            return Message(content=content, reply_to=m)

        return privacy_mod(sub, context, handler)

    facts = {
        "worker-rss-mb": psutil.Process().memory_info().rss / 2**20,
        "worker-node": worker_node(None),
    }
    return pooled_reply(msg, train_one, facts)


def evaluate_local(msg: Message, cfg: ExperimentConfig, extras: dict, pid: int) -> Message:
    """local-eval: the client's personalised model (clients/personal.py) on its local
    test split; the model is personalised on its local train split where the method
    says so. Only the test's scalars leave the client."""
    ds = dataset_for(cfg)
    trainer = get_trainer(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
    rnd = int(extras.get("server-round", 1))
    (xtr, ytr), (xte, yte) = client_split(cfg, pid)
    received = msg.content["arrays"].to_numpy_ndarrays()
    ltc = local_train_config(cfg, rnd)
    model = evaluation_model(cfg, pid, rnd, received, trainer, to_float_images(xtr), ytr, ltc)
    loss, acc = trainer.evaluate(model, to_float_images(xte), yte)
    metrics = MetricRecord(
        {
            "num-examples": int(len(yte)),
            "eval-loss": loss,
            "eval-accuracy": acc,
            "partition-id": pid,
        }
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Accuracy of the received model on this client's own shard (local-eval: of its
    personalised model on its local test split)."""
    cfg, extras = experiment_from_message(msg)
    configure_threads(int(round(cfg.runtime.cpus_per_client)) or 1)
    pid = partition_id_for(extras, context)
    cfg = node_local_config(cfg, extras, context)
    if cfg.personal.local_eval:
        return evaluate_local(msg, cfg, extras, pid)
    ds = dataset_for(cfg)
    if cfg.continual.scenario != "none":
        task = client_task(cfg, pid, int(extras.get("server-round", 1)), virtual_time(extras))
        x, y = task_shard(cfg, pid, task)
    else:
        x, y = client_shard(cfg, pid)
    trainer = get_trainer(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
    loss, acc = trainer.evaluate(msg.content["arrays"].to_numpy_ndarrays(), to_float_images(x), y)
    metrics = MetricRecord(
        {"num-examples": int(len(y)), "eval-loss": loss, "eval-accuracy": acc, "partition-id": pid}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
