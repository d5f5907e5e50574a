"""Real `perennial run`s (CLI, Flower's runtime, Ray workers) with a user's model,
dataset, partition and stateful strategy from a package outside the repo, reached by the
workers through PYTHONPATH: the model is exported with the run's accuracy, and a run
killed with SIGKILL and `--resume`d ends with an uninterrupted run's weights bit for bit.

The strategy is server momentum, its beta from [plugin]. The velocity the killed run
checkpointed is non-zero, so a resume that lost it (or lost the [plugin] beta from
config.toml) would end elsewhere (tests/server/test_user_strategy.py shows a dropped
state is noticed). The uninterrupted run is shared by both tests (a module fixture): the
export test only reads it, so the module starts 3 processes, not 4."""

from __future__ import annotations

import json
import sys
import tomllib
from types import SimpleNamespace

import numpy as np
import pytest
from byo_package import write_package
from helpers import checkpoint_weights, kill_after_rows, metric_rows, run_cli, start_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]

ROUNDS = 8  # rounds after the kill take ~0.1 s each: room for it to land mid-run
KILL_AFTER = 2
# The strategy and its [plugin] settings from an experiment file; the model, data and
# split named by import path with --set, as on a command line.
EXPERIMENT = f"""
[train]
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
PLUGINS = [
    *("--set", 'model="byo_pkg.models:build"'),
    *("--set", 'dataset="byo_pkg.data:load"'),
    *("--set", 'partition="byo_pkg.split:split"'),
]
SAME = ("round", "accuracy", "loss", "train_loss", "replies", "global_update_norm")


@pytest.fixture(scope="module")
def plugin_run(ray_address, tmp_path_factory):
    """The user's package, the experiment's arguments, and an uninterrupted run of it."""
    root = tmp_path_factory.mktemp("plugins")
    user = write_package(root / "user")
    exp = root / "exp.toml"
    exp.write_text(EXPERIMENT)
    args = ("run", str(exp), *PLUGINS, "--ray-address", ray_address, "--quiet")
    ref = root / "ref"
    proc = run_cli(*args, "--out", str(ref), path=[user])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return SimpleNamespace(user=user, args=args, ref=ref, ray_address=ray_address)


def test_a_run_with_user_plugins_exports_its_accuracy(plugin_run):
    out, user = plugin_run.ref, plugin_run.user
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["replies"] for r in rows] == [2] * ROUNDS and all(r["failures"] == 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    sys.path.insert(0, str(user))
    try:
        import keras

        from learning.datasets import load_dataset

        ds = load_dataset("byo_pkg.data:load")
        probs = keras.models.load_model(out / "model.keras").predict(ds.x_test, verbose=0)
    finally:
        sys.path.remove(str(user))
    acc = float((probs.argmax(axis=1) == ds.y_test).mean())
    assert abs(acc - summary["final_accuracy"]) <= 1 / len(ds.y_test) + 1e-9
    assert (out / "best.keras").is_file()
    assert np.isfinite(summary["final_loss"])


def test_a_user_strategys_state_survives_sigkill_and_resume(plugin_run, tmp_path):
    from server.checkpoint import load_checkpoint

    user = plugin_run.user
    expected_rows = metric_rows(plugin_run.ref, SAME)
    expected_weights = checkpoint_weights(plugin_run.ref)

    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    running = start_cli(*plugin_run.args, "--out", str(out), log_path=log, path=[user])
    kill_after_rows(running, out, KILL_AFTER, timeout=120)
    assert not (out / "summary.json").exists(), "the run finished before the kill"
    killed = load_checkpoint(out)
    assert KILL_AFTER <= killed.round < ROUNDS, log.read_text()[-3000:]
    assert any(np.any(v != 0) for v in killed.state["_velocity"])  # the state resume needs
    assert tomllib.loads((out / "config.toml").read_text())["plugin.beta"] == 0.5

    ray = ("--ray-address", plugin_run.ray_address, "--quiet")
    resumed = run_cli("run", "--resume", str(out), *ray, path=[user])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {out} after round {killed.round}" in resumed.stdout
    assert metric_rows(out, SAME) == expected_rows
    for a, b in zip(checkpoint_weights(out), expected_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert json.loads((out / "summary.json").read_text())["rounds_completed"] == ROUNDS
