"""SIGKILL a real `perennial run` of a user's stateful strategy (server momentum from the
byo package, its beta from [plugin]) and `--resume` it: the final weights equal an
uninterrupted run's bit for bit. The velocity the killed run checkpointed is non-zero,
so a resume that lost it (or lost the [plugin] beta from config.toml) would end
elsewhere (tests/server/test_user_strategy.py shows a dropped state is noticed)."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
from byo_package import write_package
from helpers import checkpoint_weights, kill_after_rows, metric_rows, run_cli, start_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]

ROUNDS = 8  # rounds after the kill take ~0.1 s each: room for it to land mid-run
KILL_AFTER = 2
EXPERIMENT = f"""
[data]
dataset = "byo_pkg.data:load"
partition = "byo_pkg.split:split"

[train]
model = "byo_pkg.models:build"
lr = 0.5

[federation]
rounds = {ROUNDS}
num-clients = 4
clients-per-round = 2

[strategy]
strategy = "byo_pkg.strategies:ServerMomentum"

[plugin]
beta = 0.5
"""
SAME = ("round", "accuracy", "loss", "train_loss", "replies", "global_update_norm")


def test_a_user_strategys_state_survives_sigkill_and_resume(ray_address, tmp_path):
    from server.checkpoint import load_checkpoint

    user = write_package(tmp_path / "user")
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    ray = ("--ray-address", ray_address, "--quiet")
    ref = tmp_path / "ref"
    proc = run_cli("run", str(exp), "--out", str(ref), *ray, path=[user])
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected_rows, expected_weights = metric_rows(ref, SAME), checkpoint_weights(ref)

    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    running = start_cli("run", str(exp), "--out", str(out), *ray, log_path=log, path=[user])
    kill_after_rows(running, out, KILL_AFTER, timeout=120)
    assert not (out / "summary.json").exists(), "the run finished before the kill"
    killed = load_checkpoint(out)
    assert KILL_AFTER <= killed.round < ROUNDS, log.read_text()[-3000:]
    assert any(np.any(v != 0) for v in killed.state["_velocity"])  # the state resume needs
    assert tomllib.loads((out / "config.toml").read_text())["plugin.beta"] == 0.5

    resumed = run_cli("run", "--resume", str(out), *ray, path=[user])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {out} after round {killed.round}" in resumed.stdout
    assert metric_rows(out, SAME) == expected_rows
    for a, b in zip(checkpoint_weights(out), expected_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert json.loads((out / "summary.json").read_text())["rounds_completed"] == ROUNDS
