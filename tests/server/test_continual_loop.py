"""FOT through the real round loop on a fake grid: the clients' Gram reports never reach
the strategy, and every train message after the first task end carries the bases."""

from __future__ import annotations

import numpy as np
import pytest
from fake_grid import RecordingGrid
from flwr.app import Array, ArrayRecord

from learning.config import ExperimentConfig
from server.loop import run_rounds

pytestmark = pytest.mark.tf

CFG = {
    "model": "mlp",
    "num-clients": 6,
    "clients-per-round": 3,
    "rounds": 4,
    "scenario": "domain-incremental",
    "num-tasks": 2,
    "cl-method": "fot",
    "train-subset": 600,
    "test-subset": 100,
    "partition": "iid",
}


class ReportingGrid(RecordingGrid):
    """Fake clients that also send a Gram report in round 2 (the end of task 0): the
    first input direction and the constant only."""

    def send_and_receive(self, messages, timeout=None):
        replies = super().send_and_receive(messages, timeout)
        for msg, reply in zip(messages, replies, strict=True):
            if int(msg.content["config"]["server-round"]) == 2:
                grams = {}
                for key, side in (("0", 785), ("2", 201), ("4", 201)):
                    g = np.zeros((side, side), np.float32)
                    g[0, 0] = g[-1, -1] = 1.0
                    grams[key] = Array(g)
                reply.content["fot-gram"] = ArrayRecord(grams)
        return replies


def test_reports_leave_the_updates_and_the_bases_ride_in_later_messages(tmp_path):
    cfg = ExperimentConfig.from_flat(CFG)
    grid = ReportingGrid(3)
    result = run_rounds(grid, cfg, lambda w: (0.0, 0.0), 3, run_dir=tmp_path)
    assert len(result.rows) == 4  # FedAvg aggregated every round: no report reached it
    by_round = {}
    for msg in grid.seen:
        by_round.setdefault(int(msg.content["config"]["server-round"]), []).append(msg)
    assert all("fot-basis" not in m.content for r in (1, 2) for m in by_round[r])
    for m in by_round[3] + by_round[4]:
        basis = m.content["fot-basis"]
        assert list(basis.keys()) == ["0", "2", "4"]
        b0 = basis["0"].numpy()
        assert b0.shape == (785, 2)  # e_0 and the constant direction
        np.testing.assert_allclose(np.linalg.norm(b0[[0, 784]], axis=1), 1.0, atol=1e-6)
        assert np.abs(np.delete(b0, [0, 784], axis=0)).max() < 1e-6
    assert [r["fot_basis_dims"] for r in result.rows] == [0, 6, 6, 6]
    assert result.rows[-1]["cl_message_extra_bytes"] == 4 * (785 * 2 + 2 * 201 * 2)
