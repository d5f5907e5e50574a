"""A real, tiny continual run: CLI -> Flower simulation on Ray -> per-task metrics."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.tf]

TINY = [
    "--set",
    'scenario="class-incremental"',
    "--set",
    "num-tasks=2",
    "--set",
    "rounds=4",
    "--set",
    "num-clients=4",
    "--set",
    "clients-per-round=3",
    "--set",
    "arrival-spread=1",
    "--set",
    'cl-method="replay"',
    "--set",
    "buffer-size=40",
    "--set",
    "train-subset=1200",
    "--set",
    "test-subset=400",
    "--set",
    'model="mlp"',
    "--set",
    'partition="iid"',
    "--quiet",
]


def test_continual_run_records_the_accuracy_matrix_and_is_reproducible(ray_address, tmp_path):
    summaries, rows = [], []
    for name in ("A", "B"):
        out = tmp_path / name
        proc = run_cli("run", *TINY, "--out", str(out), "--ray-address", ray_address)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summaries.append(json.loads((out / "summary.json").read_text()))
        rows.append([json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()])
    a, out = summaries[0], tmp_path / "A"
    for name in ("task_accuracy.png", "accuracy_matrix.png", "summary.json"):
        assert (out / name).exists(), name
    assert a["scenario"] == "class-incremental" and a["cl_method"] == "replay"
    m = a["accuracy_matrix"]
    assert len(m) == 2 and m[0][1] is None and all(0 <= v <= 1 for v in (m[0][0], *m[1]))
    assert a["task_end_rounds"] == [2, 4]
    assert a["average_accuracy"] == pytest.approx((m[1][0] + m[1][1]) / 2, abs=1e-5)
    assert a["forgetting"] == pytest.approx(m[0][0] - m[1][0], abs=1e-5)
    assert a["bwt"] == pytest.approx(m[1][0] - m[0][0], abs=1e-5)
    first = rows[0]
    assert [r["task"] for r in first] == [0, 0, 1, 1]
    assert list(first[0]["task_accuracy"]) == ["0"] and list(first[3]["task_accuracy"]) == [
        "0",
        "1",
    ]
    assert (out / "continual-state").is_dir()  # the replay buffers stayed on the clients' side
    # same config and seed -> same metrics
    keys = ("average_accuracy", "forgetting", "bwt", "accuracy_matrix")
    assert {k: summaries[0][k] for k in keys} == {k: summaries[1][k] for k in keys}
    assert [r["task_accuracy"] for r in rows[0]] == [r["task_accuracy"] for r in rows[1]]
