"""The dataset and its split, as one process sees them: loaded once, sliced by index.

Every simulation worker calls these; the caches mean a worker pays for decoding and
partitioning once, and a client update only gathers its own rows.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from learning.config import DataConfig, ExperimentConfig
from learning.datasets import Dataset, load_dataset, subset
from learning.partition import label_histograms, partition


@lru_cache(maxsize=4)
def _dataset(data: DataConfig, seed: int) -> Dataset:
    ds = load_dataset(data.dataset, data.data_path, image_size=data.image_size, color=data.color)
    if data.train_subset or data.test_subset:
        ds = subset(ds, data.train_subset, data.test_subset, seed)
    return ds


def dataset_for(cfg: ExperimentConfig) -> Dataset:
    return _dataset(cfg.data, cfg.federation.seed)


@lru_cache(maxsize=4)
def _partitions(data: DataConfig, num_clients: int, seed: int) -> tuple[np.ndarray, ...]:
    ds = _dataset(data, seed)
    parts = partition(
        data.partition,
        ds.y_train,
        num_clients,
        seed,
        alpha=data.alpha,
        min_shard_size=data.min_shard_size,
        shards_per_client=data.shards_per_client,
        classes_per_client=data.classes_per_client,
        quantity_sigma=data.quantity_sigma,
    )
    return tuple(parts)


def partitions_for(cfg: ExperimentConfig) -> tuple[np.ndarray, ...]:
    return _partitions(cfg.data, cfg.federation.num_clients, cfg.federation.seed)


def client_shard(cfg: ExperimentConfig, partition_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, int64 labels) of one client's private shard."""
    ds = dataset_for(cfg)
    idx = partitions_for(cfg)[partition_id]
    return ds.x_train[idx], ds.y_train[idx]


def partition_histograms(cfg: ExperimentConfig) -> np.ndarray:
    """(num_clients, num_classes) label counts, for reports."""
    ds = dataset_for(cfg)
    return label_histograms(ds.y_train, list(partitions_for(cfg)), ds.num_classes)
