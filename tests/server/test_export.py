"""The trained model out of a run, and warm start from it: the real loop and central
evaluation on a fake grid (no Ray), with a user's model, dataset and partition."""

from __future__ import annotations

import json

import numpy as np
import pytest
from byo_package import write_package
from fake_grid import RecordingGrid

from learning.config import ExperimentConfig
from learning.errors import ConfigError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One 3-round run with the user's plug-ins; (config, run directory, summary)."""
    import sys

    from server.app import run_experiment

    root = write_package(tmp_path_factory.mktemp("user"))
    sys.path.insert(0, str(root))
    cfg = ExperimentConfig.from_flat(
        {
            "model": "byo_pkg.models:build",
            "dataset": "byo_pkg.data:load",
            "partition": "byo_pkg.split:split",
            "rounds": 3,
            "num-clients": 4,
            "clients-per-round": 2,
        }
    )
    out = tmp_path_factory.mktemp("run")
    summary = run_experiment(RecordingGrid(2), cfg, out, 2)
    yield cfg, out, summary
    sys.path.remove(str(root))


def _accuracy(path, ds) -> float:
    import keras

    model = keras.models.load_model(path)  # Keras alone: raw uint8 images in
    probs = model.predict(ds.x_test, verbose=0)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    return float((probs.argmax(axis=1) == ds.y_test).mean())


def test_exported_models_give_the_recorded_accuracies(run):
    from learning.federated_data import dataset_for

    cfg, out, summary = run
    ds = dataset_for(cfg)
    n = len(ds.y_test)
    assert abs(_accuracy(out / "model.keras", ds) - summary["final_accuracy"]) <= 1 / n + 1e-9
    assert abs(_accuracy(out / "best.keras", ds) - summary["best_accuracy"]) <= 1 / n + 1e-9
    assert json.loads((out / "summary.json").read_text())["final_accuracy"] is not None


def test_warm_start_from_model_keras_or_run_dir_gives_the_final_weights(run):
    from learning.warm_start import initial_weights
    from server.checkpoint import load_checkpoint

    cfg, out, _ = run
    final = load_checkpoint(out).weights
    for source in (out / "model.keras", out):
        warm = ExperimentConfig.from_flat({**cfg.to_flat(), "init-weights": str(source)})
        w = initial_weights(warm.train.model, (8, 8, 1), 3, 99, warm.train.init_weights)
        assert all(np.array_equal(a, b) for a, b in zip(w, final, strict=True))
    # a .keras model's own weights, overridden by init-weights
    own = initial_weights(str(out / "best.keras"), (8, 8, 1), 3, 0)
    assert not all(np.array_equal(a, b) for a, b in zip(own, final, strict=True))


def test_warm_start_from_another_model_is_one_line(run):
    from learning.warm_start import initial_weights

    _, out, _ = run
    with pytest.raises(ConfigError, match="warm-start from weights of the same model") as info:
        initial_weights("mlp", (8, 8, 1), 3, 0, str(out))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no such file"):
        ExperimentConfig.from_flat({"init-weights": str(out / "missing.npz")})


def test_perennial_export_writes_a_stored_round(run, capsys):
    from simulations.cli import main

    _, out, summary = run
    assert main(["export", str(out), "--out", str(out / "last.keras")]) == 0
    assert (out / "last.keras").is_file()
    assert main(["export", str(out), "--round", str(summary["best_round"])]) == 0
    assert (out / f"model-round{summary['best_round']}.keras").is_file()
    assert main(["export", str(out), "--round", "77"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "round 77" in err[0] and "is not stored" in err[0]


def test_best_weights_survive_a_restart_and_ties_keep_the_earlier_round(tmp_path):
    from server.export import BestKeeper

    accs = iter([0.5, 0.7, 0.7, 0.6])
    keeper = BestKeeper(lambda w: (1.0, next(accs)), tmp_path)
    for rnd, acc in ((1, 0.5), (2, 0.7), (3, 0.7)):
        keeper([np.full(2, rnd, np.float32)])
        keeper.on_row({"round": rnd, "accuracy": acc})
    again = BestKeeper(lambda w: (1.0, next(accs)), tmp_path)  # a resumed run
    assert again.best[0] == 2 and again.best[1] == 0.7
    np.testing.assert_array_equal(again.best[2][0], np.full(2, 2, np.float32))
    again([np.zeros(2, np.float32)])
    again.on_row({"round": 4, "accuracy": 0.6})
    assert again.best[0] == 2
