"""The shipped personalised grid parses, and a bench over local-eval cells gets the
personalised columns in results.csv, a ranked table and personalised.png."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import strategies  # noqa: F401  (registers the strategy names)
from simulations.bench import load_grid, summarise_grid
from simulations.bench_plots import plot_grid
from simulations.bench_tables import PERSONAL_KEYS, write_tables

GRID = Path(__file__).resolve().parents[2] / "simulations" / "experiments" / "personalised.toml"


def test_the_personalised_grid_is_the_issues_protocol():
    grid = load_grid(GRID)
    methods = {c.variant for c in grid.cells}
    assert methods == {"fedavg", "fedavg-ft", "local", "fedper", "fedrep", "fedbn", "ditto", "apfl"}
    assert len(grid.cells) == 8 * 2 * 2
    for c in grid.cells:
        v = c.values
        assert v["local-eval"] and v.get("dataset", "fashion-mnist") == "fashion-mnist"
        assert v["num-clients"] - round(v["holdout-clients"] * v["num-clients"]) == 20
        assert v["clients-per-round"] == 20 and v["rounds"] == 50
        assert v["model"] == ("cnn-bn" if c.variant == "fedbn" else "cnn")
    parts = {
        (c.values["partition"], c.values["classes-per-client"], c.values["alpha"])
        for c in grid.cells
    }
    assert parts == {("pathological", 2, 0.1), ("dirichlet", 2, 0.1)}
    assert {c.seed for c in grid.cells} == {0, 1}


def test_bench_columns_table_and_plot_over_local_eval_cells(tmp_path):
    grid = load_grid(GRID)
    cells = [c for c in grid.cells if c.variant in ("fedavg", "fedper")]
    grid = type(grid)(cells, grid.target_accuracy)
    for c in cells:
        d = tmp_path / "cells" / c.label
        d.mkdir(parents=True)
        good = 0.9 if c.variant == "fedper" else 0.7
        rows = [
            {"round": r, "accuracy": 0.5, "personalised_accuracy": good + r / 100 + c.seed / 1000}
            for r in (1, 2)
        ]
        (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        summary = {
            "final_accuracy": 0.5,
            "best_accuracy": 0.5,
            "wall_seconds": 1.0,
            "personalised_accuracy": rows[-1]["personalised_accuracy"],
            "worst10_accuracy": good - 0.1,
            "global_accuracy": 0.5,
            "new_client_accuracy": good - 0.2,
        }
        (d / "summary.json").write_text(json.dumps(summary))
    table = summarise_grid(grid, tmp_path)
    write_tables(table, tmp_path, grid.target_accuracy)
    plot_grid(grid, tmp_path)
    with open(tmp_path / "results.csv") as f:
        got = list(csv.DictReader(f))
    assert set(PERSONAL_KEYS) <= set(got[0]) and {f"{k}_std" for k in PERSONAL_KEYS} <= set(got[0])
    fedper = next(r for r in got if r["variant"] == "fedper" and "pathological" in r["group"])
    assert abs(float(fedper["personalised_accuracy"]) - 0.9205) < 1e-9
    md = (tmp_path / "results.md").read_text()
    assert "| rank | variant | personalised acc % | worst 10% acc %" in md
    assert md.index("| 1 | fedper | 92.05") < md.index("| 2 | fedavg | 72.05")
    assert (tmp_path / "personalised.png").stat().st_size > 0


def test_bench_curves_are_drawn_at_the_rounds_that_were_evaluated(tmp_path, monkeypatch):
    """Evaluated every 10 rounds: the points sit at rounds 10, 20, 30, not at 1, 2, 3."""
    import server.plots.bench as plots

    grid = load_grid(GRID)
    cells = [c for c in grid.cells if c.variant == "fedper" and c.seed == 0][:1]
    grid = type(grid)(cells, grid.target_accuracy)
    d = tmp_path / "cells" / cells[0].label
    d.mkdir(parents=True)
    rows = [{"round": r, "accuracy": None} for r in range(1, 31)]
    for r in rows:
        if r["round"] % 10 == 0:
            r.update(accuracy=0.5, personalised_accuracy=0.9)
    (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    drawn = []
    monkeypatch.setattr(plots, "plot_grid_curves", lambda p, path, xs, *a, **k: drawn.append(xs))
    plot_grid(grid, tmp_path)
    assert [x[cells[0].group]["fedper"] for x in drawn] == [[[10.0, 20.0, 30.0]]] * 2
