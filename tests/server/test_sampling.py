"""Seeded client sampling: reproducible, distinct, in range, varies by round."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.sampling import sample_clients


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rnd=st.integers(1, 10_000),
    n=st.integers(1, 100_000),
    k=st.integers(1, 200),
)
def test_sample_properties(seed, rnd, n, k):
    got = sample_clients(seed, rnd, n, k)
    assert got == sample_clients(seed, rnd, n, k)
    assert len(got) == min(k, n) == len(set(got))
    assert all(0 <= c < n for c in got)
    assert got == sorted(got)


def test_rounds_draw_different_clients():
    draws = {tuple(sample_clients(0, r, 100, 10)) for r in range(1, 21)}
    assert len(draws) > 15
