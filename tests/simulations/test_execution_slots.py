"""How many SuperNodes the simulation registers (simulations/runtime.py)."""

from __future__ import annotations

import pytest

from learning.config import ExperimentConfig
from simulations.runtime import SLOTS_PER_WORKER, execution_slots


@pytest.mark.parametrize(
    ("keys", "workers", "want"),
    [
        ({"clients-per-round": 10}, 2, 2 * SLOTS_PER_WORKER),  # a few per worker
        ({"clients-per-round": 3}, 2, 3),  # never more than a round's clients
        ({"clients-per-round": 10}, 16, 10),
        ({"strategy": "fedasync", "clients-per-round": 2, "concurrency": 12}, 2, 8),
        ({"strategy": "fedbuff", "clients-per-round": 2, "concurrency": 3, "fedbuff-k": 2}, 4, 3),
    ],
)
def test_a_few_slots_per_worker_never_more_than_a_send(keys, workers, want):
    assert execution_slots(ExperimentConfig.from_flat(keys), workers) == want
