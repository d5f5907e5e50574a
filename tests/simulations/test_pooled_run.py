"""Multi-client dispatch on the real runtime: several clients per message, pooled in the
worker, give the model one message per client gives (to float tolerance)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import many, run_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]


def _rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _run(ray_address, out, strategy, per_message):
    args = many(strategy, per_message)
    proc = run_cli("run", *args, "--out", str(out), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("strategy", ["fedavg", "scaffold"])
def test_pooled_messages_train_the_model_one_message_per_client_trains(
    request, ray_address, tmp_path, strategy
):
    """fedavg's one-message-per-client run is the session's `many_fedavg_run`, which
    test_ray_cluster.py also compares against (one process fewer in the suite)."""
    if strategy == "fedavg":
        ref = request.getfixturevalue("many_fedavg_run")
    else:
        ref = _run(ray_address, tmp_path / "k1", strategy, 1)
    runs = {1: _rows(ref), 4: _rows(_run(ray_address, tmp_path / "k4", strategy, 4))}
    for one, pooled in zip(runs[1], runs[4], strict=True):
        assert pooled["replies"] == one["replies"] == 8 and pooled["failures"] == 0
        assert pooled["accuracy"] == pytest.approx(one["accuracy"], abs=0.01)
        assert np.isclose(pooled["loss"], one["loss"], rtol=1e-4)
