"""A real run through the CLI, Flower's simulation runtime and a Ray cluster."""

from __future__ import annotations

import json

import pytest
from helpers import SMALL, run_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]


def _accuracies(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["accuracy"] for r in rows]


@pytest.fixture(scope="module")
def small_run(ray_address, tmp_path_factory):
    """One SMALL run, shared: each run costs a process, Ray actors and a TF import."""
    out = tmp_path_factory.mktemp("small") / "A"
    proc = run_cli("run", *SMALL, "--out", str(out), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_small_run_writes_a_complete_run_directory(small_run):
    out = small_run
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


def test_same_seed_in_nested_tables_gives_the_flat_keys_accuracies(
    small_run, ray_address, tmp_path
):
    """SMALL again, written as `[federation] rounds = 2` etc. in a file: another process
    with the same seed, and nested tables the same experiment as flat `--set` keys."""
    nested = tmp_path / "nested.toml"
    nested.write_text(
        "[federation]\nrounds = 2\nnum-clients = 4\nclients-per-round = 4\n"
        '[data]\ntrain-subset = 1200\ntest-subset = 500\npartition = "dirichlet"\n'
        "[train]\nlocal-epochs = 1\n"
    )
    out = tmp_path / "nested"
    proc = run_cli("run", str(nested), "--quiet", "--out", str(out), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = _accuracies(small_run)
    assert len(first) == 2 and _accuracies(out) == first
