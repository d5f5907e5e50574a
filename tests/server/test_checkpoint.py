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
