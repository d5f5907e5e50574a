"""The shared shell: helpers' errors and the state handling driven by `STATE`."""

from __future__ import annotations

import numpy as np
import pytest

from learning.errors import AggregationError
from strategies.base import check_like, reply_arrays
from strategies.fednova import FedNova
from strategies.geometric_median import GeometricMedian


def test_check_like_names_the_input_and_the_mismatch():
    with pytest.raises(AggregationError, match="client 1 array 0 has shape"):
        check_like([np.zeros(2)], [np.zeros(3)], "client 1")
    with pytest.raises(AggregationError, match="has 2 arrays, expected 1"):
        check_like([np.zeros(2)], [np.zeros(2), np.zeros(2)], "client 1")


def test_reply_arrays_follow_the_model_key_order(mock_reply):
    content = mock_reply([np.zeros(1), np.ones(2)], 1, 1).content
    got = reply_arrays(content, "arrays", ["1", "0"], "test")
    assert [g.shape for g in got] == [(2,), (1,)]
    with pytest.raises(AggregationError, match="'extra'"):
        reply_arrays(content, "extra", ["0", "1"], "test")


def test_stateless_strategies_have_empty_state():
    for strategy in (FedNova(), GeometricMedian()):
        assert strategy.state_dict() == {}
        strategy.load_state_dict({})
