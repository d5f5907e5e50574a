"""SIGKILL a real `perennial run` of a personalised method (Ditto: a whole personal model
per client on disk) mid-round and `--resume` it: the personalised, worst-10% and
new-client accuracies and the final weights equal an uninterrupted run's bit for bit.
Partial participation (3 of 5 training clients a round) makes the per-round versions of
the personal state matter: a resumed round must see each client's state as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import checkpoint_weights, kill_after_rows, metric_rows, run_cli, start_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]

ROUNDS = 6
ARGS = [
    *("--set", f"rounds={ROUNDS}", "--set", "num-clients=6", "--set", "clients-per-round=3"),
    *("--set", "train-subset=1800", "--set", "test-subset=200", "--set", 'model="mlp"'),
    *("--set", 'strategy="ditto"', "--set", "local-eval=true", "--set", "holdout-clients=0.17"),
    *("--set", 'partition="classes"', "--set", "lr=0.05", "--set", "local-epochs=2"),
    "--quiet",
]
SAME = (
    "round",
    "accuracy",
    "personalised_accuracy",
    "personalised_accuracy_weighted",
    "worst10_accuracy",
    "new_client_accuracy",
    "train_loss",
    "global_update_norm",
)


def test_personal_state_survives_sigkill_and_resume(ray_address, tmp_path):
    from server.checkpoint import load_checkpoint

    ray = ("--ray-address", ray_address)
    ref = tmp_path / "ref"
    proc = run_cli("run", *ARGS, "--out", str(ref), *ray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected_rows, expected_weights = metric_rows(ref, SAME), checkpoint_weights(ref)
    assert all(r["new_client_accuracy"] is not None for r in expected_rows)
    summary = json.loads((ref / "summary.json").read_text())
    assert summary["personal_state_bytes_per_client"] > 0
    assert summary["personalised_accuracy"] == expected_rows[-1]["personalised_accuracy"]
    round_time = float(
        np.median(
            [
                json.loads(x)["round_seconds"]
                for x in (ref / "metrics.jsonl").read_text().splitlines()
            ]
        )
    )

    out = tmp_path / "killed"
    running = start_cli("run", *ARGS, "--out", str(out), *ray, log_path=tmp_path / "k.log")
    kill_after_rows(running, out, 2, delay=0.4 * round_time)
    assert not (out / "summary.json").exists(), "the run finished before the kill"
    killed = load_checkpoint(out).round
    assert 2 <= killed < ROUNDS
    resumed = run_cli("run", "--resume", str(out), *ray, "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert metric_rows(out, SAME) == expected_rows
    for a, b in zip(checkpoint_weights(out), expected_weights, strict=True):
        np.testing.assert_array_equal(a, b)
