"""Task-incremental evaluation: the task id is known at test time, so each task has its
own head. With one softmax over all classes, a task's head is that softmax restricted to
the task's classes (the "masked logits" form of a multi-head model): the prediction is
the task class of highest probability. Pure NumPy."""

from __future__ import annotations

import numpy as np


def task_head_predictions(probs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(N,) labels in `classes` of highest probability; probs (N, C), classes (K,)."""
    classes = np.asarray(classes, dtype=np.int64)
    if classes.size == 0:
        raise ValueError("a task head needs at least one class")
    return classes[np.argmax(np.asarray(probs)[:, classes], axis=1)]


def task_head_accuracy(probs: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """Accuracy of the task's head (`task_head_predictions`) on labels y."""
    if len(y) == 0:
        return 0.0
    return float(np.mean(task_head_predictions(probs, classes) == np.asarray(y)))
