"""Per-task central evaluation for continual scenarios.

After every evaluated round the global model is tested on each task seen so far on the
schedule's clock (class-incremental: the test examples of that task's classes;
domain-incremental: the test split under that task's drift). Task boundaries are always
evaluated, whatever eval-every says, because the accuracy matrix is read there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learning.config import ExperimentConfig
from learning.continual_metrics import continual_summary
from learning.federated_data import dataset_for, task_test_set
from learning.scenarios import server_task, task_end_rounds
from learning.training import get_trainer, to_float_images


class TaskEvaluator:
    """Task test sets (normalised once) and the shared compiled model."""

    def __init__(self, cfg: ExperimentConfig):
        ds = dataset_for(cfg)
        self.cfg = cfg
        self.trainer = get_trainer(cfg.train.model, ds.input_shape, ds.num_classes)
        self.tests: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.ends = task_end_rounds(cfg)

    def _test(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        if task not in self.tests:
            x, y = task_test_set(self.cfg, task)
            self.tests[task] = (to_float_images(x), y)
        return self.tests[task]

    def must_evaluate(self, server_round: int) -> bool:
        return server_round in self.ends

    def __call__(self, server_round: int, weights: list[np.ndarray]) -> dict[str, Any]:
        """Row fields: `task`, `task_accuracy` {"j": acc}, `acc_task_j`, `seen_accuracy`."""
        current = server_task(self.cfg, server_round)
        accs = {}
        for j in range(current + 1):
            x, y = self._test(j)
            accs[str(j)] = float(self.trainer.evaluate(weights, x, y)[1])
        out: dict[str, Any] = {"task": current, "task_accuracy": accs}
        out.update({f"acc_task_{j}": a for j, a in accs.items()})
        out["seen_accuracy"] = float(np.mean(list(accs.values())))
        return out

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return continual_summary(rows, self.ends, self.cfg.continual.num_tasks)
