"""accuracy.png's x axis: virtual hours when the run has a clock worth reading."""

from __future__ import annotations

from learning.config import ExperimentConfig
from server.app import has_clock
from server.plots.run import accuracy_x, plot_accuracy

ROWS = [
    {"round": 1, "accuracy": 0.1, "loss": 2.0, "virtual_seconds": 1800.0},
    {"round": 2, "accuracy": 0.2, "loss": 1.5, "virtual_seconds": 7200.0},
]


def test_the_axis_is_virtual_hours_only_with_a_clock_and_the_field():
    assert accuracy_x(ROWS, virtual=True) == ([0.5, 2.0], "virtual hours")
    assert accuracy_x(ROWS, virtual=False) == ([1, 2], "round")
    old = [{k: v for k, v in r.items() if k != "virtual_seconds"} for r in ROWS]
    assert accuracy_x(old, virtual=True) == ([1, 2], "round")  # rows from before the clock


def test_which_runs_have_a_clock():
    def cfg(**keys):
        return ExperimentConfig.from_flat(keys)

    assert not has_clock(cfg())  # uniform sync: rounds, as before
    assert not has_clock(cfg(**{"round-policy": "deadline", "round-deadline": 5.0}))
    assert has_clock(cfg(strategy="fedbuff"))
    assert has_clock(cfg(**{"device-profile": "lognormal"}))
    assert has_clock(cfg(**{"slow-fraction": 0.1}))


def test_plot_against_virtual_hours_writes_the_png(tmp_path):
    plot_accuracy(ROWS, tmp_path / "a.png", "fedbuff", virtual=True)
    assert (tmp_path / "a.png").stat().st_size > 0
