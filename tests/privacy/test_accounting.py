"""The epsilon a run reports, and the settings it refuses."""

from __future__ import annotations

import math

import pytest

from learning.config import ExperimentConfig
from learning.errors import ConfigError
from privacy.accounting import epsilon_pld, epsilon_spent, noise_for_epsilon, tightest_epsilon


def test_epsilon_grows_with_rounds_and_shrinks_with_noise():
    e10 = epsilon_spent(1.0, 10, 1000, 100, 1e-5)
    e50 = epsilon_spent(1.0, 50, 1000, 100, 1e-5)
    assert 0 < e10 < e50
    assert epsilon_spent(2.0, 50, 1000, 100, 1e-5) < e50
    assert epsilon_spent(1.0, 0, 1000, 100, 1e-5) == 0.0
    assert math.isinf(epsilon_spent(0.0, 5, 1000, 100, 1e-5))


def test_a_run_without_noise_reports_no_finite_epsilon():
    from flwr.serverapp.strategy import FedAvg

    from privacy.accounting import privacy_row
    from privacy.central_dp import CentralDP

    cfg = ExperimentConfig.from_flat({"dp": "central", "noise-multiplier": 0.0})
    dp = CentralDP(FedAvg(), noise_multiplier=0.0, clipping_norm=1.0, expected_clients=10.0)
    dp._releases[0] = 3
    assert privacy_row(cfg, dp)["epsilon"] is None  # JSON null: infinite


def test_sampling_amplifies_and_the_accountant_beats_the_classic_rdp_bound():
    z, rounds, delta = 1.0, 50, 1e-5
    full = epsilon_spent(z, rounds, 100, 100, delta)  # q = 1: plain Gaussian
    classic = min(rounds * a / (2 * z * z) + math.log(1 / delta) / (a - 1) for a in range(2, 200))
    assert full <= classic
    assert epsilon_spent(z, rounds, 1000, 100, delta) < full / 3


def test_noise_for_epsilon_is_the_smallest_noise_meeting_the_target_by_the_tighter_accountant():
    z = noise_for_epsilon(8.0, 50, 1000, 100, 1e-5)
    assert tightest_epsilon(z, 50, 1000, 100, 1e-5) <= 8.0
    assert tightest_epsilon(z * 0.98, 50, 1000, 100, 1e-5) > 8.0
    # PLD is the tighter one here, so the noise is below what RDP alone would need
    assert epsilon_pld(z, 50, 1000, 100, 1e-5) <= 8.0 < epsilon_spent(z, 50, 1000, 100, 1e-5)


def test_pld_matches_dp_accounting_and_is_tighter_than_rdp():
    # the privacy grid's z = 1.0 cell: q = 0.1, 50 rounds, delta 1e-5
    assert epsilon_spent(1.0, 50, 1000, 100, 1e-5) == pytest.approx(5.89, abs=0.01)
    assert epsilon_pld(1.0, 50, 1000, 100, 1e-5) == pytest.approx(5.15, abs=0.01)
    assert epsilon_pld(1.0, 0, 1000, 100, 1e-5) == 0.0
    assert math.isinf(epsilon_pld(0.0, 5, 1000, 100, 1e-5))


def test_meaningless_delta_and_unsupported_combinations_are_refused():
    flat = {"dp": "central", "num-clients": 100, "delta": 0.01}
    with pytest.raises(ConfigError, match="delta .* must be < 1/num-clients"):
        ExperimentConfig.from_flat(flat)
    with pytest.raises(ConfigError, match="cannot be combined with strategy 'krum'"):
        ExperimentConfig.from_flat({"dp": "central", "strategy": "krum"})
    with pytest.raises(ConfigError, match="secure-aggregation cannot be combined"):
        ExperimentConfig.from_flat({"secure-aggregation": True, "strategy": "fedmedian"})
    with pytest.raises(ConfigError, match="adaptive clipping"):
        ExperimentConfig.from_flat(
            {"secure-aggregation": True, "dp": "central", "dp-clipping": "adaptive"}
        )
    ok = ExperimentConfig.from_flat({"dp": "central", "secure-aggregation": True})
    assert ok.privacy.delta == 1e-5
