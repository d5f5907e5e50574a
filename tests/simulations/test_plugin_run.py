"""One real run (CLI, Flower's runtime, Ray workers) with a user's model, dataset and
partition from a package outside the repo, reached by the workers through PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from byo_package import write_package
from helpers import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]


def test_a_run_with_user_plugins_exports_its_accuracy(ray_address, tmp_path):
    user = write_package(tmp_path / "user")
    out = tmp_path / "run"
    sets = [
        'model="byo_pkg.models:build"',
        'dataset="byo_pkg.data:load"',
        'partition="byo_pkg.split:split"',
        "rounds=2",
        "num-clients=4",
        "clients-per-round=2",
        "lr=0.5",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "simulations.cli", "run", "--quiet", "--out", str(out)]
        + [a for s in sets for a in ("--set", s)]
        + ["--ray-address", ray_address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(user)])},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["replies"] for r in rows] == [2, 2] and all(r["failures"] == 0 for r in rows)
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
