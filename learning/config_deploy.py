"""The `[deploy]` section: how a real deployment's rounds wait, re-send and resume.

Apart from `timeout` and `max-retries`, which a simulation reads (its workers never
die, so an hour and redraws are harmless there): a deployment's SuperNodes are
machines that die, lose their link and come back, and a round must neither hang on
them nor give up on a node that is back within seconds (server/pipeline/node_faults.py).
Server-side keys: never sent to clients, left out of the run digest (privacy/
server_key.py) and, at their defaults, out of everything a simulation records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from learning.config_field import key_field as _k


@dataclass(frozen=True)
class DeployConfig:
    """Deadlines, re-sends and resume of `federation-mode = "deployment"` rounds."""

    deploy_round_timeout: float = _k(
        600.0,
        "deployment: seconds one send of a round waits for its SuperNodes' replies; then "
        "the missing nodes are lost and the round aggregates what came",
        gt=0.0,
    )
    deploy_retries: int = _k(
        3, "deployment: re-sends to a SuperNode the SuperLink reports unavailable", min=0
    )
    deploy_backoff: float = _k(
        5.0, "deployment: seconds before the first re-send (doubling each time)", min=0.0
    )
    deploy_late_joiners: bool = _k(
        False,
        "deployment: SuperNodes that connect after the run started join the population "
        "from the next round (sampling then draws from the larger population)",
    )
    deploy_resume: bool = _k(
        False,
        "deployment: continue out-dir from its checkpoint (set by `perennial deploy run "
        "--resume RUN_DIR`)",
    )


DEPLOY_KEYS = tuple(f.name.replace("_", "-") for f in fields(DeployConfig))
