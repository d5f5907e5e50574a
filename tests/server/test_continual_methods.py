"""The server halves of FOT and TARGET: reports leave the updates before aggregation,
the basis grows from them, the synthetic set is made at task ends, costs are recorded."""

from __future__ import annotations

import numpy as np
import pytest

from learning.config import build_config
from learning.projection import FOT_BASIS, FOT_GRAM
from server.continual_methods import ContinualServer, cost_summary
from server.pipeline.updates import ClientUpdate

BASE = [
    "num-clients=4",
    "clients-per-round=2",
    "train-subset=1000",
    "test-subset=100",
    'partition="iid"',
    "num-tasks=2",
    "rounds=4",
]
SHAPES = [(3, 2), (2,), (2, 2), (2,)]  # kernels "0" (3 inputs) and "2" (2 inputs)


def _update(pid: int, grams=None) -> ClientUpdate:
    arrays = tuple(np.zeros(s, np.float32) for s in SHAPES)
    extras, layout = {}, [("arrays", tuple(str(i) for i in range(4))), ("metrics", ())]
    if grams is not None:
        extras[FOT_GRAM] = tuple(grams)
        layout.append((FOT_GRAM, ("0", "2")))
    return ClientUpdate(pid, 1, arrays, {"num-examples": 5}, extras, layout=tuple(layout))


def test_fot_takes_the_reports_out_and_grows_the_basis_from_their_mean(tmp_path):
    cfg = build_config(None, [*BASE, 'scenario="domain-incremental"', 'cl-method="fot"'])
    server = ContinualServer(cfg, tmp_path, [np.zeros(s) for s in SHAPES])
    assert server.records() == {}  # no basis before the first task ends
    e = np.eye(4, dtype=np.float32)
    g_a = np.diag([4.0, 0, 0, 1]).astype(np.float32)  # input 0 and the constant
    g_b = np.diag([0.0, 0, 0, 1]).astype(np.float32)
    plain = server.take([_update(0)])
    assert len(plain) == 1 and FOT_GRAM not in plain[0].extras
    out = server.take([_update(0, [g_a, e[:3, :3]]), _update(1, [g_b, e[:3, :3]])])
    assert all(FOT_GRAM not in u.extras for u in out)
    assert all(name != FOT_GRAM for name, _ in out[0].layout)
    basis = server.state["0"]  # mean Gram diag(2, 0, 0, 1): 95% needs both directions
    assert basis.shape == (4, 2)
    np.testing.assert_allclose(np.abs(basis.T @ e[:, [0, 3]]), np.eye(2), atol=1e-6)
    assert list(server.records()[FOT_BASIS].keys()) == ["0", "2"]
    assert (tmp_path / "fot-basis.npz").is_file()
    row = server.row()
    assert row["fot_basis_dims"] == 2 + 3 and row["cl_report_bytes"] == 4 * (16 + 9)
    again = ContinualServer(cfg, tmp_path, [np.zeros(s) for s in SHAPES])  # a resume
    np.testing.assert_array_equal(again.state["0"], basis)


@pytest.mark.tf
def test_target_makes_its_synthetic_set_at_task_ends_only(tmp_path):
    from learning.warm_start import initial_weights

    cfg = build_config(
        None,
        [*BASE, 'scenario="class-incremental"', 'cl-method="target"', 'model="mlp-bn"']
        + ["target-steps=3", "target-samples=8"],
    )
    w = initial_weights("mlp-bn", (28, 28, 1), 10, seed=0)
    server = ContinualServer(cfg, tmp_path, w)
    server.after_round(1, w)
    assert server.records() == {}
    server.after_round(2, w)  # the last round of task 0
    record = server.records()["target-synthetic"]
    x, soft = (a.numpy() for a in record.values())
    assert x.shape == (8, 28, 28, 1) and soft.shape == (8, 10)
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-5)
    assert server.row()["cl_server_state_bytes"] == x.nbytes + soft.nbytes


def test_cost_summary_reads_the_newest_client_state(tmp_path):
    store = tmp_path / "continual-state" / "00000"
    store.mkdir(parents=True)
    (store / "3.r2.npz").write_bytes(b"x" * 10)
    (store / "3.r4.npz").write_bytes(b"x" * 30)
    (store / "5.r4.npz").write_bytes(b"x" * 50)
    rows = [
        {"client_seconds_median": 1.0},
        {"client_seconds_median": 3.0, "cl_server_state_bytes": 7},
    ]
    s = cost_summary(rows, tmp_path)
    assert s["client_state_bytes"] == 40.0 and s["server_state_bytes"] == 7.0
    assert s["client_seconds_per_update"] == 2.0 and s["message_extra_bytes"] == 0.0
