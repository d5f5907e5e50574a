"""Evaluate: the global model on the central test set every `eval-every` rounds, at the
last round and (continual scenarios) at every task boundary, with per-task accuracies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

CentralEvaluation = Callable[[list[np.ndarray]], tuple[float, float]]  # -> (loss, accuracy)


class TaskEvaluation(Protocol):
    """Extra evaluation of continual scenarios (server/continual.py's TaskEvaluator).

    One that also has `at_span(round, start, end)` is told each round's virtual span
    before `must_evaluate` (tasks on the clock: boundaries fall at virtual times)."""

    def must_evaluate(self, server_round: int) -> bool: ...

    def __call__(self, server_round: int, weights: list[np.ndarray]) -> dict[str, Any]: ...


class RoundEvaluator:
    def __init__(
        self,
        evaluate: CentralEvaluation,
        eval_every: int,
        rounds: int,
        task_eval: TaskEvaluation | None = None,
    ) -> None:
        self.evaluate, self.task_eval = evaluate, task_eval
        self.eval_every, self.rounds = eval_every, rounds

    def due(self, rnd: int) -> bool:
        boundary = self.task_eval is not None and self.task_eval.must_evaluate(rnd)
        return rnd % self.eval_every == 0 or rnd == self.rounds or boundary

    def __call__(
        self, rnd: int, weights: list[np.ndarray], span: tuple[float, float] | None = None
    ) -> dict[str, Any]:
        """accuracy/loss (None when not due) and, when due, the per-task fields. `span`:
        the round's (async: the step's) virtual (start, end), for tasks on the clock."""
        if span is not None and hasattr(self.task_eval, "at_span"):
            self.task_eval.at_span(rnd, *span)
        if not self.due(rnd):
            return {"accuracy": None, "loss": None}
        loss, acc = self.evaluate(weights)
        row: dict[str, Any] = {"accuracy": acc, "loss": loss}
        if self.task_eval is not None:
            row.update(self.task_eval(rnd, weights))
        return row
