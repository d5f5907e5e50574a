"""A user's strategy by import path, run by perennial's loop on a fake grid (no Ray):
its own server step decides the model, it gets the [plugin] settings it asks for, its
array state survives a resume; bad ones are one line before round 1."""

from __future__ import annotations

import numpy as np
import pytest
from byo_package import write_package
from fake_grid import DELTA, RecordingGrid

import strategies  # noqa: F401  (registers the strategy names, as every app does)
from learning.config import ExperimentConfig
from learning.errors import ConfigError

pytestmark = pytest.mark.tf

BASE = {
    "model": "byo_pkg.models:build",
    "dataset": "byo_pkg.data:load",
    "rounds": 2,
    "num-clients": 4,
    "clients-per-round": 2,
}


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(write_package(tmp_path / "user")))


@pytest.mark.parametrize("name", ["byo_pkg.strategies:MeanPlus", "byo_pkg.strategies:factory"])
def test_the_user_strategy_makes_every_server_step(pkg, tmp_path, name):
    from learning.warm_start import initial_weights
    from server.app import run_experiment
    from server.checkpoint import load_checkpoint

    cfg = ExperimentConfig.from_flat({**BASE, "strategy": name})
    (tmp_path / "run").mkdir()
    summary = run_experiment(RecordingGrid(2), cfg, tmp_path / "run", 2)
    assert summary["rounds_completed"] == 2 and summary["strategy"] == name
    start = initial_weights(cfg.train.model, (8, 8, 1), 3, cfg.federation.seed)
    final = load_checkpoint(tmp_path / "run").weights
    for a, b in zip(start, final, strict=True):  # each step: mean(x + DELTA) + 0.001
        np.testing.assert_allclose(b, a + 2 * (DELTA + 0.001), atol=1e-5)


@pytest.mark.parametrize(
    ("attr", "fragment"),
    [
        ("NotAStrategy", "is not a Strategy subclass"),
        ("NeedsMore", "NeedsMore(**FedAvg arguments) failed"),
        ("returns_none", "returned NoneType, not a Strategy"),
        ("missing", "has no attribute 'missing'"),
        ("NeedsSetting", "NeedsSetting(...) raised KeyError: 'width'"),  # no [plugin] width
    ],
)
def test_a_bad_user_strategy_is_one_line_in_preflight(pkg, attr, fragment):
    from simulations.run_output import preflight

    with pytest.raises(ConfigError) as info:
        preflight(ExperimentConfig.from_flat({**BASE, "strategy": f"byo_pkg.strategies:{attr}"}))
    text = str(info.value)
    assert "\n" not in text and fragment in text and text.startswith("strategy "), text


@pytest.mark.parametrize("name", ["byo_pkg.strategies:MeanPlus", "byo_pkg.strategies:tuned"])
def test_a_strategy_class_or_factory_asking_for_settings_gets_the_table(pkg, tmp_path, name):
    from learning.warm_start import initial_weights
    from server.app import run_experiment
    from server.checkpoint import load_checkpoint

    cfg = ExperimentConfig.from_flat({**BASE, "strategy": name, "plugin.twist": 0.25})
    (tmp_path / "run").mkdir()
    run_experiment(RecordingGrid(2), cfg, tmp_path / "run", 2)
    start = initial_weights(cfg.train.model, (8, 8, 1), 3, cfg.federation.seed)
    for a, b in zip(start, load_checkpoint(tmp_path / "run").weights, strict=True):
        np.testing.assert_allclose(b, a + 2 * (DELTA + 0.25), atol=1e-5)


class Killed(Exception):
    pass


def _run(cfg, run_dir, resume=False, stop_after=None):
    from server.app import run_experiment
    from server.checkpoint import load_checkpoint

    def on_round(row):
        if row["round"] == stop_after:
            raise Killed  # after round `stop_after` is checkpointed, as a kill would land

    if not resume:
        run_dir.mkdir()
    try:
        run_experiment(RecordingGrid(2), cfg, run_dir, 2, on_round=on_round, resume=resume)
    except Killed:
        pass
    return load_checkpoint(run_dir)


def test_a_user_strategys_state_is_checkpointed_and_restored(pkg, tmp_path, monkeypatch):
    """ServerMomentum keeps its velocity as arrays (named by STATE): the checkpoint holds
    it and a resumed run ends on the uninterrupted run's weights, bit for bit; a resume
    that dropped it would not (the check below proves the comparison would notice)."""
    flat = {**BASE, "rounds": 4, "strategy": "byo_pkg.strategies:ServerMomentum"}
    cfg = ExperimentConfig.from_flat({**flat, "plugin.beta": 0.5})
    full = _run(cfg, tmp_path / "full")
    half = _run(cfg, tmp_path / "half", stop_after=2)
    assert half.round == 2 and any(np.any(v != 0) for v in half.state["_velocity"])
    resumed = _run(cfg, tmp_path / "half", resume=True)
    assert resumed.round == 4
    for a, b in zip(resumed.weights, full.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    _run(cfg, tmp_path / "dropped", stop_after=2)
    import server.loop

    monkeypatch.setattr(server.loop, "restore_strategy", lambda strategy, state: None)
    dropped = _run(cfg, tmp_path / "dropped", resume=True)
    assert any(not np.array_equal(a, b) for a, b in zip(dropped.weights, full.weights, strict=True))
