"""The virtual clock in the synchronous schedulers, on the fake grid (milliseconds)."""

from __future__ import annotations

import math

import numpy as np
from fake_grid import FakeClients

from learning.config import ExperimentConfig
from learning.devices import DeviceModel
from server.loop import run_rounds

BASE = {"model": "small-cnn", "num-clients": 20, "clients-per-round": 5, "rounds": 3, "seed": 3}


def _evaluate(weights):
    return float(np.mean(weights[0])), 0.0


def _run(tmp_path, slots=4, grid=None, **keys):
    cfg = ExperimentConfig.from_flat({**BASE, **keys})
    tmp_path.mkdir(parents=True, exist_ok=True)
    grid = grid or FakeClients(slots)
    return cfg, grid, run_rounds(grid, cfg, _evaluate, slots, run_dir=tmp_path)


def _model_bytes(cfg):
    from learning.warm_start import initial_weights

    return sum(w.nbytes for w in initial_weights("small-cnn", (28, 28, 1), 10, cfg.federation.seed))


def test_sync_round_lasts_as_long_as_its_slowest_client(tmp_path):
    cfg, grid, result = _run(tmp_path)
    dev = DeviceModel(cfg.devices, 3, 20)(0)
    size = _model_bytes(cfg)
    total = 0.0
    for r, row in enumerate(result.rows, start=1):
        pids = [
            int(m.content["config"]["partition-id"])
            for m in grid.seen
            if int(m.content["config"]["server-round"]) == r
        ]
        want = max(dev.duration(10 + p, 1, size, size) for p in pids)  # FakeClients: 10+pid
        assert row["virtual_round_seconds"] == round(want, 6)
        total += want
        assert row["virtual_seconds"] == round(total, 6)
        assert row["late_updates"] == 0 and row["offline_dropouts"] == 0
        busy = sum(dev.duration(10 + p, 1, size, size) for p in pids)
        assert row["utilisation"] == round(busy / (len(pids) * want), 6)


def test_deadline_discards_late_updates_and_counts_them(tmp_path):
    keys = {
        "device-profile": "lognormal",
        "speed-sigma": 1.0,
        "slow-fraction": 0.3,
        "slow-factor": 10.0,
        "round-policy": "deadline",
        "round-deadline": 0.2,
    }
    cfg, grid, result = _run(tmp_path, **keys)
    late = sum(r["late_updates"] for r in result.rows)
    assert late > 0
    for row in result.rows:
        assert row["replies"] + row["late_updates"] == row["clients"]
        assert row["virtual_round_seconds"] <= 0.2


def test_over_selection_keeps_the_first_clients_per_round(tmp_path):
    keys = {
        "device-profile": "lognormal",
        "round-policy": "deadline",
        "round-deadline": 100.0,
        "over-selection": 1.3,
    }
    _, _, result = _run(tmp_path, **keys)
    for row in result.rows:
        assert row["clients"] == math.ceil(5 * 1.3)
        assert row["replies"] == 5 and row["late_updates"] == 2


def test_only_online_clients_are_sampled(tmp_path):
    keys = {"availability": "diurnal", "diurnal-period": 1.0, "duty-cycle": 0.5}
    cfg, grid, result = _run(tmp_path, **keys)
    from server.pipeline.clock import Clock

    clock = Clock(cfg, 20)
    for row in result.rows:
        pids = [
            int(m.content["config"]["partition-id"])
            for m in grid.seen
            if int(m.content["config"]["server-round"]) == row["round"]
        ]
        assert all(clock.availability.online(p, clock.now) for p in pids)
        clock.now = row["virtual_seconds"]


def test_central_dp_draws_over_everyone_and_drops_the_offline_after(tmp_path):
    from server.pipeline.setup import build_stages

    keys = {
        "dp": "central",
        "num-clients": 200,
        "clients-per-round": 20,
        "delta": 1e-3,
        "privacy-seed": 5,
        "clipping-norm": 10.0,
        "availability": "diurnal",
        "diurnal-period": 1000.0,
        "duty-cycle": 0.5,
    }
    cfg, grid, result = _run(tmp_path / "b", **keys)
    stages = build_stages(FakeClients(4), cfg, 4, tmp_path / "b")
    drawn = stages.sampling.draw(1)  # the Poisson draw over all 200 clients
    online = [p for p in drawn if stages.clock.availability.online(p, 0.0)]
    sent = sorted(
        int(m.content["config"]["partition-id"])
        for m in grid.seen
        if int(m.content["config"]["server-round"]) == 1
    )
    assert sent == online and len(online) < len(drawn)
    row = result.rows[0]
    # the clock names the slowest drawn client (its device is public): withheld
    assert "virtual_seconds" not in row and "late_updates" not in row
    assert "unavailable" not in row  # who was drawn is not covered by epsilon


def test_straggler_costs_virtual_seconds_not_wall_time(tmp_path):
    import time

    t0 = time.perf_counter()
    _, _, slow = _run(
        tmp_path / "s", **{"fault-straggler-prob": 1.0, "fault-straggler-delay": 30.0}
    )
    assert time.perf_counter() - t0 < 20
    _, _, fast = _run(tmp_path / "f")
    for a, b in zip(slow.rows, fast.rows, strict=True):
        assert a["virtual_round_seconds"] == round(b["virtual_round_seconds"] + 30.0, 6)
