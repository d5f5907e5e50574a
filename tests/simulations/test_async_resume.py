"""SIGKILL a real FedBuff run (a `perennial run` subprocess on Ray) after a checkpoint
exists, resume it with `--resume`, and compare with an uninterrupted run: the final
weights and every row's deterministic columns are identical. The checkpoint holds the
clock and the updates in flight (server/pipeline/async_scheduler.py), so the resumed
run replays the same virtual completion order."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import checkpoint_weights, kill_after_rows, metric_rows, run_cli, start_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]

STEPS = 6
KILL_AFTER = 2  # server steps checkpointed before the kill
ARGS = [
    *("--set", f"rounds={STEPS}"),
    *("--set", 'strategy="fedbuff"'),
    *("--set", "fedbuff-k=2"),
    *("--set", "concurrency=3"),
    *("--set", 'device-profile="lognormal"'),
    *("--set", "num-clients=6"),
    *("--set", "clients-per-round=3"),
    *("--set", "train-subset=600"),
    *("--set", "test-subset=200"),
    *("--set", 'model="mlp"'),
    *("--set", "local-epochs=1"),
    "--quiet",
]
SAME = (
    "round",
    "accuracy",
    "loss",
    "train_loss",
    "examples",
    "global_update_norm",
    "virtual_seconds",
    "virtual_round_seconds",
    "staleness_mean",
    "staleness_max",
)


def test_fedbuff_sigkill_and_resume_matches_uninterrupted_run(ray_address, tmp_path):
    ref = tmp_path / "ref"
    proc = run_cli("run", *ARGS, "--out", str(ref), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected_rows, expected_weights = metric_rows(ref, SAME), checkpoint_weights(ref)
    assert len(expected_rows) == STEPS
    assert max(r["staleness_max"] for r in expected_rows) > 0  # updates were in flight

    out = tmp_path / "killed"
    running = start_cli(
        "run",
        *ARGS,
        "--out",
        str(out),
        "--ray-address",
        ray_address,
        log_path=tmp_path / "killed.log",
    )
    kill_after_rows(running, out, KILL_AFTER, timeout=120)
    assert not (out / "summary.json").exists(), "the run finished before the kill"
    done = len(metric_rows(out, SAME))
    assert KILL_AFTER <= done < STEPS, (tmp_path / "killed.log").read_text()[-3000:]

    resumed = run_cli("run", "--resume", str(out), "--ray-address", ray_address, "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metric_rows(out, SAME) == expected_rows
    for a, b in zip(checkpoint_weights(out), expected_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert json.loads((out / "summary.json").read_text())["rounds_completed"] == STEPS
