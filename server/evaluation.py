"""Central evaluation of the global model on the held-out test split."""

from __future__ import annotations

import numpy as np

from learning.config import ExperimentConfig
from learning.federated_data import dataset_for
from learning.training import get_trainer, to_float_images


class CentralEvaluator:
    """Holds the normalised test set and a compiled model; built once per run."""

    def __init__(self, cfg: ExperimentConfig):
        ds = dataset_for(cfg)
        self.x = to_float_images(ds.x_test)
        self.y = ds.y_test
        self.trainer = get_trainer(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)

    def __call__(self, weights: list[np.ndarray]) -> tuple[float, float]:
        """(loss, accuracy) of `weights` on the test split."""
        return self.trainer.evaluate(weights, self.x, self.y)
