"""FedAsync and FedBuff on the virtual clock, on the fake grid (no Ray, no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_grid import FakeClients, StreamingClients
from loop_scenarios import UNTIMED, digest

from learning.config import ExperimentConfig
from server.checkpoint import load_checkpoint
from server.loop import run_rounds
from server.run_dir import RunRecorder

HETERO = {
    "model": "small-cnn",
    "num-clients": 30,
    "clients-per-round": 5,
    "rounds": 6,
    "seed": 2,
    "device-profile": "lognormal",
    "speed-sigma": 0.8,
    "slow-fraction": 0.2,
    "concurrency": 6,
}


def _evaluate(weights):
    return float(np.mean(weights[0])), float(np.mean(weights[-1]))


def _cfg(name, **keys):
    extra = {"fedbuff-k": 3} if name == "fedbuff" else {}
    return ExperimentConfig.from_flat({**HETERO, "strategy": name, **extra, **keys})


class Reversed(FakeClients):
    """Answers in reverse order: wall-clock arrival order must not matter."""

    def send_and_receive(self, messages, timeout=None):
        return list(reversed(super().send_and_receive(messages, timeout)))


def _clean(rows):
    return [json.dumps({k: v for k, v in r.items() if k not in UNTIMED}) for r in rows]


def _run(cfg, tmp, grid=None, **kw):
    tmp.mkdir(parents=True, exist_ok=True)
    return run_rounds(grid or FakeClients(4), cfg, _evaluate, 4, run_dir=tmp, **kw)


@pytest.mark.parametrize("name", ["fedasync", "fedbuff"])
def test_same_seed_same_metrics_whatever_the_arrival_order(name, tmp_path):
    cfg = _cfg(name)
    a = _run(cfg, tmp_path / "a")
    b = _run(cfg, tmp_path / "b", grid=Reversed(4))
    assert len(a.rows) == cfg.federation.rounds
    assert _clean(a.rows) == _clean(b.rows)
    assert digest(a.weights) == digest(b.weights)
    times = [r["virtual_seconds"] for r in a.rows]
    assert times == sorted(times) and times[0] > 0


def test_fedbuff_steps_every_k_updates_with_staleness(tmp_path):
    rows = _run(_cfg("fedbuff"), tmp_path).rows
    assert all(r["replies"] == 3 for r in rows)
    assert max(r["staleness_max"] for r in rows) > 0
    assert all(0 < r["utilisation"] <= 1 for r in rows)


def test_fedasync_applies_one_update_per_step(tmp_path):
    rows = _run(_cfg("fedasync"), tmp_path).rows
    assert all(r["replies"] == 1 for r in rows)
    assert max(r["staleness_max"] for r in rows) > 0


def test_fedasync_first_step_is_the_hand_mix(tmp_path):
    """The first finished client (lowest virtual finish time) is mixed with alpha * s(0)."""
    cfg = _cfg("fedasync", rounds=1, **{"fedasync-alpha": 0.5})
    grid = FakeClients(4)
    res = _run(cfg, tmp_path, grid=grid)
    from server.pipeline.setup import build_stages

    stages = build_stages(FakeClients(4), cfg, 4, None)
    sent = {int(m.content["config"]["partition-id"]): m for m in grid.seen}
    replies = {
        int(r.content["metrics"]["partition-id"]): r
        for r in FakeClients(4).send_and_receive(list(sent.values()))
    }
    size = sum(w.nbytes for w in stages.weights)
    fin = {p: stages.clock.seconds(p, 10 + p, size, size, 1) for p in sent}
    winner = min(sent, key=lambda p: (fin[p], p))
    y = replies[winner].content["arrays"].to_numpy_ndarrays()
    want = [
        (0.5 * x.astype(np.float64) + 0.5 * yi).astype(x.dtype)
        for x, yi in zip(stages.weights, y, strict=True)
    ]
    assert digest(res.weights) == digest(want)
    assert res.rows[0]["virtual_seconds"] == round(fin[winner], 6)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("every", [1, 2])
@pytest.mark.parametrize("name", ["fedasync", "fedbuff", "fedavg"])
def test_stop_and_resume_gives_the_uninterrupted_weights(name, every, tmp_path):
    # with checkpoint-every 2 the stop after step 3 falls between checkpoints: the resume
    # goes back to step 2 and redoes step 3, ending on the same rows and weights. fedavg:
    # the sync barrier on the same clock (its exact value is checkpointed, not the row's)
    cfg = _cfg(name, **{"checkpoint-every": every})
    whole = _run(cfg, tmp_path / "whole")
    run_dir = tmp_path / "cut"
    run_dir.mkdir()
    recorder = RunRecorder(run_dir)

    def stop(row, hist):
        recorder.append_metrics(row)
        if row["round"] == 3:
            raise _Stop

    with pytest.raises(_Stop):
        run_rounds(FakeClients(4), cfg, _evaluate, 4, on_round=stop, run_dir=run_dir)
    resumed = _run(cfg, run_dir, resume=load_checkpoint(run_dir))
    assert digest(resumed.weights) == digest(whole.weights)
    assert _clean(resumed.rows) == _clean(whole.rows)


def test_offline_clients_drop_out_and_are_counted(tmp_path):
    cfg = _cfg("fedbuff", availability="diurnal", **{"diurnal-period": 2.0, "duty-cycle": 0.5})
    rows = _run(cfg, tmp_path).rows
    assert len(rows) == cfg.federation.rounds
    assert sum(r["offline_dropouts"] for r in rows) > 0


class Counting(FakeClients):
    """Counts sends and the clients trained (a trained client is a message answered)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sends = 0

    def send_and_receive(self, messages, timeout=None):
        self.sends += 1
        return super().send_and_receive(messages, timeout)


@pytest.mark.parametrize("name", ["fedasync", "fedbuff"])
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"availability": "diurnal", "diurnal-period": 2.0},
        {"num-clients": 8},  # few clients: one is picked again inside one lookahead
    ],
)
def test_training_ahead_changes_no_result_and_batches_the_sends(name, extra, tmp_path, monkeypatch):
    """The lookahead trains freed slots' clients in batches; every metric and the final
    weights equal the one-client-per-send run, crashes and dropouts included."""
    import server.pipeline.async_scheduler as sched

    cfg = _cfg(name, rounds=12, **extra)
    crash = [(3, 0), (11, 0)]
    ahead = Counting(4, crash=crash)
    a = _run(cfg, tmp_path / "ahead", grid=ahead)
    monkeypatch.setattr(sched, "speculates", lambda cfg: False)
    serial = Counting(4, crash=crash)
    b = _run(cfg, tmp_path / "serial", grid=serial)
    assert _clean(a.rows) == _clean(b.rows)
    assert digest(a.weights) == digest(b.weights)
    assert ahead.sends * 2 < serial.sends


@pytest.mark.parametrize("name", ["fedasync", "fedbuff"])
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"availability": "diurnal", "diurnal-period": 2.0},
        {"num-clients": 8},
    ],
)
def test_streamed_sends_overlap_and_change_no_result(name, extra, tmp_path, monkeypatch):
    """Behind push/pull, replies arrive in a random order over many pulls and the next
    clients are sent before the last send is answered; every metric and the final
    weights still equal the one-client-per-send run, crashes and dropouts included."""
    import server.pipeline.async_scheduler as sched

    cfg = _cfg(name, rounds=12, **extra)
    crash = [(3, 0), (11, 0)]
    streamed = StreamingClients(4, crash=crash, seed=1)
    a = _run(cfg, tmp_path / "streamed", grid=streamed)
    monkeypatch.setattr(sched, "speculates", lambda cfg: False)
    b = _run(cfg, tmp_path / "serial", grid=FakeClients(4, crash=crash))
    assert _clean(a.rows) == _clean(b.rows)
    assert digest(a.weights) == digest(b.weights)
    assert streamed.overlap > 0


def test_a_streamed_client_that_never_answers_times_out_as_a_failure(tmp_path):
    # an answer waits 1 + Geometric(1/2) pulls of 10 ms: 0.5 s is never reached by chance
    cfg = _cfg("fedasync", rounds=6, timeout=0.5, **{"num-clients": 8})
    rows = _run(cfg, tmp_path, grid=StreamingClients(4, drop=[(5, 0)])).rows
    assert len(rows) == 6
    assert sum(r["failures"] for r in rows) > 0


@pytest.mark.parametrize("name", ["fedasync", "fedbuff"])
def test_training_ahead_stops_at_the_last_step_and_stays_near(name, tmp_path):
    """Clients that answer at once let the lookahead run ahead: it never starts a client
    from the last model (server round > `rounds`), and trains few clients it never uses."""
    cfg = _cfg(name, rounds=30, concurrency=6, **{"num-clients": 20})
    grid = StreamingClients(4, answer=1.0)
    res = _run(cfg, tmp_path, grid=grid)
    sent = [m for m in grid.seen if m.metadata.message_type == "train"]
    assert max(int(m.content["config"]["server-round"]) for m in sent) <= 30
    applied = sum(r["replies"] + r["failures"] for r in res.rows)
    assert len(sent) <= applied + 2 * 2 * 6  # at most the lookahead's horizon left unused
