"""What a central-DP run may publish: an allowlist, so a new field is withheld until
someone decides it is covered by epsilon.

Under `dp = "central"` the accounted release is the noisy model of each round. What is
computed from it alone (its central evaluation, the norm of its change), the privacy
parameters and the evaluation's own time may be released. Wall-clock training,
health and aggregation times and the virtual clock are withheld: they grow with the
number of drawn clients, and a round's virtual length is its slowest drawn client's,
whose device is computable from the public seed (an independent review showed it names
a sampled client in every round). Everything computed from individual replies
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
        # evaluating the released model takes as long whoever was drawn; training,
        # health and aggregation time (and the virtual clock: a round lasts as long as
        # its slowest drawn client, whose device is public) grow with or name the
        # sample, so they are withheld
        "eval_seconds",
        # continual scenarios: the released model evaluated on each task's test set
        "task",
        "task_accuracy",
        "seen_accuracy",
    }
)
# Deliberately absent: local-eval's fields (personalised_accuracy, worst10_accuracy,
# new_client_accuracy, ...): each is computed from clients' own data, outside epsilon
# (docs/personalised.md); they stay for the operator under operator-diagnostics only.
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
