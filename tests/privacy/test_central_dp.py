"""DP-FedAvg's server math on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from privacy.central_dp import (
    CentralDP,
    clip_update,
    next_clipping_norm,
    noisy_mean,
    update_noise_multiplier,
)


def test_clip_update_scales_long_updates_to_the_norm_and_keeps_short_ones():
    clipped, kept = clip_update([np.array([3.0, 4.0])], 1.0)
    np.testing.assert_allclose(clipped[0], [0.6, 0.8])
    assert kept is False
    clipped, kept = clip_update([np.array([0.3]), np.array([0.4])], 1.0)
    np.testing.assert_allclose(np.concatenate(clipped), [0.3, 0.4])
    assert kept is True


def test_noisy_mean_divides_by_the_fixed_denominator_and_adds_noise_of_the_given_std():
    exact = noisy_mean([np.array([2.0, 4.0])], 4.0, 0.0, np.random.default_rng(0))
    np.testing.assert_allclose(exact[0], [0.5, 1.0])
    noisy = noisy_mean([np.zeros(200_000)], 2.0, 3.0, np.random.default_rng(0))[0]
    assert abs(noisy.std() - 1.5) < 0.02  # std 3 on the sum, halved by the mean
    assert abs(noisy.mean()) < 0.02


def test_update_noise_multiplier_solves_andrew_et_al_theorem_1():
    z_delta = update_noise_multiplier(1.0, 5.0)
    assert z_delta == pytest.approx((1.0 - 1.0 / 100.0) ** -0.5)
    assert (z_delta**-2 + (2 * 5.0) ** -2) ** -0.5 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="clipped-count-stddev"):
        update_noise_multiplier(1.0, 0.5)


def test_next_clipping_norm_moves_towards_the_target_quantile():
    assert next_clipping_norm(1.0, 80, 100, 0.5, 0.2) == pytest.approx(math.exp(-0.06))
    assert next_clipping_norm(1.0, 20, 100, 0.5, 0.2) == pytest.approx(math.exp(0.06))
    assert next_clipping_norm(2.0, 50, 100, 0.5, 0.2) == pytest.approx(2.0)


def _reply(weights: list[np.ndarray], **metrics) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord(weights),
            "metrics": MetricRecord({"num-examples": 10, **metrics}),
        }
    )
    return Message(content=content, dst_node_id=1, message_type=MessageType.TRAIN)


class _Grid:
    def get_node_ids(self):
        return [1, 2]


def _dp(noise: float, adaptive: bool = False) -> CentralDP:
    return CentralDP(
        FedAvg(min_train_nodes=1, min_available_nodes=1, fraction_evaluate=0.0),
        noise_multiplier=noise,
        clipping_norm=1.0,
        expected_clients=4.0,
        adaptive=adaptive,
        count_std=10.0,
        key=3,
    )


def test_wrapper_clips_sums_and_divides_by_expected_clients_without_noise():
    g = [np.array([1.0, 1.0], dtype=np.float32)]
    dp = _dp(0.0)
    msgs = list(dp.configure_train(1, ArrayRecord(g), ConfigRecord({}), _Grid()))
    assert msgs and msgs[0].content["config"]["clipping_norm"] == 1.0
    replies = [_reply([g[0] + np.array([3.0, 4.0], np.float32)]), _reply([g[0] + 0.1])]
    arrays, _ = dp.aggregate_train(1, replies)
    # (0.6, 0.8) + (0.1, 0.1) summed, over 4 expected clients.
    np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], [1.175, 1.225], rtol=1e-6)
    assert arrays.to_numpy_ndarrays()[0].dtype == np.float32
    assert dp.releases == 1


def test_wrapper_noise_is_seeded_and_counted():
    g = [np.zeros(1000, dtype=np.float32)]
    outs = []
    for _ in range(2):
        dp = _dp(1.0)
        list(dp.configure_train(5, ArrayRecord(g), ConfigRecord({}), _Grid()))
        arrays, _ = dp.aggregate_train(5, [_reply([g[0] + 0.0])])
        outs.append(arrays.to_numpy_ndarrays()[0])
        assert dp.releases == 1
        assert dp.last_noise_std == pytest.approx(1.0 * 1.0 / 4.0)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert abs(float(outs[0].std()) - 0.25) < 0.03


def test_adaptive_clipping_reads_flowers_clipped_bit_as_clipped():
    g = [np.zeros(2, dtype=np.float32)]
    dp = _dp(1.0, adaptive=True)
    dp.count_std = 1e-9  # isolate the direction of the step
    list(dp.configure_train(1, ArrayRecord(g), ConfigRecord({}), _Grid()))
    replies = [_reply([g[0] + 5.0], norm_bit=1) for _ in range(4)]  # all four clipped
    dp.aggregate_train(1, replies)
    assert dp.clipping_norm == pytest.approx(math.exp(0.2 * 0.5))  # none unclipped: C grows


def test_the_unclipped_count_is_released_centred_around_the_expected_clients():
    from privacy.central_dp import noisy_unclipped

    rng = np.random.default_rng(0)
    # 3 of 4 replies unclipped, 10 expected: sum(b - 1/2) = 1, plus 1/2 x 10 = 6.
    assert noisy_unclipped(3, 4, 10.0, 0.0, rng) == pytest.approx(6.0)
    # One more client taking part moves the released value by 1/2, whatever its bit.
    assert noisy_unclipped(4, 5, 10.0, 0.0, rng) - 6.0 == pytest.approx(0.5)
    assert noisy_unclipped(3, 5, 10.0, 0.0, rng) - 6.0 == pytest.approx(-0.5)


def test_secagg_clients_clip_by_the_quantisation_margin_and_tiny_norms_are_refused():
    from learning.config import ExperimentConfig
    from learning.errors import ConfigError
    from privacy.accounting import check_secagg_clipping, quantisation_step

    flat = {"dp": "central", "secure-aggregation": True, "clipping-norm": 0.5}
    cfg = ExperimentConfig.from_flat(flat)
    step = quantisation_step(cfg)
    assert step == pytest.approx(2 * 8.0 / 2**22)
    dp = CentralDP(
        FedAvg(),
        noise_multiplier=1.0,
        clipping_norm=0.5,
        expected_clients=4.0,
        quantisation_step=step,
    )
    d = 10_000
    assert dp.client_clipping_norm(d) == pytest.approx(0.5 - 100 * step)
    # worst case: every coordinate rounded a full step outward stays within C
    rng = np.random.default_rng(0)
    u = rng.normal(size=d)
    u *= dp.client_clipping_norm(d) / np.linalg.norm(u)
    assert np.linalg.norm(u + step * np.sign(u)) <= 0.5 + 1e-12
    check_secagg_clipping(cfg, d)
    with pytest.raises(ConfigError, match="must exceed SecAgg"):
        check_secagg_clipping(cfg.replace(secagg_quantization_bits=8), 100_000)
