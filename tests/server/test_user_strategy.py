"""A user's strategy by import path, run by perennial's loop on a fake grid (no Ray):
its own server step decides the model; bad ones are one line before round 1."""

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
    from learning.training import initial_weights
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
    ],
)
def test_a_bad_user_strategy_is_one_line_in_preflight(pkg, attr, fragment):
    from simulations.run_output import preflight

    with pytest.raises(ConfigError) as info:
        preflight(ExperimentConfig.from_flat({**BASE, "strategy": f"byo_pkg.strategies:{attr}"}))
    text = str(info.value)
    assert "\n" not in text and fragment in text and text.startswith("strategy "), text
