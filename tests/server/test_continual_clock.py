"""Continual scenarios on the virtual clock (`task-seconds`), on the fake grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_grid import FakeClients
from loop_scenarios import UNTIMED

from learning.config import ExperimentConfig
from learning.scenarios import client_task, on_clock, task_at_time, task_end_rounds
from server.checkpoint import load_checkpoint
from server.continual import TaskEvaluator
from server.loop import run_rounds
from server.run_dir import RunRecorder

BASE = {
    "model": "small-cnn",
    "num-clients": 20,
    "clients-per-round": 5,
    "rounds": 8,
    "seed": 3,
    "eval-every": 100,
}
CL = {"scenario": "class-incremental", "num-tasks": 3}


class _Trainer:
    def evaluate(self, weights, x, y):
        return 0.0, float(np.mean(weights[0])) + x  # task j's "accuracy": mean + j


class StubTasks(TaskEvaluator):
    """The real TaskEvaluator's schedule and bookkeeping, without datasets or Keras."""

    def __init__(self, cfg: ExperimentConfig):
        self.cfg, self.trainer, self.tests = cfg, _Trainer(), {}
        self.ends, self.timed, self.span = task_end_rounds(cfg), on_clock(cfg), None

    def _test(self, task):
        return task, None


def _clean(rows):
    return [json.dumps({k: v for k, v in r.items() if k not in UNTIMED}) for r in rows]


def _evaluate(weights):
    return float(np.mean(weights[0])), 0.0


def _run(tmp_path, resume=None, **keys):
    cfg = ExperimentConfig.from_flat({**BASE, **keys})
    tmp_path.mkdir(parents=True, exist_ok=True)
    grid, tasks = FakeClients(4), StubTasks(cfg)
    result = run_rounds(grid, cfg, _evaluate, 4, run_dir=tmp_path, task_eval=tasks, resume=resume)
    return cfg, grid, tasks, result


def test_tasks_change_at_virtual_times_and_the_matrix_is_read_there(tmp_path):
    # the clock's round ends (FakeClients ignore tasks, so they are the same with CL on)
    _, _, _, plain = _run(tmp_path / "plain", **CL)
    ends = [r["virtual_seconds"] for r in plain.rows]
    size = (ends[1] + ends[2]) / 2  # boundary 1 inside round 3, boundary 2 later
    want = [next(i + 1 for i, e in enumerate(ends) if e >= k * size) for k in (1, 2)]
    assert want[0] == 3 and want[1] < 8
    cfg, grid, tasks, result = _run(tmp_path / "timed", **CL, **{"task-seconds": size})
    rows = result.rows
    assert [r["virtual_seconds"] for r in rows] == ends
    # boundary rounds are evaluated (eval-every = 100), and only they and the last one
    assert [r["round"] for r in rows if r["accuracy"] is not None] == [*want, 8]
    assert {r["round"]: r["tasks_ended"] for r in rows if "tasks_ended" in r} == {
        want[0]: [0],
        want[1]: [1],
    }
    # each round's task is the one in force at its virtual start
    starts = [0.0, *ends[:-1]]
    for r in rows:
        if r["accuracy"] is not None:
            assert r["task"] == task_at_time(starts[r["round"] - 1], size, 3)
    # every message carries its round's virtual start; clients derive their task from it
    for m in grid.seen:
        c = m.content["config"]
        rnd, vt = int(c["server-round"]), float(c["virtual-time"])
        assert round(vt, 6) == starts[rnd - 1]
        assert client_task(cfg, int(c["partition-id"]), rnd, vt) == task_at_time(vt, size, 3)
    summary = tasks.summary(rows)
    assert summary["task_end_rounds"] == [*want, 8]
    by_round = {r["round"]: r for r in rows}
    for i, rnd in enumerate([*want, 8]):
        got = summary["accuracy_matrix"][i]
        row = by_round[rnd]["task_accuracy"]
        assert got[: i + 1] == [round(row[str(j)], 6) for j in range(i + 1)]
    # a round-based run of the same shape reads the matrix at rounds 2, 4, 8
    assert StubTasks(ExperimentConfig.from_flat({**BASE, **CL})).end_rounds(rows) == [2, 4, 8]


def test_without_task_seconds_messages_carry_no_virtual_time(tmp_path):
    _, grid, _, result = _run(tmp_path, **CL)
    assert all("virtual-time" not in m.content["config"] for m in grid.seen)
    assert [r["round"] for r in result.rows if r["accuracy"] is not None] == [2, 4, 8]
    assert all("tasks_ended" not in r for r in result.rows)


def test_a_task_the_clock_never_reaches_has_no_matrix_row(tmp_path):
    _, _, tasks, result = _run(tmp_path, **CL, **{"task-seconds": 1e9})
    s = tasks.summary(result.rows)
    assert s["task_end_rounds"] == [8, None, None]
    assert s["accuracy_matrix"][1] == [None, None, None]


class _Stop(Exception):
    pass


@pytest.mark.parametrize("strategy", ["fedavg", "fedbuff"])
def test_resume_keeps_the_boundary_rounds(strategy, tmp_path):
    _, _, _, plain = _run(tmp_path / "plain", strategy=strategy, **CL)
    ends = [r["virtual_seconds"] for r in plain.rows]
    keys = {**CL, "strategy": strategy, "task-seconds": (ends[1] + ends[2]) / 2}
    _, _, tasks, full = _run(tmp_path / "full", **keys)
    assert any("tasks_ended" in r for r in full.rows[:4])
    cfg = ExperimentConfig.from_flat({**BASE, **keys})
    run_dir = tmp_path / "cut"
    run_dir.mkdir()
    recorder = RunRecorder(run_dir)

    def stop(row, hist):
        recorder.append_metrics(row)
        if row["round"] == 4:
            raise _Stop

    with pytest.raises(_Stop):
        run_rounds(
            FakeClients(4),
            cfg,
            _evaluate,
            4,
            on_round=stop,
            run_dir=run_dir,
            task_eval=StubTasks(cfg),
        )
    _, _, tasks2, resumed = _run(run_dir, resume=load_checkpoint(run_dir), **keys)
    assert _clean(resumed.rows) == _clean(full.rows)
    assert tasks2.summary(resumed.rows) == tasks.summary(full.rows)
