"""The Python API: a script whose plug-ins are defined in `__main__` (as in a notebook, so
they can only reach the Ray workers by value) runs a simulation and a bench; plus the
config forms and refusals it accepts, without Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from byo_package import SOURCE
from helpers import ROOT

import strategies  # noqa: F401  (registers the strategy names, as every app does)
from learning.config import ExperimentConfig, build_config
from learning.errors import ConfigError
from learning.plugin_objects import TRUST_ENV, display, pack

SCRIPT = """
    import json
    import sys
    from pathlib import Path

    import numpy as np
    from flwr.app import ArrayRecord, MetricRecord
    from flwr.serverapp.strategy import FedAvg

    from simulations import api

    OUT, RAY = Path(sys.argv[1]), sys.argv[2]
    MARKS = OUT / "marks"


    def build(input_shape, num_classes):
        import keras

        return keras.Sequential([
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes, activation="softmax", name="notebook_head"),
        ])


    class MeanPlus(FedAvg):
        def aggregate_train(self, server_round, replies):
            got = [m.content["arrays"].to_numpy_ndarrays() for m in replies if m.has_content()]
            MARKS.mkdir(exist_ok=True)
            step = len(list(MARKS.iterdir()))
            (MARKS / f"{step}-round{server_round}-{len(got)}").touch()
            mean = [np.mean(np.stack(layer), axis=0) + np.float32(0.001) for layer in zip(*got)]
            return ArrayRecord([a.astype(np.float32) for a in mean]), MetricRecord({})


    small = {"federation": {"num-clients": 4, "clients-per-round": 2}, "lr": 0.5}
    quiet = {"ray_address": RAY, "quiet": True, "announce": None}
    run = api.run({**small, "rounds": 2}, out=OUT / "run", **quiet,
                  model=build, dataset=load, partition=split, strategy=MeanPlus)
    again = api.run(resume=OUT / "run", **quiet)
    grid = {
        "base": {**small, "rounds": 1, "model": build, "dataset": load},
        "variant": [{"strategy": "fedavg"}, {"strategy": MeanPlus}],
    }
    table = api.bench(grid, out=OUT / "bench", **quiet)
    (OUT / "result.json").write_text(json.dumps({
        "rows": len(run.rows),
        "accuracies": run.accuracies,
        "summary": run.summary,
        "resumed_same": again.summary["final_accuracy"] == run.summary["final_accuracy"],
        "variants": sorted(r["variant"] for r in table.table),
        "results_md": table.results_md,
    }))
"""


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.tf
def test_the_api_runs_notebook_plugins_and_a_bench(ray_address, tmp_path):
    script = tmp_path / "notebook.py"
    # the byo package's loader and splitter, pasted into __main__ as a notebook cell would be
    cells = [textwrap.dedent(SCRIPT)] + [
        textwrap.dedent(SOURCE[f]) for f in ("data.py", "split.py")
    ]
    head, _, rest = cells[0].partition("\nsmall = ")
    script.write_text("\n".join([head, *cells[1:], "small = " + rest]))
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), ray_address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "result.json").read_text())
    assert got["rows"] == 2 and got["accuracies"][-1] == got["summary"]["final_accuracy"]
    assert got["summary"]["strategy"] == "<MeanPlus object>" and got["resumed_same"]
    # the notebook's strategy made every server step of the run, then the bench cell's
    marks = sorted(p.name for p in (tmp_path / "marks").iterdir())
    assert marks == ["0-round1-2", "1-round2-2", "2-round1-2"]
    import keras  # the notebook's model builder made the exported model

    def names(layer):  # the export wraps the user's model in its preprocessing
        return [layer.name] + [n for inner in getattr(layer, "layers", []) for n in names(inner)]

    assert "notebook_head" in names(keras.models.load_model(tmp_path / "run" / "model.keras"))
    assert got["variants"] == ["MeanPlus", "fedavg"] and "MeanPlus" in got["results_md"]
    assert (tmp_path / "bench" / "cells" / "MeanPlus" / "summary.json").is_file()


def test_a_dict_config_takes_flat_dotted_and_section_keys(monkeypatch):
    from simulations.api import experiment_values

    values = experiment_values(
        {"federation": {"rounds": 3}, "train.lr": 0.2, "seed": 4}, {"clients-per-round": 5}
    )
    cfg = ExperimentConfig.from_flat(values)
    assert (cfg.federation.rounds, cfg.train.lr, cfg.federation.seed) == (3, 0.2, 4)
    assert cfg.federation.clients_per_round == 5
    with pytest.raises(ConfigError, match="did you mean"):
        experiment_values({"rouns": 3})
    with pytest.raises(ConfigError, match="only .* take Python objects"):
        experiment_values({"rounds": [3]})


def _build(input_shape, num_classes):
    import keras

    return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten()])


class _Evil:
    """Unpickling it would run code: a config file's payload must never be loaded."""

    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return (open, (str(self.mark), "w"))


def _fresh_process(monkeypatch):
    from learning import plugin_objects

    monkeypatch.setattr(plugin_objects, "_TRUSTED", set())
    monkeypatch.setattr(plugin_objects, "_LOADED", {})
    monkeypatch.delenv(TRUST_ENV, raising=False)


def test_an_object_plugin_loads_only_where_it_is_trusted(tmp_path, monkeypatch):
    import base64
    import zlib

    import cloudpickle

    from learning.config_files import to_toml
    from learning.plugin_objects import trust_payloads

    value = pack("model", _build)  # trusted in the process that packed it
    assert display(value) == "<_build object>"
    cfg = ExperimentConfig.from_flat({"model": value})
    (tmp_path / "config.toml").write_text(to_toml(cfg.to_flat()))
    _fresh_process(monkeypatch)  # --resume in a new process, or a SuperNode
    with pytest.raises(ConfigError) as info:
        build_config(tmp_path / "config.toml")
    assert "--trust-pickled-plugins" in str(info.value) and "\n" not in str(info.value)
    assert len(str(info.value)) < 400  # the payload is never printed
    trust_payloads([value])  # what --trust-pickled-plugins does with the run's own config
    assert build_config(tmp_path / "config.toml").train.model == value
    # a payload this process never packed (a shared config file) runs nothing
    mark = tmp_path / "pwned"
    blob = base64.b64encode(zlib.compress(cloudpickle.dumps(_Evil(mark)))).decode()
    with pytest.raises(ConfigError, match="runs code when loaded"):
        ExperimentConfig.from_flat({"model": f"pickle:build:{blob}"})
    assert not mark.exists()
    monkeypatch.setenv(TRUST_ENV, "1")  # a simulation's Ray worker (runtime env only)
    assert ExperimentConfig.from_flat({"model": value}).train.model == value


def test_supernodes_never_inherit_the_workers_trust(tmp_path, monkeypatch):
    from simulations.deployment.processes import process_env

    monkeypatch.setenv(TRUST_ENV, "1")
    assert TRUST_ENV not in process_env(tmp_path)


def test_api_mistakes_are_one_line(tmp_path):
    import threading

    import numpy as np

    from simulations.api import bench, experiment_values

    lock = threading.Lock()

    def holds_a_lock(input_shape, num_classes):
        return lock

    def holds_data():
        return np.zeros((2000, 28, 28)), lock

    cases = [
        (lambda: experiment_values({"model": holds_a_lock}), "cannot be sent to the workers"),
        (lambda: experiment_values({}, {"dataset": holds_data}), "cannot be sent"),
        (lambda: bench({"variant": [{"strategy": "fedavg"}]}), "needs out="),
        (lambda: bench({"base": 3}, out=tmp_path / "b"), "base must be a table"),
        (lambda: bench([1, 2]), "grid must be a dict"),
        (lambda: bench({"variant": [{"name": ".."}]}, out=tmp_path / "b"), "hidden or name"),
    ]
    for call, fragment in cases:
        with pytest.raises(ConfigError) as info:
            call()
        assert fragment in str(info.value) and "\n" not in str(info.value)
    # A loader that closes over its arrays: random values do not compress, so 2.4 MB
    # stays over pack's 1 MiB limit and zlib takes 0.1 s (an arange of 24 MB took 20 s).
    big = np.random.default_rng(0).random(300_000)

    def closes_over_data():
        return big

    with pytest.raises(ConfigError, match="read the data from a file"):
        experiment_values({"dataset": closes_over_data})
    assert experiment_values({"data-path": tmp_path, "rounds": np.int64(3)}) == {
        "data-path": str(tmp_path),
        "rounds": 3,
    }


def test_a_dict_grid_crosses_axes_and_packs_objects_in_them():
    from simulations.api import _grid_by_value
    from simulations.bench import load_grid

    grid = load_grid(
        _grid_by_value(
            {
                "base": {"rounds": 2, "federation": {"num-clients": 10}},
                "axes": {"seed": [0, 1], "model": ["mlp", _build]},
                "variant": [{"strategy": "fedavg"}, {"name": "prox", "strategy": "fedprox"}],
            }
        )
    )
    assert len(grid.cells) == 2 * 2 * 2
    assert {c.values["model"] == "mlp" for c in grid.cells} == {True, False}
    assert any("_build" in c.label for c in grid.cells)
