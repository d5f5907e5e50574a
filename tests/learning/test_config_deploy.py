"""The [deploy] keys: server-side (never sent, out of the digest), and late joiners
refused in one line where a growing population cannot be made correct."""

from __future__ import annotations

import pytest

from learning.config import ExperimentConfig
from learning.errors import ConfigError
from privacy.server_key import client_config, config_digest

DEPLOY = {"federation-mode": "deployment", "num-clients": 4, "clients-per-round": 2}


def test_deploy_keys_are_never_sent_and_change_no_digest():
    base = ExperimentConfig.from_flat(DEPLOY)
    tuned = base.replace(
        deploy_round_timeout=30.0, deploy_retries=0, deploy_backoff=1.0, deploy_resume=True
    )
    assert config_digest(tuned) == config_digest(base)  # a resumed run keeps its key
    assert not {k for k in client_config(tuned.to_flat()) if k.startswith("deploy-")}


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"federation-mode": "simulation"}, "deployment only"),
        ({"dp": "central", "delta": 0.01}, "central DP accounts over the population"),
        ({"secure-aggregation": True, "clients-per-round": 4}, r"SecAgg\+ with a changing"),
        ({"availability": "diurnal"}, "sized at the start"),
    ],
)
def test_late_joiners_are_refused_where_they_cannot_be_correct(extra, why):
    with pytest.raises(ConfigError, match=why) as err:
        ExperimentConfig.from_flat({**DEPLOY, "deploy-late-joiners": True, **extra})
    assert "\n" not in str(err.value)


def test_late_joiners_are_accepted_for_a_plain_deployment():
    cfg = ExperimentConfig.from_flat({**DEPLOY, "deploy-late-joiners": True})
    assert cfg.deploy.deploy_late_joiners
