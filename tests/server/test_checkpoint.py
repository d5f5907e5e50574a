"""Checkpoints: weights, rows and every kind of strategy state survive a round trip."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord

from learning.errors import ConfigError
from server.checkpoint import load_checkpoint, restore_strategy, save_checkpoint


class FakeStrategy:
    def __init__(self):
        self.eta = 0.1  # configuration, not state
        self.m_t = {"0": np.ones(2), "1": np.zeros((2, 2))}  # FedOpt style
        self.momentum_vector = [np.full(3, 2.0)]  # FedAvgM style
        self.current_arrays = ArrayRecord([np.arange(4.0)])
        self.v_t = None  # not yet created
        self._c = [np.array([1.5])]  # SCAFFOLD style


def test_round_trip(tmp_path):
    s = FakeStrategy()
    rows = [{"round": 1, "accuracy": 0.5}, {"round": 2, "accuracy": 0.6}]
    (tmp_path / "metrics.jsonl").write_text('{"round": 1, "accuracy": 0.5}\n')
    save_checkpoint(tmp_path, 2, [np.ones(3, np.float32)], s, rows)
    ck = load_checkpoint(tmp_path)
    assert ck.round == 2 and ck.rows == rows
    np.testing.assert_array_equal(ck.weights[0], np.ones(3, np.float32))
    fresh = FakeStrategy()
    fresh.m_t, fresh.momentum_vector, fresh._c = None, None, None
    restore_strategy(fresh, ck.state)
    np.testing.assert_array_equal(fresh.m_t["1"], np.zeros((2, 2)))
    np.testing.assert_array_equal(fresh.momentum_vector[0], np.full(3, 2.0))
    np.testing.assert_array_equal(fresh.current_arrays["0"].numpy(), np.arange(4.0))
    np.testing.assert_array_equal(fresh._c[0], [1.5])
    assert fresh.v_t is None and fresh.eta == 0.1
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint.npz"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint.npz").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="unreadable"):
        load_checkpoint(tmp_path)


def test_a_dp_wrapper_checkpoints_its_own_and_its_strategys_state(tmp_path):
    from flwr.serverapp.strategy import FedAvgM

    from privacy.central_dp import CentralDP

    def make() -> CentralDP:
        return CentralDP(FedAvgM(), noise_multiplier=1.0, clipping_norm=0.7, expected_clients=5.0)

    dp = make()
    dp._clip[0], dp._releases[0] = 0.42, 7
    dp.inner.momentum_vector = [np.full(3, 2.5, np.float32)]
    save_checkpoint(tmp_path, 7, [np.zeros(3, np.float32)], dp, [])
    fresh = make()
    restore_strategy(fresh, load_checkpoint(tmp_path).state)
    assert fresh.clipping_norm == 0.42 and fresh.releases == 7
    np.testing.assert_array_equal(fresh.inner.momentum_vector[0], np.full(3, 2.5))


def _loop_like(run_dir, rounds: int, kill_after_checkpoint: bool = False) -> list[dict]:
    """What the loop does each round: checkpoint, then append the row to metrics.jsonl."""
    from server.run_dir import RunRecorder

    recorder, rows = RunRecorder(run_dir), []
    for rnd in range(1, rounds + 1):
        rows.append({"round": rnd, "accuracy": rnd / 100, "skip_reason": None})
        save_checkpoint(run_dir, rnd, [np.full(3, rnd, np.float32)], FakeStrategy(), rows)
        if not (kill_after_checkpoint and rnd == rounds):
            recorder.append_metrics(rows[-1])
    return rows


def test_checkpoint_holds_no_past_rows_and_resume_restores_them(tmp_path):
    import json

    rows = _loop_like(tmp_path, 30)
    with np.load(tmp_path / "checkpoint.npz") as data:
        meta = json.loads(str(data["meta"]))
    assert "rows" not in meta and meta["num_rows"] == 30 and meta["last_row"] == rows[-1]
    assert load_checkpoint(tmp_path).rows == rows


def test_rows_a_checkpoint_names_are_fsynced_before_it_is_written(tmp_path, monkeypatch):
    """metrics.jsonl is not fsynced per row (an async run writes one per update), so the
    checkpoint, which reads its earlier rows back from that file, fsyncs it first."""
    import os

    synced: list[str] = []
    real = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))
    )
    _loop_like(tmp_path, 3)
    names = [os.path.basename(p) for p in synced]
    assert names.count("metrics.jsonl") == 2  # before checkpoints 2 and 3 (1 has no rows yet)
    for i, name in enumerate(names):
        if name.startswith(".checkpoint.npz"):
            assert i == 0 or names[i - 1] == "metrics.jsonl"


def test_resume_rows_survive_a_kill_between_checkpoint_and_metrics_line(tmp_path):
    rows = _loop_like(tmp_path, 5, kill_after_checkpoint=True)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"round": 5, "accur')  # a torn line past the checkpointed rows
    assert load_checkpoint(tmp_path).rows == rows


def test_metrics_shorter_than_the_checkpoint_is_a_clear_error(tmp_path):
    _loop_like(tmp_path, 4)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "metrics.jsonl").write_text(lines[0] + "\n")
    with pytest.raises(ConfigError, match="metrics.jsonl"):
        load_checkpoint(tmp_path)
