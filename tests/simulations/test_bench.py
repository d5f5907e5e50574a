"""Bench grids: parsing, cell naming, and resuming only unfinished cells (real runtime)."""

from __future__ import annotations

import json

import pytest
from helpers import checkpoint_weights, run_cli

from learning.errors import ConfigError
from simulations.bench import load_grid

GRID = """
[base]
num-clients = 4
clients-per-round = 2
rounds = 2
train-subset = 600
test-subset = 200
model = "mlp"
local-epochs = 1

[axes]
partition = ["iid", { name = "dir", partition = "dirichlet", alpha = 0.3, min-shard-size = 1 }]
seed = [0]

[[variant]]
strategy = "fedavg"

[[variant]]
name = "prox"
strategy = "fedprox"
proximal-mu = 0.5

[bench]
target-accuracy = 0.2
"""
# The grid the slow test runs: two cells (each a Ray run) still cross a variant pair with
# an axis; GRID's four-cell crossing is checked by parsing alone.
RUN_GRID = GRID.replace('partition = ["iid", {', "partition = [{")


def test_grid_cells_cross_variants_and_axes(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(GRID)
    grid = load_grid(path)
    labels = [c.label for c in grid.cells]
    assert labels == [
        "fedavg__partition-iid__seed-0",
        "fedavg__partition-dir__seed-0",
        "prox__partition-iid__seed-0",
        "prox__partition-dir__seed-0",
    ]
    assert grid.cells[3].values["alpha"] == 0.3 and grid.cells[3].values["proximal-mu"] == 0.5


SECTIONED = """
[base.federation]
num-clients = 4
clients-per-round = 2
rounds = 2

[base.data]
train-subset = 600
test-subset = 200

[base.train]
model = "mlp"
local-epochs = 1

[axes]
"data.partition" = ["iid", {name = "dir", partition = "dirichlet", alpha = 0.3, min-shard-size = 1}]
"federation.seed" = [0]

[[variant]]
strategy = "fedavg"

[[variant]]
name = "prox"
"strategy.strategy" = "fedprox"
"strategy.proximal-mu" = 0.5

[bench]
target-accuracy = 0.2
"""


def test_a_sectioned_grid_is_the_flat_grid(tmp_path):
    flat, sectioned = tmp_path / "flat.toml", tmp_path / "sectioned.toml"
    flat.write_text(GRID)
    sectioned.write_text(SECTIONED)
    a, b = load_grid(flat), load_grid(sectioned)
    assert [c.label for c in a.cells] == [c.label for c in b.cells]
    assert [c.values for c in a.cells] == [c.values for c in b.cells]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[axes]\nseed = 3\n", "must be a non-empty list"),
        ("[base]\nrounds = 'x'\n", "'rounds' must be an integer"),
        ("[nonsense]\n", "unknown section"),
        ("[[variant]]\nstrategy = 'fedavgg'\n", "unknown strategy"),
    ],
)
def test_bad_grids_fail_before_running(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    if "fedavgg" in text:  # strategy names are checked by the CLI preflight
        proc = run_cli("bench", str(path), "--out", str(tmp_path / "o"))
        assert proc.returncode == 2 and fragment in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        return
    with pytest.raises(ConfigError, match=fragment):
        load_grid(path)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.tf
def test_bench_writes_tables_and_resumes_only_unfinished_cells(ray_address, tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text(RUN_GRID)
    out = tmp_path / "bench"
    proc = run_cli("bench", str(grid), "--out", str(out), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.md", "results.csv", "accuracy.png", "report.html"):
        assert (out / name).exists(), name
    md = (out / "results.md").read_text()
    assert "fedavg" in md and "prox" in md and "partition=dir" in md
    cells = out / "cells"
    kept = cells / "fedavg__partition-dir__seed-0" / "summary.json"
    kept_mtime = kept.stat().st_mtime_ns
    redo = cells / "prox__partition-dir__seed-0"
    (redo / "summary.json").unlink()  # as if the bench was killed inside this cell
    proc = run_cli("bench", str(grid), "--out", str(out), "--ray-address", ray_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 of 2 cells already finished" in proc.stdout
    assert kept.stat().st_mtime_ns == kept_mtime
    assert json.loads((redo / "summary.json").read_text())["rounds_completed"] == 2


def test_a_bench_directory_in_use_is_refused(tmp_path):
    import fcntl

    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "bench"
    out.mkdir()
    with open(out / "bench.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = run_cli("bench", str(grid), "--out", str(out))
    assert proc.returncode == 2
    assert "in use by another perennial bench" in proc.stderr
    assert not (out / "cells").exists() or not any((out / "cells").iterdir())


def test_bench_reports_virtual_hours_to_target(tmp_path):
    """results.csv gains the virtual time-to-target (from rows' virtual_seconds)."""
    import json as _json

    from simulations.bench import load_grid, summarise_grid
    from simulations.bench_tables import write_tables

    grid_file = tmp_path / "g.toml"
    grid_file.write_text(
        '[base]\nrounds = 3\n[axes]\nseed = [0]\n[[variant]]\nstrategy = "fedavg"\n'
        "[bench]\ntarget-accuracy = 0.5\n"
    )
    grid = load_grid(grid_file)
    out = tmp_path / "out"
    cell = out / "cells" / grid.cells[0].label
    cell.mkdir(parents=True)
    rows = [
        {"round": 1, "accuracy": 0.3, "virtual_seconds": 1800.0},
        {"round": 2, "accuracy": 0.6, "virtual_seconds": 5400.0},
        {"round": 3, "accuracy": 0.7, "virtual_seconds": 7200.0},
    ]
    (cell / "metrics.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
    (cell / "summary.json").write_text(
        _json.dumps({"final_accuracy": 0.7, "best_accuracy": 0.7, "wall_seconds": 1.0})
    )
    table = summarise_grid(grid, out)
    assert table[0]["rounds_to_target"] == 2
    assert table[0]["virtual_hours_to_target"] == 1.5
    assert table[0]["virtual_hours_total"] == 2.0
    write_tables(table, out, 0.5)
    assert "virtual_hours_to_target" in (out / "results.csv").read_text()
    assert "virtual h to 50%" in (out / "results.md").read_text()
    from simulations.bench import Grid
    from simulations.bench_plots import plot_grid

    plot_grid(Grid(grid.cells, 0.5, "virtual-time"), out)
    assert (out / "accuracy.png").stat().st_size > 0


def test_the_time_grid_loads():
    from simulations.bench import load_grid

    grid = load_grid("simulations/experiments/time.toml")
    assert {c.variant for c in grid.cells} == {"sync", "deadline", "fedasync", "fedbuff"}
    assert len(grid.cells) == 8 and grid.plot_against == "virtual-time"


def test_paired_differences_against_a_baseline_are_per_seed(tmp_path):
    """d = last-5 mean(variant) - last-5 mean(baseline), seed by seed; mean and SE."""
    import json
    from types import SimpleNamespace

    from simulations.paired import paired_table, write_paired

    def cell(variant, seed, accs):
        c = SimpleNamespace(variant=variant, axes=(), seed=seed, label=f"{variant}__{seed}")
        d = tmp_path / "cells" / c.label
        d.mkdir(parents=True)
        rows = [{"round": i + 1, "accuracy": a} for i, a in enumerate(accs)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "summary.json").write_text("{}")
        return c

    cells = [
        cell("base", 0, [0.1] * 3 + [0.5] * 5),
        cell("base", 1, [0.6] * 5),
        cell("crash", 0, [0.9] * 3 + [0.4] * 5),
        cell("crash", 1, [0.7] * 5),
    ]
    (row,) = paired_table(cells, tmp_path, "base")
    assert row["per_seed"] == pytest.approx({"0": -0.1, "1": 0.1})
    assert row["mean_difference"] == pytest.approx(0.0, abs=1e-12)
    assert row["standard_error"] == pytest.approx(0.1)  # stdev([-0.1, 0.1]) / sqrt(2)
    assert "mean ± SE" in write_paired([row], tmp_path)
    assert (tmp_path / "results_paired.csv").is_file()


PLUGIN_GRID = """
[base]
dataset = "byo_pkg.data:load"
partition = "byo_pkg.split:split"
model = "byo_pkg.models:wide"
rounds = 1
num-clients = 4
clients-per-round = 2
lr = 0.5

[base.plugin]
width = 4

[[variant]]
strategy = "byo_pkg.strategies:MeanPlus"
[variant.plugin]
twist = 0.0

[[variant]]
name = "momentum"
strategy = "byo_pkg.strategies:ServerMomentum"
[variant.plugin]
beta = 0.5
width = 6

[bench]
target-accuracy = 0.5
"""


@pytest.fixture
def byo(tmp_path, monkeypatch):
    from byo_package import write_package

    user = write_package(tmp_path / "user")
    monkeypatch.syspath_prepend(str(user))
    return user


def test_plugin_cells_are_named_by_attribute_and_carry_their_settings(byo, tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(PLUGIN_GRID)
    grid = load_grid(path)
    assert [c.label for c in grid.cells] == ["MeanPlus", "momentum"]
    assert grid.cells[0].values["plugin.width"] == 4 and grid.cells[0].values["plugin.twist"] == 0
    assert grid.cells[1].values["plugin.width"] == 6 and grid.cells[1].values["plugin.beta"] == 0.5
    axis = PLUGIN_GRID.replace("[bench]", '[axes]\n"plugin.width" = [2, 3]\n[bench]')
    axis = axis.replace("width = 6\n", "")
    path.write_text(axis)
    labels = [c.label for c in load_grid(path).cells]
    assert labels[:2] == ["MeanPlus__plugin.width-2", "MeanPlus__plugin.width-3"]


def test_a_plugin_axis_is_named_by_attribute_and_labels_have_no_colon(byo, tmp_path):
    path = tmp_path / "g.toml"
    text = PLUGIN_GRID.replace(
        "[bench]", '[axes]\nmodel = ["byo_pkg.models:build", "byo_pkg.models:wide"]\n[bench]'
    )
    path.write_text(text.replace('name = "momentum"', 'name = "a:b c"'))
    labels = [c.label for c in load_grid(path).cells]
    assert labels == [
        "MeanPlus__model-build",
        "MeanPlus__model-wide",
        "a_bc__model-build",
        "a_bc__model-wide",
    ]


def test_cells_that_would_share_a_directory_are_refused(byo, tmp_path):
    path = tmp_path / "g.toml"
    text = PLUGIN_GRID.replace('name = "momentum"', 'name = "Mean_Plus"')
    path.write_text(text)
    load_grid(path)  # "MeanPlus" and "Mean_Plus": two directories
    path.write_text(
        text.replace(
            'strategy = "byo_pkg.strategies:MeanPlus"',
            'name = "Mean:Plus"\nstrategy = "byo_pkg.strategies:MeanPlus"',
        )
    )
    with pytest.raises(ConfigError) as info:
        load_grid(path)
    assert "two grid cells would share the directory 'Mean_Plus'" in str(info.value)


def test_preflight_checks_each_distinct_plugin_once(byo, tmp_path, monkeypatch):
    """A grid's preflight builds each plug-in strategy and model once per distinct
    [plugin] settings, not once per cell (nor only the first cell's)."""
    import learning.warm_start
    import strategies.registry
    from learning.config import ExperimentConfig
    from simulations.run_output import preflight

    models, built = [], []
    real = strategies.registry.build_strategy
    monkeypatch.setattr(
        learning.warm_start, "initial_weights", lambda *a, **k: models.append((a, k["settings"]))
    )
    monkeypatch.setattr(
        strategies.registry, "build_strategy", lambda c, n: built.append(c.plugin) or real(c, n)
    )
    path = tmp_path / "g.toml"
    path.write_text(PLUGIN_GRID.replace("[bench]", "[axes]\nseed = [0, 1, 2]\n[bench]"))
    grid = load_grid(path)
    seen: set[tuple] = set()
    for cell in grid.cells:
        preflight(ExperimentConfig.from_flat(cell.values), seen)
    assert len(grid.cells) == 6 and len(built) == 2 and len(models) == 2
    assert [dict(s) for _, s in models] == [
        {"width": 4, "twist": 0.0},
        {"width": 6, "beta": 0.5},
    ]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.tf
def test_a_bench_of_plugin_cells_runs_each_with_its_settings(byo, ray_address, tmp_path):
    """Two cells, one round each, on Ray: the user's model, data, split and strategies
    from PYTHONPATH, each cell's [plugin] settings reaching the server and the workers
    (a worker that built another width would send arrays of the wrong shape)."""
    grid = tmp_path / "g.toml"
    grid.write_text(PLUGIN_GRID)
    out = tmp_path / "bench"
    proc = run_cli("bench", str(grid), "--out", str(out), "--ray-address", ray_address, path=[byo])
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "results.md").read_text()
    assert "| MeanPlus |" in md and "| momentum |" in md
    for label, width in (("MeanPlus", 4), ("momentum", 6)):
        cell = out / "cells" / label
        rows = [json.loads(x) for x in (cell / "metrics.jsonl").read_text().splitlines()]
        assert [(r["replies"], r["failures"]) for r in rows] == [(2, 0)], label
        assert checkpoint_weights(cell)[0].shape == (64, width), label


def test_a_finished_cell_that_ran_another_config_is_refused(tmp_path):
    """Cells are skipped once finished; if the grid changed since, their numbers would
    sit in one table with the new cells' (a different experiment): refused in one line."""
    from learning.config import ExperimentConfig
    from server.run_dir import RunRecorder
    from simulations.bench import run_grid

    path = tmp_path / "g.toml"
    path.write_text(RUN_GRID)
    grid, out = load_grid(path), tmp_path / "bench"
    for c in grid.cells:
        d = out / "cells" / c.label
        d.mkdir(parents=True)
        RunRecorder(d).write_config(ExperimentConfig.from_flat(c.values))
        (d / "summary.json").write_text("{}")
    run_grid(grid, out, quiet=True)  # every cell finished, as the grid says: nothing runs
    path.write_text(RUN_GRID.replace("alpha = 0.3", "alpha = 0.4"))
    with pytest.raises(ConfigError) as info:
        run_grid(load_grid(path), out, quiet=True)
    msg = str(info.value)
    assert "ran alpha = 0.3 but the grid now gives 0.4" in msg and "\n" not in msg
