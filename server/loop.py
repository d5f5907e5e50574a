"""The federated training loop, ours rather than `Strategy.start`, so that sampling is
seeded, replies are aggregated in a fixed order, and every round is timed and recorded.

`run_rounds` is the public entry point (server/app.py, simulations); the round itself
is a pipeline of stages in server/pipeline/ (sample -> dispatch -> collect -> aggregate
-> evaluate -> observers) driven by a scheduler: `SyncScheduler` (sync and deadline
rounds on the virtual clock) or `AsyncScheduler` (FedAsync, FedBuff).
"""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import ArrayRecord
from flwr.serverapp import Grid

from learning.config import ExperimentConfig
from server.checkpoint import Checkpoint, restore_strategy
from server.pipeline.async_scheduler import AsyncScheduler, is_async
from server.pipeline.evaluate import CentralEvaluation, RoundEvaluator, TaskEvaluation
from server.pipeline.observers import Observers, RoundObserver
from server.pipeline.scheduler import LoopResult, LoopState, SyncScheduler
from server.pipeline.setup import build_stages

__all__ = ["LoopResult", "RoundObserver", "TaskEvaluation", "run_rounds"]


def run_rounds(
    grid: Grid,
    cfg: ExperimentConfig,
    evaluate: CentralEvaluation,
    num_slots: int,
    on_round: RoundObserver | None = None,
    run_dir: Path | None = None,
    resume: Checkpoint | None = None,
    task_eval: TaskEvaluation | None = None,
) -> LoopResult:
    """Run all rounds; `evaluate(weights) -> (loss, accuracy)` is the central test.

    With `run_dir` a checkpoint is written atomically after every round; with `resume`
    the loop continues after the checkpointed round with its weights and strategy state.
    With `task_eval` (continual scenarios) every evaluated round also gets per-task
    accuracies, and task boundaries are always evaluated.
    """
    stages = build_stages(grid, cfg, num_slots, run_dir)
    weights, first, rows = stages.weights, 1, []
    if resume is not None:
        weights, first = resume.weights, resume.round + 1
        restore_strategy(stages.strategy, resume.state)
        rows = list(resume.rows)
        if stages.node_faults is not None:
            stages.node_faults.resume(rows, resume.round)
    spent = rows[-1]["elapsed_seconds"] if rows else 0.0
    # the clock's exact value (the row's is rounded to 6 places; older checkpoints: that)
    saved = resume.scheduler if resume is not None else None
    if saved is not None and "clock_now" in saved["meta"]:
        stages.clock.now = float(saved["meta"]["clock_now"])
    else:
        stages.clock.now = float(rows[-1].get("virtual_seconds", 0.0)) if rows else 0.0
    state = LoopState(ArrayRecord(weights), first, rows, time.perf_counter() - spent)
    fed = stages.fed
    evaluator = RoundEvaluator(evaluate, fed.eval_every, fed.rounds, task_eval)
    observers = Observers(cfg, stages.strategy, run_dir, on_round)
    if is_async(cfg.strategy.strategy):
        return AsyncScheduler(grid, stages, evaluator, observers, saved).run(state)
    observers.extra_state = lambda: ({"clock_now": stages.clock.now}, {})
    return SyncScheduler(grid, stages, evaluator, observers).run(state)
