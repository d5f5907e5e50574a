"""`perennial perf`'s steady-state figure: the rounds after the first on both sides,
summed per repeat, medians over repeats, ms per update over those rounds' updates."""

from __future__ import annotations

import pytest

from simulations.perf import per_update_table, steady, steady_figures


def test_the_first_round_is_left_out_of_both_sides_alike():
    per_round = {
        "bare": [[3.0, 1.0, 1.2], [2.5, 0.9, 1.1], [2.8, 1.1, 1.3]],
        "perennial": [[9.0, 1.5, 1.4], [8.0, 1.6, 1.2], [7.0, 1.4, 1.4]],
    }
    got = steady_figures(per_round, clients=100)
    assert got["steady_rounds"] == 2
    assert got["bare_steady_s"] == pytest.approx(2.2)  # median of 2.2, 2.0, 2.4
    assert got["perennial_steady_s"] == pytest.approx(2.8)  # median of 2.9, 2.8, 2.8
    assert got["steady_overhead_vs_bare"] == pytest.approx(2.8 / 2.2, rel=1e-4)
    assert got["bare_steady_ms_per_update"] == pytest.approx(11.0)  # 2.2 s / 200 updates
    assert got["perennial_round_s"][0] == [9.0, 1.5, 1.4]


def test_a_one_round_run_has_no_steady_state():
    assert steady([4.0]) is None
    got = steady_figures({"bare": [[4.0]], "perennial": [[5.0]]}, clients=10)
    assert got["steady_rounds"] == 0 and "steady_overhead_vs_bare" not in got
    result = {"repeats": 1, "rounds": 1, "bare_ms_per_update": 1.0}
    result.update(perennial_ms_per_update=2.0, overhead_vs_bare=2.0, **got)
    assert per_update_table(result).row_count == 2
