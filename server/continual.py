"""Per-task central evaluation for continual scenarios.

After every evaluated round the global model is tested on each task seen so far on the
schedule's clock (class-incremental: the test examples of that task's classes;
domain-incremental: the test split under that task's drift). Task boundaries are always
evaluated, whatever eval-every says, because the accuracy matrix is read there.

On the virtual clock (`task-seconds` > 0) the boundaries fall at virtual times k T: the
round (async: server step) during which the clock crosses one is evaluated, its row
carries `tasks_ended` (the tasks that ended in it), and the summary reads the matrix at
those rounds. The rows are checkpointed, so a resumed run knows where they fell.

Task-incremental runs score each task with its own head (the softmax restricted to the
task's classes, learning/task_heads.py). Task- and domain-incremental runs also test the
next task at each task's end (`next_task_accuracy`, the cell a[i][i+1]) and the initial,
untrained model on every task, which is what forward transfer (FWT) needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learning.config import ExperimentConfig
from learning.continual_metrics import continual_summary
from learning.federated_data import dataset_for, task_test_set
from learning.scenarios import (
    boundaries_crossed,
    class_groups,
    on_clock,
    server_task,
    task_end_rounds,
)
from learning.task_heads import task_head_accuracy
from learning.training import get_trainer, to_float_images
from learning.warm_start import initial_weights

# Scenarios where a task can be scored before it is trained on (FWT is meaningful).
FWT_SCENARIOS = ("task-incremental", "domain-incremental")


class TaskEvaluator:
    """Task test sets (normalised once) and the shared compiled model."""

    def __init__(self, cfg: ExperimentConfig):
        ds = dataset_for(cfg)
        self.cfg = cfg
        self.trainer = get_trainer(cfg.train.model, ds.input_shape, ds.num_classes, cfg.plugin)
        self.tests: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.ends = task_end_rounds(cfg)
        self.timed = on_clock(cfg)
        self.span: tuple[int, float, float] | None = None  # (round, start, end), on the clock
        self.num_classes = ds.num_classes
        self.input_shape = ds.input_shape

    def _test(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        if task not in self.tests:
            x, y = task_test_set(self.cfg, task)
            self.tests[task] = (to_float_images(x), y)
        return self.tests[task]

    @property
    def fwt(self) -> bool:
        """Whether FWT is meaningful here (not class-incremental's one shared head)."""
        return self.cfg.continual.scenario in FWT_SCENARIOS

    def accuracy(self, weights: list[np.ndarray], task: int) -> float:
        """Accuracy on `task`'s test set (task-incremental: with the task's own head)."""
        x, y = self._test(task)
        if self.cfg.continual.scenario != "task-incremental":
            return float(self.trainer.evaluate(weights, x, y)[1])
        classes = class_groups(self.num_classes, self.cfg.continual.num_tasks)[task]
        return task_head_accuracy(self.trainer.predict(weights, x), y, classes)

    def at_span(self, server_round: int, start: float, end: float) -> None:
        """The round's virtual (start, end]; told before `must_evaluate` each round."""
        self.span = (server_round, float(start), float(end))

    def _span(self, server_round: int) -> tuple[float, float]:
        if self.span is None or self.span[0] != server_round:
            raise RuntimeError(f"task-seconds > 0: round {server_round}'s virtual span unknown")
        return self.span[1], self.span[2]

    def ended(self, server_round: int) -> list[int]:
        """Tasks that end during `server_round` (on the clock; by rounds: its end round)."""
        if self.timed:
            return boundaries_crossed(self.cfg, *self._span(server_round))
        return [i for i, r in enumerate(self.ends) if r == server_round]

    def must_evaluate(self, server_round: int) -> bool:
        if self.timed:
            return bool(self.ended(server_round))
        return server_round in self.ends

    def __call__(self, server_round: int, weights: list[np.ndarray]) -> dict[str, Any]:
        """Row fields: `task`, `task_accuracy` {"j": acc}, `acc_task_j`, `seen_accuracy`;
        on the clock also `tasks_ended` where boundaries fell in this round."""
        start = self._span(server_round)[0] if self.timed else None
        current = server_task(self.cfg, server_round, start)
        accs = {str(j): self.accuracy(weights, j) for j in range(current + 1)}
        out: dict[str, Any] = {"task": current, "task_accuracy": accs}
        last = self.cfg.continual.num_tasks - 1
        upcoming = [i + 1 for i in self.ended(server_round) if i < last] if self.fwt else []
        if upcoming:  # a[i][i+1]: the next task before training on it (FWT)
            out["next_task_accuracy"] = {str(j): self.accuracy(weights, j) for j in upcoming}
        out.update({f"acc_task_{j}": a for j, a in accs.items()})
        out["seen_accuracy"] = float(np.mean(list(accs.values())))
        if self.timed and (ended := self.ended(server_round)):
            out["tasks_ended"] = ended
        return out

    def end_rounds(self, rows: list[dict[str, Any]]) -> list[int | None]:
        """Round at which each task's matrix row is read. On the clock: where its boundary
        fell (the rows' `tasks_ended`), the task in force at the end at the final round,
        None for a task the clock never finished or reached."""
        if not self.timed:
            return list(self.ends)
        ends: list[int | None] = [None] * self.cfg.continual.num_tasks
        for row in rows:
            for i in row.get("tasks_ended") or ():
                if ends[int(i)] is None:
                    ends[int(i)] = int(row["round"])
        last = next((r for r in reversed(rows) if r.get("task") is not None), None)
        if last is not None and ends[int(last["task"])] is None:
            ends[int(last["task"])] = int(last["round"])
        return ends

    def random_accuracy(self) -> list[float]:
        """b[j]: the initial (untrained) global model on every task, for FWT."""
        c = self.cfg
        init = initial_weights(
            c.train.model,
            self.input_shape,
            self.num_classes,
            c.federation.seed,
            c.train.init_weights,
            c.plugin,
        )
        return [self.accuracy(init, j) for j in range(c.continual.num_tasks)]

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        b = self.random_accuracy() if self.fwt else None
        return continual_summary(rows, self.end_rounds(rows), self.cfg.continual.num_tasks, b)
