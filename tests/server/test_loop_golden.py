"""Same seed, same loop: every scenario reproduces, bit for bit, the rows (minus timings),
per-round histograms, messages sent and final weights recorded in golden/loop.json from the
loop as it was before it became a pipeline (tests/server/loop_scenarios.py)."""

from __future__ import annotations

import json

import pytest
from loop_scenarios import GOLDEN, SCENARIOS, run_scenario

EXPECTED = json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_matches_the_recorded_loop(name, tmp_path):
    got = run_scenario(name, tmp_path)
    want = EXPECTED[name]
    assert len(got["rows"]) == len(want["rows"])
    for rnd, (g, w) in enumerate(zip(got["rows"], want["rows"], strict=True), start=1):
        assert g == w, f"round {rnd} row differs:\n got {g}\nwant {w}"
    assert got["histograms"] == want["histograms"]
    assert got["sent"] == want["sent"], "the clients received different messages"
    assert got["weights"] == want["weights"], "final weights differ"
