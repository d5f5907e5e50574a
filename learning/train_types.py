"""What a local update takes and gives back: plain values shared by the trainer and its
callers (the ClientApp, the perf benchmark), apart from the TensorFlow code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class LocalTrainConfig:
    """What one client update needs to know; sent by the server each round."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"  # "sgd" (with momentum) or "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    proximal_mu: float = 0.0  # FedProx: mu/2 * ||w - w_global||^2
    max_steps: int = 0  # 0 = no cap; otherwise stop after this many batches
    ewc_lambda: float = 0.0  # EWC: lambda/2 * sum_i F_i (w_i - w*_i)^2
    lwf_alpha: float = 0.0  # LwF: alpha * T^2 * CE(soft targets, softmax(log p / T))
    lwf_temperature: float = 2.0


class StepMode(NamedTuple):
    """Which terms one compiled train step has: one graph per mode actually used, so
    plain SGD pays for no proximal, correction or momentum arithmetic over the weights
    (hashable, so it keys the per-process cache of compiled epochs)."""

    proximal: bool = False
    correction: bool = False
    decay: bool = False
    momentum: bool = False
    adam: bool = False
    ewc: bool = False
    lwf: bool = False
    replay: bool = False
    masked: bool = False  # some variables frozen (FedRep's head-then-body phases)
    project: bool = False  # FOT: gradients projected off the old tasks' input subspaces
    synth: bool = False  # TARGET: distillation on the server's synthetic images


@dataclass
class ContinualInputs:
    """What a continual-learning method adds to one client update (all optional).

    fisher/anchor: EWC's diagonal Fisher and anchor weights (shapes of the weights).
    soft_targets: LwF's (N, classes) tempered outputs of the previous model on x.
    buffer_x/buffer_y: replay examples (float32 images, int64 labels), mixed into
    every batch as as many extra examples as the batch holds.
    projectors: FOT's P = I - B B^T per dense layer, (d+1, d+1) each.
    synth_x/synth_soft: TARGET's synthetic images (float32) and the previous global
    model's tempered outputs on them, a batch-sized draw distilled every step.
    """

    fisher: list[np.ndarray] | None = None
    anchor: list[np.ndarray] | None = None
    soft_targets: np.ndarray | None = None
    buffer_x: np.ndarray | None = None
    buffer_y: np.ndarray | None = None
    projectors: list[np.ndarray] | None = None
    synth_x: np.ndarray | None = None
    synth_soft: np.ndarray | None = None


@dataclass
class TrainResult:
    weights: list[np.ndarray]
    num_examples: int
    num_steps: int
    loss: float
    accuracy: float
