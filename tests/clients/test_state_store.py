"""Client state store: round trip, isolation between clients, versions per round."""

from __future__ import annotations

import numpy as np

from clients.state_store import ClientStore


def test_round_trip_and_isolation(tmp_path):
    store = ClientStore(tmp_path / "state")
    assert store.load(3) == {}
    store.save(3, {"c": np.arange(4, dtype=np.float32), "n": np.array(7)}, server_round=1)
    store.save(99_999, {"c": np.ones(2)}, server_round=1)
    got = store.load(3)
    np.testing.assert_array_equal(got["c"], np.arange(4, dtype=np.float32))
    assert got["c"].dtype == np.float32 and int(got["n"]) == 7
    assert store.load(4) == {}
    assert store.load(30) == {}  # same bucket, different client
    np.testing.assert_array_equal(store.load(99_999)["c"], np.ones(2))
    assert store.clients() == [3, 99_999]


def test_save_replaces_whole_state_without_leftovers(tmp_path):
    store = ClientStore(tmp_path)
    store.save(1, {"a": np.zeros(3), "b": np.ones(3)}, server_round=1)
    store.save(1, {"a": np.full(3, 2.0)}, server_round=2)
    got = store.load(1)
    assert set(got) == {"a"}
    np.testing.assert_array_equal(got["a"], np.full(3, 2.0))
    assert not list(tmp_path.rglob("*.tmp"))


def test_versions_let_a_resumed_round_see_the_old_state(tmp_path):
    store = ClientStore(tmp_path, keep=2)
    for rnd in (1, 4, 7):
        store.save(5, {"v": np.array(rnd)}, server_round=rnd)
    assert int(store.load(5)["v"]) == 7
    assert int(store.load(5, before_round=7)["v"]) == 4  # round 7 being redone
    assert store.load(5, before_round=4) == {}  # pruned: only the last 2 versions are kept
    assert len(list(tmp_path.rglob("*.npz"))) == 2
