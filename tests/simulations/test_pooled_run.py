"""Multi-client dispatch on the real runtime: several clients per message, pooled in the
worker, give the model one message per client gives (to float tolerance)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]

COMMON = [
    "--set", "rounds=2",
    "--set", "num-clients=20",
    "--set", "clients-per-round=8",
    "--set", 'model="mlp"',
    "--set", "train-subset=1000",
    "--set", "test-subset=200",
    "--set", 'partition="iid"',
    "--quiet",
]  # fmt: skip


def _rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("strategy", ["fedavg", "scaffold"])
def test_pooled_messages_train_the_model_one_message_per_client_trains(
    ray_address, tmp_path, strategy
):
    runs = {}
    for k in (1, 4):
        out = tmp_path / f"k{k}"
        proc = run_cli(
            "run", *COMMON, "--set", f'strategy="{strategy}"',
            "--set", f"clients-per-message={k}", "--out", str(out), "--ray-address", ray_address,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[k] = _rows(out)
    for one, pooled in zip(runs[1], runs[4], strict=True):
        assert pooled["replies"] == one["replies"] == 8 and pooled["failures"] == 0
        assert pooled["accuracy"] == pytest.approx(one["accuracy"], abs=0.01)
        assert np.isclose(pooled["loss"], one["loss"], rtol=1e-4)
