"""FedAsync and FedBuff server steps against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from strategies.fedasync import fedasync_mix, staleness_weight
from strategies.fedbuff import fedbuff_step, fedbuff_weight


def test_staleness_functions():
    assert staleness_weight("constant", 7, 0.5, 4) == 1.0
    assert staleness_weight("polynomial", 3, 0.5, 4) == pytest.approx(0.5)  # 4^-0.5
    assert staleness_weight("polynomial", 0, 0.5, 4) == 1.0
    assert staleness_weight("hinge", 4, 0.5, 4) == 1.0
    assert staleness_weight("hinge", 8, 0.5, 4) == pytest.approx(1 / 3)  # 1/(0.5*4+1)
    with pytest.raises(ValueError):
        staleness_weight("polynomial", -1, 0.5, 4)


def test_fedasync_mix_by_hand():
    x = [np.array([0.0, 2.0], np.float32), np.array([[4.0]], np.float32)]
    y = [np.array([1.0, 0.0], np.float32), np.array([[0.0]], np.float32)]
    a = 0.6 * staleness_weight("polynomial", 3, 0.5, 4)  # 0.3
    out = fedasync_mix(x, y, a)
    np.testing.assert_allclose(out[0], [0.3, 1.4], rtol=1e-6)
    np.testing.assert_allclose(out[1], [[2.8]], rtol=1e-6)
    assert out[0].dtype == np.float32


def test_fedbuff_step_by_hand():
    x = [np.array([1.0, 1.0], np.float32)]
    deltas = [[np.array([2.0, 0.0], np.float32)], [np.array([0.0, 4.0], np.float32)]]
    # weights 1/sqrt(1) = 1 and 1/sqrt(4) = 0.5; mean over K = 2; server lr 0.5
    out = fedbuff_step(x, deltas, [0, 3], 0.5)
    np.testing.assert_allclose(out[0], [1.0 + 0.5 * 2.0 / 2, 1.0 + 0.5 * 2.0 / 2])
    assert fedbuff_weight(8) == pytest.approx(1 / 3)
