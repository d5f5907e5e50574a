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
    matrix_metrics,
)

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
