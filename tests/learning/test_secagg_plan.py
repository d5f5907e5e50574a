"""SecAgg+ share and threshold rules."""

from __future__ import annotations

import pytest

from learning.errors import ConfigError
from learning.secagg_plan import secagg_plan


def test_defaults_share_with_everyone_and_tolerate_the_allowed_dropouts():
    plan = secagg_plan(10, 0, 0, 0.2, 22)
    assert (plan.shares, plan.threshold, plan.max_dropouts) == (10, 8, 2)


def test_even_share_counts_become_odd_rings():
    plan = secagg_plan(20, 6, 0, 0.1, 22)
    assert plan.shares == 7 and plan.threshold == 5


def test_a_threshold_that_cannot_survive_the_dropouts_is_refused():
    with pytest.raises(ConfigError, match="cannot survive 2 dropouts"):
        secagg_plan(10, 0, 9, 0.2, 22)


def test_a_threshold_at_or_below_half_is_refused():
    with pytest.raises(ConfigError, match="exceed half"):
        secagg_plan(10, 0, 5, 0.2, 22)
    with pytest.raises(ConfigError, match="lower dropout-tolerance"):
        secagg_plan(10, 0, 0, 0.6, 22)


def test_quantisation_that_would_overflow_the_modulus_is_refused():
    with pytest.raises(ConfigError, match="overflow"):
        secagg_plan(1024, 0, 0, 0.1, 22)
    with pytest.raises(ConfigError, match="at least 3"):
        secagg_plan(2, 0, 0, 0.1, 22)
