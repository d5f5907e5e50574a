"""The server's per-task evaluation: task-incremental heads, the next-task cells and FWT."""

from __future__ import annotations

import numpy as np
import pytest

from learning.config import build_config
from learning.scenarios import class_groups
from learning.warm_start import initial_weights
from server.continual import TaskEvaluator

pytestmark = pytest.mark.tf

BASE = [
    "num-clients=4",
    "clients-per-round=2",
    "train-subset=1000",
    "test-subset=300",
    'model="mlp"',
    'partition="iid"',
    "num-tasks=3",
    "rounds=6",
]


def test_task_incremental_scores_each_task_with_its_own_head_and_reports_fwt():
    cfg = build_config(None, [*BASE, 'scenario="task-incremental"'])
    ev = TaskEvaluator(cfg)
    w = initial_weights("mlp", (28, 28, 1), 10, seed=5)
    # bias the output towards class 9 (in no task's head but the last one): the masked
    # head ignores it, the shared softmax would not
    w[-1] = w[-1].copy()
    w[-1][9] = 50.0
    row = ev(2, w)  # round 2 ends task 0
    x, y = ev._test(0)
    plain = ev.trainer.evaluate(w, x, y)[1]
    assert plain == 0.0 and row["task_accuracy"]["0"] > 0.2
    probs = ev.trainer.predict(w, x)
    want = np.mean(class_groups(10, 3)[0][np.argmax(probs[:, :4], 1)] == y)
    assert row["task_accuracy"]["0"] == pytest.approx(want)
    assert list(row["next_task_accuracy"]) == ["1"]  # a[0][1] for FWT
    assert "next_task_accuracy" not in ev(3, w)  # not a task end
    rows = [{"round": r, **ev(r, w)} for r in (2, 4, 6)]
    s = ev.summary(rows)
    assert s["accuracy_matrix"][0][1] is not None and s["accuracy_matrix"][0][2] is None
    b = s["random_task_accuracy"]
    m = s["accuracy_matrix"]
    assert s["fwt"] == pytest.approx(((m[0][1] - b[1]) + (m[1][2] - b[2])) / 2, abs=1e-5)


def test_class_incremental_has_no_fwt():
    ev = TaskEvaluator(build_config(None, [*BASE, 'scenario="class-incremental"']))
    w = initial_weights("mlp", (28, 28, 1), 10, seed=5)
    row = ev(2, w)
    assert "next_task_accuracy" not in row
    assert ev.summary([{"round": 2, **row}])["fwt"] is None
