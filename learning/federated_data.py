"""The dataset and its split, as one process sees them: loaded once, sliced by index.

Every simulation worker calls these; the caches mean a worker pays for decoding and
partitioning once, and a client update only gathers its own rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from learning.config import DataConfig, ExperimentConfig, PluginSettings
from learning.datasets import Dataset, load_dataset, subset
from learning.local_split import local_split
from learning.partition import label_histograms, partition_as_configured
from learning.sampled_partition import SampledShards
from learning.scenarios import (
    drift_kind,
    drift_level,
    task_partition,
    task_test_examples,
)
from learning.streams import Tag, generator


# The [plugin] settings are part of every key: a plug-in loader or partitioner may read them.
@lru_cache(maxsize=4)
def _dataset(data: DataConfig, seed: int, plugin: PluginSettings) -> Dataset:
    ds = load_dataset(
        data.dataset, data.data_path, image_size=data.image_size, color=data.color, settings=plugin
    )
    if data.train_subset or data.test_subset:
        ds = subset(ds, data.train_subset, data.test_subset, seed)
    return ds


def dataset_for(cfg: ExperimentConfig) -> Dataset:
    return _dataset(cfg.data, cfg.federation.seed, cfg.plugin)


@lru_cache(maxsize=4)
def _partitions(
    data: DataConfig, num_clients: int, seed: int, plugin: PluginSettings
) -> tuple[np.ndarray, ...]:
    ds = _dataset(data, seed, plugin)
    parts = partition_as_configured(
        data, ds.y_train, num_clients, seed, owners=ds.owners, settings=plugin
    )
    return tuple(parts)


def partitions_for(cfg: ExperimentConfig) -> Sequence[np.ndarray]:
    """Every client's shard indices; the `sampled` partition computes each on demand."""
    if cfg.data.partition == "sampled":
        n = len(dataset_for(cfg).y_train)
        seed, k = cfg.federation.seed, cfg.data.examples_per_client
        return SampledShards(n, cfg.federation.num_clients, seed, k)
    return _partitions(cfg.data, cfg.federation.num_clients, cfg.federation.seed, cfg.plugin)


def client_shard(cfg: ExperimentConfig, partition_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, int64 labels) of one client's private shard."""
    ds = dataset_for(cfg)
    idx = partitions_for(cfg)[partition_id]
    return ds.x_train[idx], ds.y_train[idx]


def client_split(
    cfg: ExperimentConfig, partition_id: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x, y) local train, (x, y) local test) of one client's shard (local-eval)."""
    x, y = client_shard(cfg, partition_id)
    p = cfg.personal
    train, test = local_split(len(y), cfg.federation.seed, int(partition_id), p.local_test_fraction)
    return (x[train], y[train]), (x[test], y[test])


def training_shard(cfg: ExperimentConfig, partition_id: int) -> tuple[np.ndarray, np.ndarray]:
    """What a client trains on: its shard, or with local-eval its local train split."""
    if cfg.personal.local_eval:
        return client_split(cfg, partition_id)[0]
    return client_shard(cfg, partition_id)


def partition_histograms(cfg: ExperimentConfig) -> np.ndarray:
    """(num_clients, num_classes) label counts, for reports."""
    ds = dataset_for(cfg)
    return label_histograms(ds.y_train, list(partitions_for(cfg)), ds.num_classes)


# --------------------------------------------------------------------------- continual tasks


def _task_cfg(cfg: ExperimentConfig) -> ExperimentConfig:
    """The parts of a config a task's data depends on (cache key; train keys excluded)."""
    return ExperimentConfig(
        data=cfg.data, federation=cfg.federation, continual=cfg.continual, plugin=cfg.plugin
    )


@lru_cache(maxsize=16)
def _task_partitions(cfg: ExperimentConfig, task: int) -> tuple[np.ndarray, ...]:
    ds = dataset_for(cfg)
    return tuple(task_partition(cfg, ds.y_train, task, ds.num_classes, ds.owners))


def _drifted(
    cfg: ExperimentConfig, x: np.ndarray, kind: str, task: int, rng: np.random.Generator
) -> np.ndarray:
    """`x` as task `task` shows it: a drift level, or (permutation) the task's fixed pixel
    order, the same for every client and the test set (task 0: the identity)."""
    from learning.drift import apply_drift, permute_pixels

    if kind != "permutation":
        return apply_drift(x, kind, drift_level(cfg, task), rng)
    if task == 0:
        return x.copy()
    size = int(np.prod(x.shape[1:3]))
    perm = generator(cfg.federation.seed, Tag.PIXEL_PERMUTATION, task).permutation(size)
    return permute_pixels(x, perm)


@lru_cache(maxsize=256)
def _task_shard(cfg: ExperimentConfig, pid: int, task: int) -> tuple[np.ndarray, np.ndarray]:
    ds = dataset_for(cfg)
    idx = _task_partitions(cfg, task)[pid]
    x, y = ds.x_train[idx], ds.y_train[idx]
    if cfg.continual.scenario == "domain-incremental":
        kind = drift_kind(cfg, pid % cfg.continual.drift_groups)
        rng = generator(cfg.federation.seed, Tag.TASK_SHARD, task, pid)
        x = _drifted(cfg, x, kind, task, rng)
    x.setflags(write=False)
    return x, y


def task_shard(
    cfg: ExperimentConfig, partition_id: int, task: int
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, int64 labels) client `partition_id` holds during `task`.

    Drift is applied once per (client, task) and cached, never per batch.
    """
    return _task_shard(_task_cfg(cfg), int(partition_id), int(task))


@lru_cache(maxsize=16)
def _task_test(cfg: ExperimentConfig, task: int) -> tuple[np.ndarray, np.ndarray]:
    ds = dataset_for(cfg)
    idx = task_test_examples(cfg, ds.y_test, task, ds.num_classes)
    x, y = ds.x_test[idx], ds.y_test[idx]
    if cfg.continual.scenario == "domain-incremental":
        x = x.copy()
        groups = cfg.continual.drift_groups
        for g in range(groups):  # test example i is shown as drift group i % groups sees it
            rows = np.arange(g, len(x), groups)
            rng = generator(cfg.federation.seed, Tag.TASK_GROUP, task, g)
            x[rows] = _drifted(cfg, x[rows], drift_kind(cfg, g), task, rng)
    x.setflags(write=False)
    return x, y


def task_test_set(cfg: ExperimentConfig, task: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, int64 labels) the global model is tested on for `task`."""
    return _task_test(_task_cfg(cfg), int(task))


def clear_caches() -> None:
    """Forget every dataset, partition and task split read in this process: the Python
    API calls it before each run, since a notebook may rewrite the data between runs."""
    from learning.datasets import clear_dataset_cache

    clear_dataset_cache()
    for cached in (_dataset, _partitions, _task_partitions, _task_shard, _task_test):
        cached.cache_clear()
