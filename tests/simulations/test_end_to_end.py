"""A real run through the CLI, Flower's simulation runtime and a Ray cluster."""

from __future__ import annotations

import json

import pytest
from helpers import SMALL, run_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]


def _accuracies(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["accuracy"] for r in rows]


def test_small_run_writes_a_complete_run_directory(ray_address, tmp_path):
    out = tmp_path / "A"
    proc = run_cli("run", *SMALL, "--out", str(out), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.toml", "metrics.jsonl", "summary.json", "accuracy.png", "partition.png"):
        assert (out / name).exists(), name
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2]
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["loss"] > 0 for r in rows)
    assert all(r["replies"] == 4 and r["failures"] == 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_completed"] == 2
    assert summary["final_accuracy"] == rows[-1]["accuracy"]
    assert summary["best_accuracy"] == max(r["accuracy"] for r in rows)
    assert summary["final_accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert "round = 2" not in (out / "config.toml").read_text()
    assert "rounds = 2" in (out / "config.toml").read_text()


def test_same_seed_gives_identical_accuracies(ray_address, tmp_path):
    runs = []
    for name in ("A", "B"):
        out = tmp_path / name
        proc = run_cli("run", *SMALL, "--out", str(out), "--ray-address", ray_address)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(_accuracies(out))
    assert runs[0] == runs[1]


def test_nested_tables_give_the_same_metrics_as_flat_keys(ray_address, tmp_path):
    """`[federation] rounds = 2` etc. in a file, and flat `--set` keys: one experiment."""
    nested = tmp_path / "nested.toml"
    nested.write_text(
        "[federation]\nrounds = 2\nnum-clients = 4\nclients-per-round = 4\n"
        '[data]\ntrain-subset = 1200\ntest-subset = 500\npartition = "iid"\n'
        '[train]\nlocal-epochs = 1\nmodel = "mlp"\n'
    )
    flat = [
        "--set", "rounds=2", "--set", "num-clients=4", "--set", "clients-per-round=4",
        "--set", "train-subset=1200", "--set", "test-subset=500", "--set", 'partition="iid"',
        "--set", "local-epochs=1", "--set", 'model="mlp"',
    ]  # fmt: skip
    runs = []
    for name, args in (("nested", [str(nested), "--quiet"]), ("flat", [*flat, "--quiet"])):
        out = tmp_path / name
        proc = run_cli("run", *args, "--out", str(out), "--ray-address", ray_address)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(_accuracies(out))
    assert len(runs[0]) == 2 and runs[0] == runs[1]
