"""The client-side privacy mods: clipping for central DP, clip-and-noise for local DP."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from helpers import context

from privacy.client_mods import local_noise_std, privacy_mod

G = [np.zeros(40_000, np.float32), np.zeros(3, np.float32)]


def _message(**config) -> Message:
    record = ConfigRecord({"seed": 1, "server-round": 2, "partition-id": 7, **config})
    content = RecordDict({"arrays": ArrayRecord(G), "config": record})
    return Message(content=content, dst_node_id=3, message_type=MessageType.TRAIN)


def _train(msg: Message, ctx: Context) -> Message:
    update = [g + 0.05 for g in G]  # norm ~10
    content = RecordDict(
        {"arrays": ArrayRecord(update), "metrics": MetricRecord({"num-examples": 5})}
    )
    return Message(content=content, reply_to=msg)


def _sent(msg: Message) -> list[np.ndarray]:
    return privacy_mod(msg, context(3), _train).content["arrays"].to_numpy_ndarrays()


def _norm(arrays: list[np.ndarray]) -> float:
    return float(np.sqrt(sum(float(np.sum(a.astype(np.float64) ** 2)) for a in arrays)))


def test_central_dp_clips_the_update_to_the_servers_norm():
    sent = _sent(_message(dp="central", clipping_norm=1.5))
    assert _norm(sent) == pytest.approx(1.5, rel=1e-4)
    assert [a.dtype for a in sent] == [np.float32, np.float32]


def test_adaptive_clipping_reports_whether_it_clipped():
    msg = _message(**{"dp": "central", "dp-clipping": "adaptive", "clipping_norm": 100.0})
    out = privacy_mod(msg, context(3), _train)
    assert out.content["metrics"]["norm_bit"] == 0
    msg = _message(**{"dp": "central", "dp-clipping": "adaptive", "clipping_norm": 1.0})
    assert privacy_mod(msg, context(3), _train).content["metrics"]["norm_bit"] == 1


def test_local_dp_adds_the_gaussian_mechanisms_noise_and_is_seeded():
    cfg = {"dp": "local", "clipping-norm": 1.0, "local-epsilon": 8.0, "local-delta": 1e-5}
    first = _sent(_message(**cfg))
    again = _sent(_message(**cfg))
    np.testing.assert_array_equal(first[0], again[0])
    clipped_value = 0.05 / np.sqrt(40_003 * 0.05**2)  # every coordinate of the clipped update
    noise = first[0] - clipped_value
    assert float(noise.std()) == pytest.approx(local_noise_std(1.0, 8.0, 1e-5), rel=0.02)
    other = _sent(_message(**cfg, **{"secure-noise": True}))
    assert not np.array_equal(first[0], other[0])


def test_no_privacy_leaves_the_reply_alone():
    sent = _sent(_message(dp="none"))
    np.testing.assert_allclose(sent[0], 0.05)


def test_local_noise_is_calibrated_by_the_exact_gaussian_delta():
    from privacy.client_mods import gaussian_delta

    sigma = local_noise_std(1.0, 10.0, 1e-5)
    assert gaussian_delta(10.0, sigma, 2.0) <= 1e-5
    assert gaussian_delta(10.0, sigma * 0.99, 2.0) > 1e-5
    classic = 2.0 * np.sqrt(2 * np.log(1.25 / 1e-5)) / 10.0
    assert gaussian_delta(10.0, classic, 2.0) > 2e-5  # why the classic formula is not used
    small = local_noise_std(1.0, 0.5, 1e-5)  # below 1 the classic bound holds (is looser)
    assert small <= 2.0 * np.sqrt(2 * np.log(1.25 / 1e-5)) / 0.5
