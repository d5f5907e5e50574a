"""Which experiments may let SuperNodes join a deployment after it started.

Apart from config_deploy.py (the [deploy] keys), because the rule reads other sections
(config_schema imports config_deploy, so config_deploy cannot import it back).
"""

from __future__ import annotations

from learning.config_schema import Sections
from learning.errors import ConfigError


def check_late_joiners(cfg: Sections) -> None:
    """Refuse late joiners where a growing population cannot be made correct: central
    DP (the accountant's N and the Poisson rate are fixed before round 1, and privacy
    amplification by sampling assumes that population), SecAgg+ (not yet tested with a
    changing population), the virtual clock's device and availability models and
    held-out clients (all sized to the population at start). Asynchronous strategies
    are simulation-only already."""
    if not cfg.deploy.deploy_late_joiners:
        return
    why = None
    if cfg.federation.federation_mode != "deployment":
        why = "it applies to federation-mode = deployment only"
    elif cfg.privacy.dp == "central":
        why = "central DP accounts over the population sampled from at the start"
    elif cfg.privacy.secure_aggregation:
        why = "SecAgg+ with a changing population is not supported"
    elif (
        cfg.devices.device_profile != "uniform"
        or cfg.devices.availability != "always"
        or cfg.devices.slow_fraction > 0
        or cfg.personal.holdout_clients > 0
    ):
        why = "device profiles, availability and held-out clients are sized at the start"
    if why is not None:
        raise ConfigError(f"deploy-late-joiners = true is refused: {why}; set it to false")
