"""The shipped continual experiments parse, and bench tables show the continual metrics."""

from __future__ import annotations

from pathlib import Path

from learning.config import build_config
from simulations.bench import load_grid
from simulations.bench_tables import write_tables

EXPERIMENTS = Path(__file__).resolve().parents[2] / "simulations" / "experiments"


def test_shipped_continual_experiments_are_valid():
    split = build_config(EXPERIMENTS / "split-fmnist.toml")
    assert split.continual.scenario == "class-incremental"
    assert split.federation.num_clients == 20 and split.federation.clients_per_round >= 10
    rotated = build_config(EXPERIMENTS / "rotated-fmnist.toml")
    assert rotated.continual.scenario == "domain-incremental"
    assert rotated.continual.drift == "rotation"
    grid = load_grid(EXPERIMENTS / "continual.toml")
    methods = {c.values["cl-method"] for c in grid.cells}
    scenarios = {c.values["scenario"] for c in grid.cells}
    assert methods == {"finetune", "ewc", "lwf", "replay"}
    assert scenarios == {"class-incremental", "domain-incremental"}


def test_the_continual_plus_grid_crosses_every_method_with_every_scenario():
    grid = load_grid(EXPERIMENTS / "continual-plus.toml")
    assert len(grid.cells) == 64
    pairs = {
        (c.values["cl-method"], c.values["scenario"], c.values.get("drift")) for c in grid.cells
    }
    methods = {m for m, _, _ in pairs}
    assert methods == {"finetune", "ewc", "lwf", "replay", "target", "fot"}
    streams = {(s, d) for _, s, d in pairs}
    assert ("domain-incremental", "permutation") in streams and (
        "task-incremental",
        None,
    ) in streams
    long = [c for c in grid.cells if c.values["num-tasks"] == 20]
    assert long and all(c.values["rounds"] >= 2 * 20 for c in long)
    models = {c.variant: c.values["model"] for c in grid.cells}
    assert models["target"] == models["lwf"] == "mlp-bn"  # TARGET's like-for-like LwF
    assert models["fot"] == models["lwf-mlp"] == models["finetune-mlp"] == "mlp"  # FOT's


def test_continual_groups_get_average_accuracy_forgetting_and_bwt(tmp_path):
    row = {
        "group": "scenario=split-fmnist",
        "seeds": 1,
        "final_mean": 0.5,
        "final_std": 0.0,
        "best_mean": 0.6,
        "best_std": 0.0,
        "rounds_to_target": None,
        "reached": "0/1",
        "mb_sent": 1.0,
        "mb_received": 1.0,
        "wall_seconds": 40.0,
    }
    table = [
        {
            **row,
            "variant": "finetune",
            "average_accuracy_mean": 0.2,
            "average_accuracy_std": 0.0,
            "forgetting_mean": 0.98,
            "forgetting_std": 0.0,
            "bwt_mean": -0.98,
            "bwt_std": 0.0,
        },
        {
            **row,
            "variant": "replay",
            "average_accuracy_mean": 0.79,
            "average_accuracy_std": 0.0,
            "forgetting_mean": 0.09,
            "forgetting_std": 0.0,
            "bwt_mean": -0.09,
            "bwt_std": 0.0,
        },
        {**row, "group": "plain", "variant": "fedavg"},
    ]
    write_tables(table, tmp_path, 0.8)
    md = (tmp_path / "results.md").read_text()
    assert "| rank | variant | average acc % | forgetting (points) | BWT (points)" in md
    assert md.index("| 1 | replay | 79.00") < md.index("| 2 | finetune | 20.00")
    assert "final acc %" in md  # the plain group keeps the usual table
    assert "forgetting_mean" in (tmp_path / "results.csv").read_text().splitlines()[0]
