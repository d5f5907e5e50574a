"""Continual-learning metrics over the accuracy matrix, as pure NumPy.

a[i, j] is the accuracy on task j's test set after training on task i (measured at the
last round of task i); entries for tasks not yet seen (j > i) are NaN. With T tasks:

- average accuracy  A = mean_j a[T-1, j]
- forgetting        F = mean_{j < T-1} ( max_{i < T-1} a[i, j] - a[T-1, j] )   (Chaudhry 2018)
- backward transfer BWT = mean_{j < T-1} ( a[T-1, j] - a[j, j] )              (Lopez-Paz 2017)
- forward transfer  FWT = mean_{j >= 1} ( a[j-1, j] - b[j] )                 (Lopez-Paz 2017)

b[j] is the accuracy of the randomly initialised model on task j. FWT needs a[j-1, j],
the accuracy on task j before training on it: task- and domain-incremental runs measure
it (the cell just above the diagonal); class-incremental runs with one shared head do
not (a task's classes were never a target before it, so the cell is 0 by construction
and FWT says nothing): there it is None. Cells above the diagonal never count towards
forgetting (a task cannot be forgotten before it is learned).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def accuracy_matrix(
    rows: list[dict[str, Any]], end_rounds: list[int | None], num_tasks: int
) -> np.ndarray:
    """(T, T) matrix from metrics rows carrying `task_accuracy` ({"j": acc}); NaN where the
    row of a task's last round is missing (None: never reached) or lacks task j."""
    by_round = {int(r["round"]): r for r in rows if r.get("task_accuracy")}
    m = np.full((num_tasks, num_tasks), np.nan)
    for i, rnd in enumerate(end_rounds[:num_tasks]):
        if rnd is None:
            continue
        row = by_round.get(int(rnd), {})
        accs = {**row.get("next_task_accuracy", {}), **row.get("task_accuracy", {})}
        for j in range(num_tasks):
            if str(j) in accs and accs[str(j)] is not None:
                m[i, j] = float(accs[str(j)])
    return m


def average_accuracy(m: np.ndarray) -> float:
    """Mean accuracy over all tasks after the last one (NaN entries ignored)."""
    last = np.asarray(m, dtype=float)[-1]
    return float(np.nanmean(last)) if np.isfinite(last).any() else float("nan")


def forgetting(m: np.ndarray) -> float:
    """Mean drop from each old task's best earlier accuracy to its final accuracy."""
    m = np.asarray(m, dtype=float)
    t = m.shape[0]
    if t < 2:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are dropped below
        drops = np.array([np.nanmax(m[j : t - 1, j]) - m[t - 1, j] for j in range(t - 1)])
    drops = drops[np.isfinite(drops)]
    return float(drops.mean()) if drops.size else float("nan")


def backward_transfer(m: np.ndarray) -> float:
    """Mean change of each old task's accuracy from just after learning it to the end."""
    m = np.asarray(m, dtype=float)
    t = m.shape[0]
    if t < 2:
        return 0.0
    diffs = np.array([m[t - 1, j] - m[j, j] for j in range(t - 1)])
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.mean()) if diffs.size else float("nan")


def forward_transfer(m: np.ndarray, random_acc: np.ndarray) -> float:
    """Mean gain on each task j >= 1 before training on it, a[j-1, j], over the randomly
    initialised model's accuracy b[j] on it (NaN cells are skipped)."""
    m, b = np.asarray(m, dtype=float), np.asarray(random_acc, dtype=float)
    t = m.shape[0]
    diffs = np.array([m[j - 1, j] - b[j] for j in range(1, t)])
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.mean()) if diffs.size else float("nan")


def matrix_to_json(m: np.ndarray) -> list[list[float | None]]:
    """Nested lists with NaN as None (JSON null)."""
    return [[_finite_or_none(v) for v in row] for row in m]


def _finite_or_none(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 6)


def continual_summary(
    rows: list[dict[str, Any]],
    end_rounds: list[int | None],
    num_tasks: int,
    random_acc: list[float] | None = None,
) -> dict[str, Any]:
    """The summary.json fields: the matrix and its metrics; `random_acc` (b[j], where FWT
    is meaningful) adds FWT, else `fwt` is None."""
    m = accuracy_matrix(rows, end_rounds, num_tasks)
    fwt = None if random_acc is None else _finite_or_none(forward_transfer(m, random_acc))
    out = {
        "accuracy_matrix": matrix_to_json(m),
        "task_end_rounds": [None if r is None else int(r) for r in end_rounds],
        "average_accuracy": _finite_or_none(average_accuracy(m)),
        "forgetting": _finite_or_none(forgetting(m)),
        "bwt": _finite_or_none(backward_transfer(m)),
        "fwt": fwt,
    }
    if random_acc is not None:
        out["random_task_accuracy"] = [_finite_or_none(v) for v in random_acc]
    return out


def matrix_metrics(m: np.ndarray) -> dict[str, float | None]:
    """The three metrics of a possibly ragged matrix (its square part), None where they do
    not exist: forgetting and BWT need two tasks; an all-NaN part gives None."""
    m = np.asarray(m, dtype=float)
    t = min(m.shape)
    square = m[:t, :t]

    def finite(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    return {
        "average_accuracy": finite(average_accuracy(square)),
        "forgetting": finite(forgetting(square)) if t >= 2 else None,
        "bwt": finite(backward_transfer(square)) if t >= 2 else None,
    }
