"""SIGKILL a real FedBuff run (a `perennial run` subprocess on Ray) after a checkpoint
exists, resume it with `--resume`, and compare with an uninterrupted run: the final
weights and every row's deterministic columns are identical. The checkpoint holds the
clock and the updates in flight (server/pipeline/async_scheduler.py), so the resumed
run replays the same virtual completion order."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
from helpers import run_cli, start_cli

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


def _rows(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: json.loads(x).get(k) for k in SAME} for x in lines if x.strip()]


def _weights(run_dir):
    with np.load(run_dir / "checkpoint.npz") as data:
        return [data[k] for k in sorted(k for k in data.files if k.startswith("w/"))]


def test_fedbuff_sigkill_and_resume_matches_uninterrupted_run(ray_address, tmp_path):
    ref = tmp_path / "ref"
    proc = run_cli("run", *ARGS, "--out", str(ref), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected_rows, expected_weights = _rows(ref), _weights(ref)
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
    metrics, deadline = out / "metrics.jsonl", time.monotonic() + 120
    while time.monotonic() < deadline and running.poll() is None:
        if (out / "checkpoint.npz").exists() and metrics.exists():
            if len(metrics.read_text().splitlines()) >= KILL_AFTER:
                break
        time.sleep(0.02)
    os.killpg(running.pid, signal.SIGKILL)
    running.wait(timeout=30)
    assert not (out / "summary.json").exists(), "the run finished before the kill"
    done = len(_rows(out))
    assert KILL_AFTER <= done < STEPS, (tmp_path / "killed.log").read_text()[-3000:]

    resumed = run_cli("run", "--resume", str(out), "--ray-address", ray_address, "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _rows(out) == expected_rows
    for a, b in zip(_weights(out), expected_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert json.loads((out / "summary.json").read_text())["rounds_completed"] == STEPS
