"""Kill a real run with SIGKILL at three random rounds, resume it, and compare with an
uninterrupted run: final weights and the deterministic metric columns are identical."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import checkpoint_weights, kill_after_rows, metric_rows, run_cli, start_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]

ROUNDS = 8
# Rounds of real training long enough (lenet, 2 local epochs, 600 examples per client) for
# a kill to land inside a round; the kill's delay is scaled by the reference run's own
# round time, so a faster or slower machine still lands inside the next round.
ARGS = [
    "--set",
    f"rounds={ROUNDS}",
    "--set",
    "num-clients=6",
    "--set",
    "clients-per-round=3",
    "--set",
    "train-subset=3600",
    "--set",
    "test-subset=300",
    "--set",
    'model="lenet"',
    "--set",
    "local-epochs=2",
    "--set",
    'strategy="fedavgm"',
    "--set",
    "server-momentum=0.5",
    "--quiet",
]
SAME = ("round", "accuracy", "loss", "train_loss", "replies", "examples", "global_update_norm")


def test_sigkill_and_resume_matches_uninterrupted_run(ray_address, tmp_path):
    ref = tmp_path / "ref"
    proc = run_cli("run", *ARGS, "--out", str(ref), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected_rows, expected_weights = metric_rows(ref, SAME), checkpoint_weights(ref)
    lines = (ref / "metrics.jsonl").read_text().splitlines()
    round_time = float(np.median([json.loads(x)["round_seconds"] for x in lines]))
    # Fixed, so a failure reproduces: the first round, the middle and the last that still
    # leaves rounds to resume, each killed at a seeded point inside the next round.
    rng = np.random.default_rng(13)
    kill_rounds = [1, ROUNDS // 2, ROUNDS - 3]
    for k in kill_rounds:
        out = tmp_path / f"killed-{k}"
        running = start_cli(
            "run",
            *ARGS,
            "--out",
            str(out),
            "--ray-address",
            ray_address,
            log_path=tmp_path / f"killed-{k}.log",
        )
        kill_after_rows(running, out, k, delay=float(rng.uniform(0.0, 0.8)) * round_time)
        assert not (out / "summary.json").exists(), f"run finished before the kill at {k}"
        resumed = run_cli("run", "--resume", str(out), "--ray-address", ray_address, "--quiet")
        assert resumed.returncode == 0, f"kill at {k}: {resumed.stderr[-3000:]}"
        assert metric_rows(out, SAME) == expected_rows, f"metrics differ after kill at round {k}"
        for a, b in zip(checkpoint_weights(out), expected_weights, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"weights differ after kill at {k}")
        summary = json.loads((out / "summary.json").read_text())
        assert summary["rounds_completed"] == ROUNDS
