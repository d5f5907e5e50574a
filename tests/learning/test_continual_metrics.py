"""Accuracy matrix metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learning.continual_metrics import (
    accuracy_matrix,
    average_accuracy,
    backward_transfer,
    continual_summary,
    forgetting,
    forward_transfer,
    matrix_metrics,
)
from learning.task_heads import task_head_accuracy, task_head_predictions

NAN = float("nan")
# a[i][j]: after task i, on task j (3 tasks)
M = np.array(
    [
        [0.90, NAN, NAN],
        [0.60, 0.80, NAN],
        [0.30, 0.70, 0.95],
    ]
)


def test_formulas_on_a_hand_made_matrix():
    assert math.isclose(average_accuracy(M), (0.30 + 0.70 + 0.95) / 3)
    # forgetting: task 0 best 0.90 -> 0.30 (0.60); task 1 best 0.80 -> 0.70 (0.10)
    assert math.isclose(forgetting(M), (0.60 + 0.10) / 2)
    # bwt: (0.30 - 0.90 + 0.70 - 0.80) / 2
    assert math.isclose(backward_transfer(M), (-0.60 - 0.10) / 2)


def test_forgetting_uses_the_best_earlier_accuracy_not_the_first():
    m = np.array([[0.5, NAN, NAN], [0.9, 0.8, NAN], [0.4, 0.8, 0.7]])
    assert math.isclose(forgetting(m), ((0.9 - 0.4) + 0.0) / 2)
    assert math.isclose(backward_transfer(m), ((0.4 - 0.5) + 0.0) / 2)


def test_no_forgetting_and_single_task():
    m = np.array([[0.9, NAN], [0.95, 0.9]])
    assert forgetting(m) < 0 and backward_transfer(m) > 0
    assert forgetting(np.array([[0.7]])) == 0.0 and average_accuracy(np.array([[0.7]])) == 0.7


def test_matrix_from_rows_and_summary():
    rows = [
        {"round": 1, "task_accuracy": {"0": 0.5}},
        {"round": 2, "task_accuracy": {"0": 0.9}},
        {"round": 3, "task_accuracy": {"0": 0.7, "1": 0.6}},
        {"round": 4, "task_accuracy": {"0": 0.6, "1": 0.8}},
        {"round": 5, "accuracy": 0.1},  # not evaluated per task
        {"round": 6, "task_accuracy": {"0": 0.3, "1": 0.7, "2": 0.95}},
    ]
    m = accuracy_matrix(rows, [2, 4, 6], 3)
    np.testing.assert_allclose(m, M)
    s = continual_summary(rows, [2, 4, 6], 3)
    assert s["accuracy_matrix"] == [[0.9, None, None], [0.6, 0.8, None], [0.3, 0.7, 0.95]]
    assert math.isclose(s["forgetting"], 0.35) and math.isclose(s["bwt"], -0.35)
    assert s["task_end_rounds"] == [2, 4, 6]


def test_matrix_metrics_follow_the_usual_definitions():
    m = np.array([[0.9, 0.1, 0.1], [0.6, 0.85, 0.1], [0.5, 0.7, 0.8]])
    got = matrix_metrics(m)
    assert got["average_accuracy"] == pytest.approx((0.5 + 0.7 + 0.8) / 3)
    assert got["bwt"] == pytest.approx(((0.5 - 0.9) + (0.7 - 0.85)) / 2)
    assert got["forgetting"] == pytest.approx(((0.9 - 0.5) + (0.85 - 0.7)) / 2)
    assert matrix_metrics(np.array([[0.7]])) == {
        "average_accuracy": pytest.approx(0.7),
        "forgetting": None,
        "bwt": None,
    }


def test_forward_transfer_on_a_hand_made_matrix():
    # the cells just above the diagonal are the next task before training on it
    m = np.array([[0.90, 0.40, NAN], [0.60, 0.80, 0.55], [0.30, 0.70, 0.95]])
    b = np.array([0.10, 0.20, 0.15])
    assert math.isclose(forward_transfer(m, b), ((0.40 - 0.20) + (0.55 - 0.15)) / 2)
    # a task is not forgotten before it is learned: a[0][1] never counts
    assert math.isclose(forgetting(m), ((0.90 - 0.30) + (0.80 - 0.70)) / 2)
    assert math.isnan(forward_transfer(M, b))  # no cell above the diagonal


def test_summary_reads_the_next_task_cells_and_reports_fwt_only_when_given():
    rows = [
        {"round": 2, "task_accuracy": {"0": 0.9}, "next_task_accuracy": {"1": 0.3}},
        {"round": 4, "task_accuracy": {"0": 0.5, "1": 0.8}},
    ]
    s = continual_summary(rows, [2, 4], 2, random_acc=[0.1, 0.1])
    assert s["accuracy_matrix"][0] == [0.9, 0.3]
    assert math.isclose(s["fwt"], 0.2) and s["random_task_accuracy"] == [0.1, 0.1]
    assert continual_summary(rows, [2, 4], 2)["fwt"] is None  # class-incremental: None


def test_task_head_picks_the_best_class_of_the_task_only():
    probs = np.array([[0.05, 0.1, 0.6, 0.25], [0.5, 0.1, 0.1, 0.3], [0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(task_head_predictions(probs, np.array([0, 1])), [1, 0, 0])
    np.testing.assert_array_equal(task_head_predictions(probs, np.array([2, 3])), [2, 3, 2])
    assert math.isclose(task_head_accuracy(probs, np.array([1, 0, 1]), np.array([0, 1])), 2 / 3)
    with pytest.raises(ValueError):
        task_head_predictions(probs, np.array([], np.int64))
