"""FOT on the client (Bakman et al., ICLR 2024): project every update of a new task off
the old tasks' input subspaces the server sends, and at the end of a task report the
activation statistics the server grows that basis from.

What leaves the client, in its last round of a task only, is one extra ArrayRecord
`fot-gram`: per dense layer the (d+1, d+1) Gram matrix of its augmented inputs averaged
over at most `fot-examples` of the task's examples (learning/projection.py). Its size is
fixed by the model (never by the data), it is checked byte for byte by the reply check
(privacy/reply_check.py), and no example, label or count is in it.
"""

from __future__ import annotations

import numpy as np

from learning.activations import layer_inputs
from learning.config import ExperimentConfig
from learning.federated_data import task_shard
from learning.projection import FOT_GRAM, augmented_gram, kernel_keys, projector
from learning.scenarios import client_task
from learning.streams import Tag, generator
from learning.training import Trainer, to_float_images


def projectors_from(basis: list[np.ndarray] | None) -> list[np.ndarray] | None:
    """P = I - B B^T per dense layer from the server's bases; None before any basis."""
    if not basis or all(b.shape[1] == 0 for b in basis):
        return None
    return [projector(b) for b in basis]


def ends_task(cfg: ExperimentConfig, pid: int, server_round: int, task: int) -> bool:
    """Whether `server_round` is this client's last round of `task` (its next round is
    in another task); the run's final round ends nothing that a later task could need."""
    if server_round >= cfg.federation.rounds:
        return False
    return client_task(cfg, pid, server_round + 1) != task


def gram_report(
    cfg: ExperimentConfig, trainer: Trainer, pid: int, task: int, weights: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """{kernel key: (d+1, d+1) float32 Gram} of `task`'s inputs at `weights` (the model
    the client just trained), over at most `fot-examples` of its examples."""
    x, _ = task_shard(cfg, pid, task)
    rng = generator(cfg.federation.seed, Tag.FOT_PICK, task, pid)
    pick = np.sort(rng.permutation(len(x))[: cfg.continual.fot_examples])
    inputs = layer_inputs(trainer, weights, to_float_images(x[pick]))
    keys = kernel_keys([tuple(w.shape) for w in weights])
    return {k: augmented_gram(a).astype(np.float32) for k, a in zip(keys, inputs, strict=True)}


__all__ = ["FOT_GRAM", "ends_task", "gram_report", "projectors_from"]
