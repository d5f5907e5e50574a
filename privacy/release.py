"""What a central-DP run may publish: an allowlist, so a new field is withheld until
someone decides it is covered by epsilon.

Under `dp = "central"` the accounted release is the noisy model of each round. What is
computed from it alone (its central evaluation, the norm of its change), the privacy
parameters and timings may be released. Everything computed from individual replies
(update norms and cosines against the un-noised mean, client train loss, the slowest
clients) or counting them exactly (clients, replies, failures, examples, bytes, updates
per node) says who took part and is withheld from metrics.jsonl, TensorBoard, the
report and the progress line. `operator-diagnostics = true` keeps them for the operator,
with the row's `outside_epsilon` naming every field the accountant does not cover.
"""

from __future__ import annotations

import re
from typing import Any

from learning.config import ExperimentConfig

RELEASABLE = frozenset(
    {
        "round",
        "accuracy",
        "loss",
        "global_update_norm",
        "epsilon",
        "epsilon_pld",
        "delta",
        "noise_multiplier",
        "clipping_norm",
        "noise_std",
        "train_seconds",
        "health_seconds",
        "aggregate_seconds",
        "eval_seconds",
        "round_seconds",
        "elapsed_seconds",
        # the virtual clock: timings, like the wall-clock ones (late/offline counts and
        # utilisation depend on who was drawn: not covered)
        "virtual_seconds",
        "virtual_round_seconds",
        # continual scenarios: the released model evaluated on each task's test set
        "task",
        "task_accuracy",
        "seen_accuracy",
        "tasks_ended",  # where virtual task boundaries fell: a timing of the clock
    }
)
_RELEASABLE_PATTERNS = (re.compile(r"acc_task_\d+"),)


def releasable(name: str) -> bool:
    return name in RELEASABLE or any(p.fullmatch(name) for p in _RELEASABLE_PATTERNS)


def guarded(cfg: ExperimentConfig) -> bool:
    """Whether this run's outputs must be limited to what epsilon accounts for."""
    return cfg.privacy.dp == "central"


def release_row(row: dict[str, Any], cfg: ExperimentConfig) -> dict[str, Any]:
    """The metrics row as it may be written: unchanged without central DP."""
    if not guarded(cfg):
        return row
    kept = {k: v for k, v in row.items() if releasable(k)}
    if cfg.privacy.operator_diagnostics:
        outside = sorted(k for k in row if not releasable(k))
        return {**row, "outside_epsilon": outside}
    return kept


def release_histograms(histograms: dict[str, Any], cfg: ExperimentConfig) -> dict[str, Any]:
    """Per-client distributions are never covered by epsilon."""
    if guarded(cfg) and not cfg.privacy.operator_diagnostics:
        return {}
    return histograms
