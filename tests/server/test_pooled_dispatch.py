"""Multi-client dispatch with partial aggregation ("pooling", issue 16) on the fake grid:
same global model as one message per client (to float tolerance), independent of the
worker count, failures per client, and what a pooled message and reply look like."""

from __future__ import annotations

import numpy as np
import pytest
from fake_grid import FakeClients
from loop_scenarios import SCENARIOS, evaluate

from learning.config import ExperimentConfig
from server.loop import run_rounds
from server.pipeline.dispatch import chunk_stamp
from server.pipeline.setup import pooling_for

BASE = {"model": "small-cnn", "num-clients": 40, "clients-per-round": 10, "rounds": 3, "seed": 3}
UNTIMED = ("seconds", "rss_mb", "updates_per_node", "bytes_")


def _run(extra, slots=4, grid=None, cpm=1, tmp=None):
    flat = {**BASE, **extra, "clients-per-message": cpm}
    if tmp is not None:
        flat["out-dir"] = str(tmp / f"cpm{cpm}-slots{slots}")
    cfg = ExperimentConfig.from_flat(flat)
    fake = FakeClients(slots, **(grid or {}))
    return run_rounds(fake, cfg, evaluate, slots), fake


def _close(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


CASES = {
    "fedavg": ({}, {}),
    "fedadam": ({"strategy": "fedadam", "server-lr": 0.01}, {}),
    "fedavgm": ({"strategy": "fedavgm"}, {}),
    "fednova": ({"strategy": "fednova"}, {}),
    "feddyn": ({"strategy": "feddyn"}, {}),
    "scaffold": ({"strategy": "scaffold"}, {"scaffold": True}),
    "central-dp": (
        {**SCENARIOS["central-dp"]["cfg"], "num-clients": 100, "clients-per-round": 15},
        {},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pooled_dispatch_gives_the_per_client_global_model(name, tmp_path):
    extra, grid = CASES[name]
    one, fake_one = _run(extra, grid=grid)
    pooled, fake_pooled = _run(extra, grid=grid, cpm=4)
    _close(one.weights, pooled.weights)
    assert len(fake_pooled.seen) < len(fake_one.seen)  # fewer messages crossed
    for a, b in zip(one.rows, pooled.rows, strict=True):
        assert a["clients"] == b["clients"] and a["replies"] == b["replies"]
        assert a["failures"] == b["failures"]
        for key in ("train_loss", "train_accuracy", "client_update_norm_mean", "examples"):
            if a.get(key) is not None:
                assert b[key] == pytest.approx(a[key], rel=1e-5), key
        _same_health(a, b, central_dp=name == "central-dp")


def _same_health(one: dict, pooled: dict, central_dp: bool = False) -> None:
    """The pooled round's health equals the per-client round's where it is exact (norms,
    the mean cosine: from the workers' one-pass sums) and the minimum cosine is None.
    Under central DP (rows kept by operator-diagnostics) no health sums are sent."""
    for key in ("client_update_norm_mean", "client_update_norm_std", "client_update_norm_max"):
        assert pooled[key] == pytest.approx(one[key], rel=1e-5), key
    cosine = pooled["client_cosine_to_mean_mean"]
    if central_dp:
        assert cosine is None
    else:
        assert cosine == pytest.approx(one["client_cosine_to_mean_mean"], rel=1e-5, abs=1e-6)
    assert one["client_cosine_to_mean_min"] is not None
    assert pooled["client_cosine_to_mean_min"] is None


@pytest.mark.parametrize("name", ["fedavg", "scaffold", "central-dp"])
def test_the_worker_count_does_not_change_a_pooled_run(name):
    extra, grid = CASES[name]
    a, _ = _run(extra, slots=2, grid=grid, cpm=3)
    b, _ = _run(extra, slots=7, grid=grid, cpm=3)
    assert all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights, strict=True))
    for ra, rb in zip(a.rows, b.rows, strict=True):
        keep = lambda r: {k: v for k, v in r.items() if not any(t in k for t in UNTIMED)}  # noqa: E731
        assert keep(ra) == keep(rb)


def test_a_failing_client_costs_only_itself_and_is_topped_up():
    faults = {
        "crash": {(p, 0) for p in range(0, 40, 3)},
        "nan": {(p, 0) for p in range(1, 40, 5)},
        "zero": {(p, 0) for p in (13, 17)},
    }
    extra = {"min-clients": 10, "max-retries": 2}
    one, _ = _run(extra, grid=faults)
    pooled, _ = _run(extra, grid=faults, cpm=4)
    for a, b in zip(one.rows, pooled.rows, strict=True):
        for key in ("clients", "replies", "failures", "rejected_updates", "retries", "examples"):
            assert a[key] == b[key], key
        _same_health(a, b)  # zero-example clients count, as per client
    assert sum(r["failures"] for r in pooled.rows) > 0
    assert sum(r["rejected_updates"] for r in pooled.rows) > 0
    _close(one.weights, pooled.weights)


def test_chunks_are_fixed_size_in_partition_id_order_whatever_the_slots():
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

    def slots(n):
        return [
            Message(
                RecordDict({"arrays": ArrayRecord([np.zeros(2)]), "config": ConfigRecord({})}),
                dst_node_id=i + 1,
                message_type=MessageType.TRAIN,
            )
            for i in range(n)
        ]

    pids = [9, 2, 7, 4, 1, 30, 12]
    for n in (1, 2, 5):
        out = chunk_stamp(slots(n), pids, 3, size=3)
        named = [list(m.content["config"]["partition-ids"]) for m in out]
        assert named == [[1, 2, 4], [7, 9, 12], [30]]
        assert [m.content["config"]["chunk"] for m in out] == [0, 1, 2]
        assert all("partition-id" not in m.content["config"] for m in out)


def test_strategies_needing_every_update_keep_one_message_per_client():
    for extra in (
        {"strategy": "krum"},
        {"strategy": "fedmedian"},
        {"strategy": "qfedavg"},
        {"attack": "alie", "malicious-fraction": 0.2, "strategy": "fedtrimmedavg"},
        {"federation-mode": "deployment"},
    ):
        cfg = ExperimentConfig.from_flat({**BASE, **extra, "clients-per-message": 4})
        assert pooling_for(cfg) is None, extra
    assert pooling_for(ExperimentConfig.from_flat({**BASE, "clients-per-message": 4})) == "mean"
    assert pooling_for(ExperimentConfig.from_flat(BASE)) is None
