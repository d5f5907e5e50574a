"""Robust-aggregation bounds and optimiser assumptions, refused before round 1."""

from __future__ import annotations

import pytest

from learning.config import build_config
from learning.defence_bounds import defence_bound, defence_bound_error, optimizer_error
from learning.errors import ConfigError


@pytest.mark.parametrize(
    ("strategy", "f", "need"),
    [("krum", 3, 9), ("multikrum", 1, 5), ("bulyan", 2, 11), ("fedmedian", 4, 9), ("fedavg", 9, 1)],
)
def test_bound_is_tight(strategy, f, need):
    assert defence_bound(strategy, f) == need
    assert defence_bound_error(strategy, need, f) is None
    assert "needs at least" in defence_bound_error(strategy, need - 1, f)


def test_trimmed_mean_must_cut_every_byzantine_value_from_each_end():
    assert defence_bound_error("fedtrimmedavg", 10, 2, 0.2) is None  # floor(2.0) = 2
    assert "floor(trim-beta x n) = 1" in defence_bound_error("fedtrimmedavg", 9, 2, 0.2)
    assert "< 0.5" in defence_bound_error("fedtrimmedavg", 10, 0, 0.5)


def test_krum_with_nine_malicious_of_ten_is_refused_before_round_one():
    with pytest.raises(ConfigError, match=r"'krum' with num-malicious=9 needs at least 21"):
        build_config(None, ['strategy="krum"', "num-malicious=9", "clients-per-round=10"])
    with pytest.raises(ConfigError, match="needs at least 11"):
        build_config(None, ['strategy="bulyan"', "num-malicious=2", "clients-per-round=10"])
    build_config(None, ['strategy="bulyan"', "num-malicious=2", "clients-per-round=11"])


@pytest.mark.parametrize(
    "overrides",
    [
        ['strategy="scaffold"', 'optimizer="adam"'],
        ['strategy="fednova"', 'optimizer="adam"'],
        ['strategy="feddyn"', "momentum=0.9"],
        ['strategy="feddyn"', 'optimizer="adam"'],
    ],
)
def test_strategies_that_assume_plain_sgd_refuse_other_optimisers(overrides):
    with pytest.raises(ConfigError) as err:
        build_config(None, overrides)
    assert "\n" not in str(err.value) and "sgd" in str(err.value)


def test_sgd_with_momentum_stays_allowed_where_it_is_modelled():
    assert optimizer_error("scaffold", "sgd", 0.9) is None
    assert optimizer_error("fednova", "sgd", 0.9) is None
    assert optimizer_error("fedavg", "adam", 0.0) is None
